// SPDX-License-Identifier: LGPL-2.1-or-later
#include "link-window.h"

#include <QComboBox>
#include <QDBusMetaType>
#include <QDBusObjectPath>
#include <QDBusPendingCallWatcher>
#include <QDBusPendingReply>
#include <QDateTime>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

namespace
{
const QString service = QStringLiteral ("org.stm32d");
const QString rootPath = QStringLiteral ("/org/stm32d");
const QString linkInterface = QStringLiteral ("org.stm32d.Link1");
const QString propertiesInterface = QStringLiteral ("org.freedesktop.DBus.Properties");
const uint transactTimeoutMs = 5000;

// GetManagedObjects' a{oa{sa{sv}}}: QtDBus needs the C++ types spelled out.
using InterfaceProperties = QMap<QString, QVariantMap>;
using ManagedObjects = QMap<QDBusObjectPath, InterfaceProperties>;
} // namespace

Q_DECLARE_METATYPE (InterfaceProperties)
Q_DECLARE_METATYPE (ManagedObjects)

LinkWindow::LinkWindow (const QDBusConnection &connection, QWidget *parent)
    : QWidget (parent), bus (connection)
{
  qDBusRegisterMetaType<InterfaceProperties> ();
  qDBusRegisterMetaType<ManagedObjects> ();
  qDBusRegisterMetaType<QList<QVariantMap>> ();

  linkBox = new QComboBox;
  linkBox->setObjectName ("link");
  connectButton = new QPushButton (tr ("Connect"));
  connectButton->setObjectName ("connect");
  disconnectButton = new QPushButton (tr ("Disconnect"));
  disconnectButton->setObjectName ("disconnect");
  stateLabel = new QLabel;
  stateLabel->setObjectName ("state");
  errorLabel = new QLabel;
  errorLabel->setObjectName ("error");
  errorLabel->setWordWrap (true);
  input = new QLineEdit;
  input->setObjectName ("input");
  sendButton = new QPushButton (tr ("Send"));
  sendButton->setObjectName ("send");
  transactButton = new QPushButton (tr ("Transact"));
  transactButton->setObjectName ("transact");
  replyLabel = new QLabel;
  replyLabel->setObjectName ("reply");
  log = new QPlainTextEdit;
  log->setObjectName ("log");
  log->setReadOnly (true);
  log->setMaximumBlockCount (1000);
  history = new QTableWidget (0, 5);
  history->setObjectName ("history");
  history->setHorizontalHeaderLabels (
      { tr ("Started"), tr ("Closed"), tr ("Reason"), tr ("Closed by"), tr ("RST") });
  history->horizontalHeader ()->setStretchLastSection (true);
  auto *historyButton = new QPushButton (tr ("Refresh history"));
  historyButton->setObjectName ("refresh-history");

  auto *buttons = new QHBoxLayout;
  buttons->addWidget (connectButton);
  buttons->addWidget (disconnectButton);
  auto *sending = new QHBoxLayout;
  sending->addWidget (input);
  sending->addWidget (sendButton);
  sending->addWidget (transactButton);
  auto *form = new QFormLayout;
  form->addRow (tr ("Board"), linkBox);
  form->addRow (buttons);
  form->addRow (tr ("State"), stateLabel);
  form->addRow (tr ("Last error"), errorLabel);
  form->addRow (tr ("Frame"), sending);
  form->addRow (tr ("Reply"), replyLabel);
  auto *layout = new QVBoxLayout (this);
  layout->addLayout (form);
  layout->addWidget (new QLabel (tr ("Frames from the board")));
  layout->addWidget (log);
  layout->addWidget (history);
  layout->addWidget (historyButton);

  connect (linkBox, qOverload<int> (&QComboBox::currentIndexChanged), this, &LinkWindow::chooseLink);
  connect (connectButton, &QPushButton::clicked, this, &LinkWindow::connectLink);
  connect (disconnectButton, &QPushButton::clicked, this, &LinkWindow::disconnectLink);
  connect (sendButton, &QPushButton::clicked, this, &LinkWindow::send);
  connect (transactButton, &QPushButton::clicked, this, &LinkWindow::transact);
  connect (input, &QLineEdit::returnPressed, this, &LinkWindow::transact);
  connect (historyButton, &QPushButton::clicked, this, &LinkWindow::refreshHistory);

  setBusy (true);
  refreshLinks ();
}

void
LinkWindow::whenDone (const QDBusPendingCall &call,
                      std::function<void (const QDBusMessage &)> onReply)
{
  auto *watcher = new QDBusPendingCallWatcher (call, this);
  connect (watcher, &QDBusPendingCallWatcher::finished, this,
           [this, onReply] (QDBusPendingCallWatcher *finished) {
             finished->deleteLater ();
             if (finished->isError ())
               showError (finished->error ());
             else if (onReply)
               onReply (finished->reply ());
           });
}

void
LinkWindow::showError (const QDBusError &error)
{
  // stm32d's errors are named org.stm32d.Error.*: the name is what a program
  // switches on, the message is what a person reads.
  errorLabel->setText (QStringLiteral ("%1: %2").arg (error.name (), error.message ()));
}

