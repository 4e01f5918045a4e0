// SPDX-License-Identifier: LGPL-2.1-or-later
// The example GUI against stm32d and a board whose firmware ignores EOF and
// has two connection slots: 20 cycles by clicking, every reply shown, the
// board left with nothing taken. And, in the same file, the QTcpSocket
// pattern the example replaces, failing on that board within a few cycles.
#include <QComboBox>
#include <QDBusConnection>
#include <QDBusConnectionInterface>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QProcess>
#include <QPushButton>
#include <QTableWidget>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QtTest>

#include "link-window.h"

namespace
{
const int waitMs = 20000; // a bound against hangs, not a measure of speed
const int cycles = 20;
} // namespace

class QtExampleTest : public QObject
{
  Q_OBJECT

private slots:
  void initTestCase ();
  void cleanupTestCase ();
  void cyclesThroughStm32d ();
  void cyclesWithQTcpSocket ();

private:
  // A simulated board: its own events on stdout, commands on stdin.
  QProcess *startBoard ();
  QJsonObject boardEvent (QProcess *board, const QString &event);
  int slotsInUse (QProcess *board);

  QTemporaryDir dir;
  QProcess bus;
  QString busAddress;
  QProcess daemon;
  QList<QProcess *> boards;
};

QProcess *
QtExampleTest::startBoard ()
{
  auto *board = new QProcess (this);
  boards << board;
  board->setProcessChannelMode (QProcess::ForwardedErrorChannel);
  board->start (qEnvironmentVariable ("STM32_SIM"),
                { "--mode", "leak", "--slots", "2", "--quiet" });
  return board;
}

QJsonObject
QtExampleTest::boardEvent (QProcess *board, const QString &event)
{
  QDeadlineTimer deadline (waitMs);
  while (!deadline.hasExpired ())
    {
      if (!board->canReadLine () && !board->waitForReadyRead (deadline.remainingTime ()))
        break;
      while (board->canReadLine ())
        {
          const QJsonObject object = QJsonDocument::fromJson (board->readLine ()).object ();
          if (object.value ("event").toString () == event)
            return object;
        }
    }
  qFatal ("no %s event from the board within %d ms", qPrintable (event), waitMs);
}

int
QtExampleTest::slotsInUse (QProcess *board)
{
  board->write ("status\n");
  return boardEvent (board, "status").value ("slots_in_use").toInt (-1);
}

void
QtExampleTest::initTestCase ()
{
  QVERIFY (dir.isValid ());
  // A bus of our own, as stm32d --session would have on a desk.
  bus.setProcessChannelMode (QProcess::ForwardedErrorChannel);
  bus.start ("dbus-daemon", { "--session", "--nofork", "--print-address=1" });
  QVERIFY (bus.waitForReadyRead (waitMs));
  busAddress = QString::fromUtf8 (bus.readLine ()).trimmed ();
  QVERIFY (!busAddress.isEmpty ());

  QProcess *board = startBoard ();
  const int port = boardEvent (board, "listening").value ("port").toInt ();
  QVERIFY (port > 0);
  QFile config (dir.filePath ("stm32d.conf"));
  QVERIFY (config.open (QIODevice::WriteOnly));
  config.write (QStringLiteral ("[Link board]\nHost=127.0.0.1\nPort=%1\nAutoconnect=false\n")
                    .arg (port)
                    .toUtf8 ());
  config.close ();

  QProcessEnvironment environment = QProcessEnvironment::systemEnvironment ();
  environment.insert ("DBUS_SESSION_BUS_ADDRESS", busAddress);
  daemon.setProcessEnvironment (environment);
  daemon.setProcessChannelMode (QProcess::ForwardedChannels);
  daemon.start (qEnvironmentVariable ("STM32D"), { "--session", "--config", config.fileName () });
  QVERIFY (daemon.waitForStarted (waitMs));
}

void
QtExampleTest::cleanupTestCase ()
{
  daemon.terminate ();
  daemon.waitForFinished (waitMs);
  for (QProcess *board : boards)
    {
      board->closeWriteChannel (); // EOF on stdin: the board quits
      board->waitForFinished (waitMs);
    }
  bus.terminate ();
  bus.waitForFinished (waitMs);
}

