// SPDX-License-Identifier: LGPL-2.1-or-later
#include <QApplication>
#include <QCommandLineParser>
#include <QDBusConnection>

#include "link-window.h"

int
main (int argc, char **argv)
{
  QApplication app (argc, argv);
  QApplication::setApplicationName ("stm32-qt-example");

  QCommandLineParser parser;
  parser.setApplicationDescription (
      "Talks to STM32 boards through stm32d: connect, send, transact, watch.");
  parser.addHelpOption ();
  QCommandLineOption sessionOption ("session", "Use the session bus (stm32d --session)");
  parser.addOption (sessionOption);
  parser.process (app);

  const QDBusConnection bus =
      parser.isSet (sessionOption) ? QDBusConnection::sessionBus () : QDBusConnection::systemBus ();
  if (!bus.isConnected ())
    {
      qCritical ("Cannot reach the %s bus: %s", parser.isSet (sessionOption) ? "session" : "system",
                 qPrintable (bus.lastError ().message ()));
      return 1;
    }
  LinkWindow window (bus);
  window.setWindowTitle ("STM32 board");
  window.show ();
  return app.exec ();
}