void
LinkWindow::refreshLinks ()
{
  auto message = QDBusMessage::createMethodCall (service, rootPath,
                                                 "org.freedesktop.DBus.ObjectManager",
                                                 "GetManagedObjects");
  whenDone (bus.asyncCall (message), [this] (const QDBusMessage &reply) {
    const auto objects = qdbus_cast<ManagedObjects> (reply.arguments ().value (0));
    linkBox->clear ();
    for (auto it = objects.cbegin (); it != objects.cend (); ++it)
      if (it->contains (linkInterface))
        linkBox->addItem (it->value (linkInterface).value ("Name").toString (), it.key ().path ());
    if (linkBox->count () == 0)
      errorLabel->setText (tr ("stm32d has no links: add one to its configuration"));
  });
}

void
LinkWindow::chooseLink (int index)
{
  if (link)
    {
      bus.disconnect (service, linkPath, propertiesInterface, "PropertiesChanged", this,
                      SLOT (onPropertiesChanged (QString, QVariantMap, QStringList)));
      delete link;
    }
  linkPath = linkBox->itemData (index).toString ();
  setBusy (linkPath.isEmpty ());
  if (linkPath.isEmpty ())
    return;

  link = new OrgStm32dLink1Interface (service, linkPath, bus, this);
  connect (link, &OrgStm32dLink1Interface::Received, this, &LinkWindow::onReceived);
  // State comes as it changes; subscribe first, then read it once, so no
  // change falls between the two.
  bus.connect (service, linkPath, propertiesInterface, "PropertiesChanged", this,
               SLOT (onPropertiesChanged (QString, QVariantMap, QStringList)));
  auto getAll = QDBusMessage::createMethodCall (service, linkPath, propertiesInterface, "GetAll");
  getAll << linkInterface;
  whenDone (bus.asyncCall (getAll), [this] (const QDBusMessage &reply) {
    applyProperties (qdbus_cast<QVariantMap> (reply.arguments ().value (0)));
  });
}

void
LinkWindow::onPropertiesChanged (const QString &interface, const QVariantMap &changed,
                                 const QStringList &)
{
  if (interface == linkInterface)
    applyProperties (changed);
}

void
LinkWindow::applyProperties (const QVariantMap &properties)
{
  if (properties.contains ("State"))
    stateLabel->setText (properties.value ("State").toString ());
  if (properties.contains ("LastErrorMessage") || properties.contains ("LastError"))
    {
      const QString name = properties.value ("LastError").toString ();
      const QString message = properties.value ("LastErrorMessage").toString ();
      if (!name.isEmpty () && name != "none")
        errorLabel->setText (message.isEmpty () ? name : QStringLiteral ("%1: %2").arg (name, message));
    }
}

void
LinkWindow::connectLink ()
{
  errorLabel->clear ();
  whenDone (link->Connect (), nullptr);
}

void
LinkWindow::disconnectLink ()
{
  // stm32d closes properly (FIN, then a RST if the board ignores it): the
  // window has no socket to abort, and nothing to wait for.
  whenDone (link->Disconnect (), nullptr);
}

void
LinkWindow::send ()
{
  const QByteArray frame = input->text ().toUtf8 ();
  // Send's reply comes once the board's TCP stack acknowledged the frame.
  whenDone (link->Send (frame), [this, frame] (const QDBusMessage &) {
    log->appendPlainText (tr ("sent: %1").arg (QString::fromUtf8 (frame)));
  });
}

void
LinkWindow::transact ()
{
  replyLabel->clear ();
  whenDone (link->Transact (input->text ().toUtf8 (), transactTimeoutMs),
            [this] (const QDBusMessage &reply) {
              replyLabel->setText (QString::fromUtf8 (reply.arguments ().value (0).toByteArray ()));
            });
}

void
LinkWindow::onReceived (const QByteArray &frame)
{
  log->appendPlainText (QString::fromUtf8 (frame));
}

void
LinkWindow::refreshHistory ()
{
  whenDone (link->GetHistory (), [this] (const QDBusMessage &reply) {
    const auto attempts = qdbus_cast<QList<QVariantMap>> (reply.arguments ().value (0));
    auto when = [] (const QVariant &us) {
      const qlonglong value = us.toLongLong ();
      return value == 0 ? QString ()
                        : QDateTime::fromMSecsSinceEpoch (value / 1000).toString ("hh:mm:ss.zzz");
    };
    history->setRowCount (attempts.size ());
    for (int row = 0; row < attempts.size (); row++)
      {
        const QVariantMap &attempt = attempts.at (row);
        const QStringList cells = { when (attempt.value ("started")),
                                    when (attempt.value ("closed")),
                                    attempt.value ("reason").toString (),
                                    attempt.value ("closed-by").toString (),
                                    attempt.value ("aborted").toBool () ? tr ("yes") : tr ("no") };
        for (int column = 0; column < cells.size (); column++)
          history->setItem (row, column, new QTableWidgetItem (cells.at (column)));
      }
  });
}

void
LinkWindow::setBusy (bool busy)
{
  for (QWidget *widget :
       std::initializer_list<QWidget *>{ connectButton, disconnectButton, sendButton, transactButton })
    widget->setEnabled (!busy);
}
