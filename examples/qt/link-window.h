// SPDX-License-Identifier: LGPL-2.1-or-later
// The GUI from the old "remote host closed the connection" report, done with
// stm32d: the board's socket lives in the daemon, the window only asks.
#pragma once

#include <QDBusConnection>
#include <QDBusPendingCall>
#include <QPointer>
#include <QWidget>

#include "link1_proxy.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QTableWidget;

class LinkWindow : public QWidget
{
  Q_OBJECT

public:
  explicit LinkWindow (const QDBusConnection &bus, QWidget *parent = nullptr);

private slots:
  void refreshLinks ();
  void chooseLink (int index);
  void connectLink ();
  void disconnectLink ();
  void send ();
  void transact ();
  void refreshHistory ();
  void onPropertiesChanged (const QString &interface, const QVariantMap &changed,
                            const QStringList &invalidated);
  void onReceived (const QByteArray &frame);

private:
  // Every call is asynchronous: @onReply runs when the reply comes, errors
  // are shown as stm32d names them. Nothing ever waits on the GUI thread.
  void whenDone (const QDBusPendingCall &call, std::function<void (const QDBusMessage &)> onReply);
  void showError (const QDBusError &error);
  void applyProperties (const QVariantMap &properties);
  void setBusy (bool busy);

  QDBusConnection bus;
  QPointer<OrgStm32dLink1Interface> link;
  QString linkPath;

  QComboBox *linkBox;
  QPushButton *connectButton;
  QPushButton *disconnectButton;
  QLabel *stateLabel;
  QLabel *errorLabel;
  QLineEdit *input;
  QPushButton *sendButton;
  QPushButton *transactButton;
  QLabel *replyLabel;
  QPlainTextEdit *log;
  QTableWidget *history;
};