void
QtExampleTest::cyclesThroughStm32d ()
{
  QDBusConnection connection = QDBusConnection::connectToBus (busAddress, "example");
  QVERIFY (connection.isConnected ());
  QTRY_VERIFY_WITH_TIMEOUT (connection.interface ()->isServiceRegistered ("org.stm32d"), waitMs);

  LinkWindow window (connection);
  window.show ();
  auto *links = window.findChild<QComboBox *> ("link");
  auto *connectButton = window.findChild<QPushButton *> ("connect");
  auto *disconnectButton = window.findChild<QPushButton *> ("disconnect");
  auto *transactButton = window.findChild<QPushButton *> ("transact");
  auto *state = window.findChild<QLabel *> ("state");
  auto *error = window.findChild<QLabel *> ("error");
  auto *input = window.findChild<QLineEdit *> ("input");
  auto *reply = window.findChild<QLabel *> ("reply");
  auto *history = window.findChild<QTableWidget *> ("history");
  QTRY_COMPARE_WITH_TIMEOUT (links->count (), 1, waitMs);
  QCOMPARE (links->currentText (), QStringLiteral ("board"));
  QTRY_COMPARE_WITH_TIMEOUT (state->text (), QStringLiteral ("disconnected"), waitMs);

  for (int cycle = 1; cycle <= cycles; cycle++)
    {
      const QString request = QStringLiteral ("ping %1").arg (cycle);

      QTest::mouseClick (connectButton, Qt::LeftButton);
      QTRY_COMPARE_WITH_TIMEOUT (state->text (), QStringLiteral ("connected"), waitMs);
      input->setText (request);
      QTest::mouseClick (transactButton, Qt::LeftButton);
      QTRY_COMPARE_WITH_TIMEOUT (reply->text (), request, waitMs);
      QTest::mouseClick (disconnectButton, Qt::LeftButton);
      QTRY_COMPARE_WITH_TIMEOUT (state->text (), QStringLiteral ("disconnected"), waitMs);
      QCOMPARE (error->text (), QString ());
    }

  // The board's own view: stm32d's close gave every slot back.
  QCOMPARE (slotsInUse (boards.first ()), 0);
  QTest::mouseClick (window.findChild<QPushButton *> ("refresh-history"), Qt::LeftButton);
  QTRY_VERIFY_WITH_TIMEOUT (history->rowCount () > 0, waitMs);
}

void
QtExampleTest::cyclesWithQTcpSocket ()
{
  QProcess *board = startBoard ();
  const quint16 port = boardEvent (board, "listening").value ("port").toInt ();
  int failedCycle = 0;
  QAbstractSocket::SocketError failure = QAbstractSocket::UnknownSocketError;

  // What the GUIs did: connect, ask, close, delete; blocking waits with
  // timeouts, as in many a Qt example.
  for (int cycle = 1; cycle <= cycles && failedCycle == 0; cycle++)
    {
      QTcpSocket socket;
      socket.connectToHost ("127.0.0.1", port);
      if (socket.waitForConnected (waitMs))
        {
          socket.write ("ping\n");
          if (socket.waitForReadyRead (waitMs) && socket.readLine () == "ping\n")
            {
              socket.disconnectFromHost ();
              continue;
            }
        }
      failedCycle = cycle;
      failure = socket.error ();
      qInfo ("cycle %d: %s", cycle, qPrintable (socket.errorString ()));
    }

  // Firmware that ignores EOF keeps a slot for every closed socket: the third
  // connection is accepted and dropped, "the remote host closed the connection".
  QVERIFY2 (failedCycle > 0, "every QTcpSocket cycle worked: the board did not fill up");
  QCOMPARE (failedCycle, 3);
  QCOMPARE (failure, QAbstractSocket::RemoteHostClosedError);
  QCOMPARE (slotsInUse (board), 2);
}

QTEST_MAIN (QtExampleTest)
#include "test-qt-example.moc"
