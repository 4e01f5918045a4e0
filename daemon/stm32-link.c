/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-link.h"

#include "stm32-backoff.h"
#include "stm32-defaults.h"
#include "stm32-enum-types.h"
#include "stm32-error.h"
#include "stm32-framer.h"
#include "stm32-socket-options.h"

#define LINK_LOG(self, level, fmt, ...)                                                            \
  g_log_structured (G_LOG_DOMAIN, level, "STM32D_LINK", (self)->name, "MESSAGE", "%s: " fmt,       \
                    (self)->name, ##__VA_ARGS__)

/*
 * One socket's life, from the first connect attempt to its fd being closed.
 * GIO always calls back, even after cancellation, so every callback holds a
 * reference on this (not on the link); @link is cleared when the link goes away.
 * Teardown waits until @pending is zero, so the fd is closed only when no
 * operation can still touch it, and only then may a new socket be created.
 */
typedef struct
{
  Stm32Link *link;
  GCancellable *cancellable;       /* connect and read: cancelled when the connection ends */
  GCancellable *write_cancellable; /* cancelled only when the link itself goes away */
  GSocketAddressEnumerator *addresses;
  GSocketConnection *connection;
  GError *connect_error; /* why the last address failed, reported if none works */
  guint pending;
  gboolean ending;
  gboolean closed;
  gboolean shut_wr;
  gboolean abortive;
  /* Raw mode (AcquireStream) belongs to one connection and dies with it. @raw
   * sends received bytes past the decoder until released, to the end of the
   * connection if the hold ended with it: those bytes are no frames. */
  gboolean raw;
  guint raw_hold;     /* the holder's token; 0 once released or no longer connected */
  GBytes *writing;    /* the kernel may read this until the write calls back */
  gsize write_offset; /* how much of @writing the kernel took */
  guint64 written;    /* bytes the kernel took from us on this connection */
  guint8 buffer[STM32_READ_CHUNK];
} LinkIo;

typedef struct _Transaction Transaction;

/* What the kernel took whole, counted (and a Send answered) once the board's
 * TCP stack has acknowledged its last byte: a frame written to a board that
 * has just rebooted is in our kernel, not on the board, and must not be
 * reported sent. */
typedef struct
{
  GTask *task; /* NULL when no one waits: heartbeats, requests, raw bytes */
  guint64 end; /* LinkIo.written once this frame was in */
  gsize size;
  gboolean raw;
} Unconfirmed;

typedef struct
{
  GBytes *wire;
  GTask *task;              /* NULL for heartbeats and transaction requests */
  Transaction *transaction; /* set for a transaction's request */
  gboolean raw;             /* a raw stream's bytes: counted as bytes, not frames */
  gboolean queued;          /* in the send queue (it leaves it only to be freed) */
  gboolean started;
} SendRequest;

struct _Transaction
{
  Stm32Link *link;
  GTask *task;          /* NULL once answered early: an orphan awaiting its reply */
  SendRequest *request; /* owned until queued */
  guint timeout_ms;
  guint timer;
  GSource *cancelled; /* dispatches the caller's cancellation from the main loop */
  gboolean armed;     /* the request started being written: the next frame is the reply */
  gboolean sent;      /* ... and was written whole: the board may have it */
};

struct _Stm32Link
{
  GObject parent_instance;

  char *name;
  Stm32LinkConfig *config;
  GSocketClient *client;
  Stm32Backoff backoff;
  Stm32History *history;

  Stm32LinkState state;
  gboolean wanted; /* someone wants the link up: Autoconnect, or Connect() until Disconnect() */
  LinkIo *io;
  Stm32Decoder *decoder;
  Stm32HistoryEntry *attempt;
  gint64 connected_mono;
  gint64 last_rx_mono;

  /* How the current attempt ends; the first reason given wins. */
  Stm32EndReason end_reason;
  Stm32ClosedBy end_closed_by;
  GError *end_error;

  Stm32EndReason last_error;
  char *last_error_message;
  guint retry_in;
  char *local_address;
  char *remote_address;
  gint64 connected_since;

  guint connect_timer;
  guint close_timer;
  guint retry_timer;
  guint idle_timer;
  guint heartbeat_timer;
  guint heartbeat_deadline;

  GQueue send_queue;
  GQueue unconfirmed;
  guint confirm_timer;
  guint confirm_interval;
  gsize queued_bytes;
  GQueue transactions;
  GPtrArray *connect_waiters;
  GPtrArray *disconnect_waiters;
  guint raw_serial; /* the last raw-mode token handed out */

  guint64 bytes_sent;
  guint64 bytes_received;
  guint64 frames_sent;
  guint64 frames_received;
  guint64 connects;
  guint64 disconnects;
  guint64 connect_failures;
};

G_DEFINE_FINAL_TYPE (Stm32Link, stm32_link, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_NAME,
  PROP_HOST,
  PROP_PORT,
  PROP_FRAMING,
  PROP_STATE,
  PROP_AUTOCONNECT,
  PROP_LOCAL_ADDRESS,
  PROP_REMOTE_ADDRESS,
  PROP_CONNECTED_SINCE,
  PROP_RETRY_IN,
  PROP_LAST_ERROR,
  PROP_LAST_ERROR_MESSAGE,
  PROP_BYTES_SENT,
  PROP_BYTES_RECEIVED,
  PROP_FRAMES_SENT,
  PROP_FRAMES_RECEIVED,
  PROP_CONNECTS,
  PROP_DISCONNECTS,
  PROP_CONNECT_FAILURES,
  PROP_RAW,
  N_PROPS
};

static GParamSpec *props[N_PROPS];

enum
{
  SIGNAL_RECEIVED,
  SIGNAL_RECEIVED_RAW,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void link_start_attempt (Stm32Link *self);
static void link_kick_writer (Stm32Link *self);
static void link_io_read (LinkIo *io);
static void link_arm_watchdogs (Stm32Link *self);
static void link_issue_transaction (Stm32Link *self);

/* ---- small helpers ------------------------------------------------------ */

static LinkIo *
link_io_new (Stm32Link *self)
{
  LinkIo *io = g_rc_box_new0 (LinkIo);

  io->link = self;
  io->cancellable = g_cancellable_new ();
  io->write_cancellable = g_cancellable_new ();
  return io;
}

static void
link_io_clear (LinkIo *io)
{
  g_clear_object (&io->cancellable);
  g_clear_object (&io->write_cancellable);
  g_clear_object (&io->addresses);
  g_clear_object (&io->connection);
  g_clear_error (&io->connect_error);
  g_clear_pointer (&io->writing, g_bytes_unref);
}

static LinkIo *
link_io_ref (LinkIo *io)
{
  return g_rc_box_acquire (io);
}

static void
link_io_unref (LinkIo *io)
{
  g_rc_box_release_full (io, (GDestroyNotify) link_io_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (LinkIo, link_io_unref)

static char *
address_to_string (GSocketAddress *address)
{
  return address ? g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address)) : NULL;
}

static Stm32Error
reason_to_error_code (Stm32EndReason reason)
{
  switch (reason)
    {
    case STM32_END_REASON_NONE:
    case STM32_END_REASON_LOCAL:
      return STM32_ERROR_NOT_CONNECTED;
    case STM32_END_REASON_REMOTE_CLOSED:
      return STM32_ERROR_REMOTE_CLOSED;
    case STM32_END_REASON_RESET:
      return STM32_ERROR_RESET;
    case STM32_END_REASON_SERVER_BUSY:
      return STM32_ERROR_SERVER_BUSY;
    case STM32_END_REASON_TIMEOUT:
      return STM32_ERROR_TIMEOUT;
    case STM32_END_REASON_REFUSED:
      return STM32_ERROR_REFUSED;
    case STM32_END_REASON_DEAD_PEER:
      return STM32_ERROR_DEAD_PEER;
    case STM32_END_REASON_HOST_NOT_FOUND:
      return STM32_ERROR_HOST_NOT_FOUND;
    case STM32_END_REASON_UNREACHABLE:
      return STM32_ERROR_UNREACHABLE;
    case STM32_END_REASON_PROTOCOL_ERROR:
      return STM32_ERROR_INVALID_FRAME;
    case STM32_END_REASON_FAILED:
    default:
      return STM32_ERROR_FAILED;
    }
}

static Stm32EndReason
classify_connect_error (const GError *error)
{
  if (error->domain == G_RESOLVER_ERROR)
    return STM32_END_REASON_HOST_NOT_FOUND;
  /* lwIP's accept-then-abort can overtake the connect's own completion, so a
   * reset during connect is the same full table as a reset right after it. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    return STM32_END_REASON_SERVER_BUSY;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
    return STM32_END_REASON_REFUSED;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    return STM32_END_REASON_TIMEOUT;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE))
    return STM32_END_REASON_UNREACHABLE;
  return STM32_END_REASON_FAILED;
}

/* An error on an established connection. ECONNRESET and EPIPE both arrive as
 * CONNECTION_CLOSED (alias BROKEN_PIPE); ETIMEDOUT is keepalive or
 * TCP_USER_TIMEOUT giving up on a board that stopped answering. */
static Stm32EndReason
classify_io_error (const GError *error)
{
  /* ENOTCONN on a socket that was connected: a RST came in before we asked. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED))
    return STM32_END_REASON_RESET;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE))
    return STM32_END_REASON_DEAD_PEER;
  return STM32_END_REASON_FAILED;
}

static GError *link_error_new (Stm32Link *self, Stm32EndReason reason, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

static GError *
link_error_new (Stm32Link *self, Stm32EndReason reason, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  return g_error_new (STM32_ERROR, reason_to_error_code (reason), "%s:%u: %s", self->config->host,
                      self->config->port, message);
}

static gboolean
link_in_busy_window (Stm32Link *self)
{
  /* lwIP aborts a connection it cannot give a netconn to right after the
   * handshake, before the firmware ever sends; a board that spoke first did not. */
  return self->attempt->bytes_received == 0 &&
         g_get_monotonic_time () - self->connected_mono < (gint64) self->config->busy_window * 1000;
}

static void
link_add_counter (Stm32Link *self, guint64 *counter, guint64 amount, int prop)
{
  *counter += amount;
  g_object_notify_by_pspec (G_OBJECT (self), props[prop]);
}

static void
link_set_string (Stm32Link *self, char **field, char *value, int prop)
{
  if (g_strcmp0 (*field, value) == 0)
    {
      g_free (value);
      return;
    }
  g_free (*field);
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), props[prop]);
}

/* Completes every task in @waiters, which the caller has stolen from the link,
 * so callbacks that call back into the link see it in a consistent state. */
static void
complete_waiters (GPtrArray *waiters, const GError *error)
{
  for (guint i = 0; waiters && i < waiters->len; i++)
    {
      GTask *task = g_ptr_array_index (waiters, i);

      if (error)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

/* ---- the state machine ---------------------------------------------------- */

/* A raw hold ends with the connected state, so that its holder learns at once
 * (notify::raw) and a later connection never starts out held. */
static void
link_end_raw_hold (Stm32Link *self)
{
  if (self->io == NULL || self->io->raw_hold == 0)
    return;
  self->io->raw_hold = 0;
  LINK_LOG (self, G_LOG_LEVEL_INFO, "raw stream ended with the connection");
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_RAW]);
}

/* The one place the state changes. State, LastError and RetryIn are notified
 * together (freeze/thaw), so an observer never sees one without the others. */
static void
link_transition (Stm32Link *self, Stm32LinkState state, Stm32EndReason error,
                 const char *error_message)
{
  GObject *object = G_OBJECT (self);

  g_object_freeze_notify (object);
  if (self->state != state)
    {
      LINK_LOG (self, G_LOG_LEVEL_INFO, "%s → %s",
                stm32_enum_to_string (STM32_TYPE_LINK_STATE, self->state),
                stm32_enum_to_string (STM32_TYPE_LINK_STATE, state));
      self->state = state;
      g_object_notify_by_pspec (object, props[PROP_STATE]);
    }
  if (state != STM32_LINK_STATE_CONNECTED)
    link_end_raw_hold (self);
  if (self->last_error != error)
    {
      self->last_error = error;
      g_object_notify_by_pspec (object, props[PROP_LAST_ERROR]);
    }
  link_set_string (self, &self->last_error_message, g_strdup (error_message),
                   PROP_LAST_ERROR_MESSAGE);
  if (state != STM32_LINK_STATE_WAITING && self->retry_in != 0)
    {
      self->retry_in = 0;
      g_object_notify_by_pspec (object, props[PROP_RETRY_IN]);
    }
  if (state != STM32_LINK_STATE_CONNECTED && state != STM32_LINK_STATE_CLOSING)
    {
      link_set_string (self, &self->local_address, NULL, PROP_LOCAL_ADDRESS);
      link_set_string (self, &self->remote_address, NULL, PROP_REMOTE_ADDRESS);
      if (self->connected_since != 0)
        {
          self->connected_since = 0;
          g_object_notify_by_pspec (object, props[PROP_CONNECTED_SINCE]);
        }
    }
  g_object_thaw_notify (object);
}

static gboolean
on_retry_timer (gpointer user_data)
{
  Stm32Link *self = user_data;

  self->retry_timer = 0;
  link_start_attempt (self);
  return G_SOURCE_REMOVE;
}

static void
link_schedule_retry (Stm32Link *self, const Stm32HistoryEntry *ended)
{
  guint delay;

  if (ended->connected != 0 &&
      ended->closed - ended->connected >= (gint64) self->config->retry_reset_after * 1000)
    stm32_backoff_reset (&self->backoff);
  delay = stm32_backoff_next (&self->backoff);
  /* A board that turns us away for a full table needs time to free a slot. */
  if (ended->reason == STM32_END_REASON_SERVER_BUSY)
    delay = MAX (delay, self->config->busy_backoff);

  link_transition (self, STM32_LINK_STATE_WAITING, ended->reason, ended->error);
  self->retry_in = delay;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_RETRY_IN]);
  self->retry_timer = g_timeout_add (delay, on_retry_timer, self);
  LINK_LOG (self, G_LOG_LEVEL_INFO, "retrying in %u ms", delay);
}

static void
link_clear_timers (Stm32Link *self)
{
  g_clear_handle_id (&self->connect_timer, g_source_remove);
  g_clear_handle_id (&self->close_timer, g_source_remove);
  g_clear_handle_id (&self->idle_timer, g_source_remove);
  g_clear_handle_id (&self->heartbeat_timer, g_source_remove);
  g_clear_handle_id (&self->heartbeat_deadline, g_source_remove);
  g_clear_handle_id (&self->confirm_timer, g_source_remove);
}

/* The fd is gone: record the attempt, then wait, retry or rest. */
static void
link_finish_attempt (Stm32Link *self)
{
  g_autoptr (LinkIo) io = g_steal_pointer (&self->io);
  g_autoptr (GPtrArray) disconnect_waiters = g_steal_pointer (&self->disconnect_waiters);
  g_autoptr (GPtrArray) connect_waiters = NULL;
  Stm32HistoryEntry *entry = g_steal_pointer (&self->attempt);
  g_autoptr (GError) end_error = g_steal_pointer (&self->end_error);
  gboolean was_connected = entry->connected != 0;

  io->link = NULL;
  g_clear_pointer (&self->decoder, stm32_decoder_free);
  self->disconnect_waiters = g_ptr_array_new_with_free_func (g_object_unref);

  entry->closed = g_get_real_time ();
  entry->reason = self->end_reason;
  entry->closed_by = self->end_closed_by;
  entry->aborted = io->abortive;
  entry->error = end_error ? g_strdup (end_error->message) : NULL;
  LINK_LOG (self, G_LOG_LEVEL_MESSAGE, "connection ended: %s%s%s%s",
            stm32_enum_to_string (STM32_TYPE_END_REASON, entry->reason), entry->error ? " (" : "",
            entry->error ? entry->error : "", entry->error ? ")" : "");

  /* Connect() called while we closed on request is served by the next
   * attempt; any other ending is the answer to the Connect() calls waiting. */
  if (!(self->wanted && entry->reason == STM32_END_REASON_LOCAL))
    {
      connect_waiters = g_steal_pointer (&self->connect_waiters);
      self->connect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
    }

  g_object_freeze_notify (G_OBJECT (self));
  if (was_connected)
    link_add_counter (self, &self->disconnects, 1, PROP_DISCONNECTS);
  else
    link_add_counter (self, &self->connect_failures, 1, PROP_CONNECT_FAILURES);

  if (self->wanted && entry->reason == STM32_END_REASON_LOCAL)
    {
      /* Connect() arrived while we were closing: the old fd is gone, go again now. */
      stm32_history_push (self->history, entry);
      link_start_attempt (self);
    }
  else if (self->wanted)
    {
      link_schedule_retry (self, entry);
      stm32_history_push (self->history, entry);
    }
  else
    {
      gboolean failed = entry->reason != STM32_END_REASON_LOCAL;

      link_transition (self, STM32_LINK_STATE_DISCONNECTED,
                       failed ? entry->reason : STM32_END_REASON_NONE,
                       failed ? entry->error : NULL);
      stm32_history_push (self->history, entry);
    }
  g_object_thaw_notify (G_OBJECT (self));

  complete_waiters (disconnect_waiters, NULL);
  complete_waiters (connect_waiters, end_error);
}

static void
on_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;

  /* Closing a socket cannot fail in a way that leaves the fd open. */
  if (!g_io_stream_close_finish (G_IO_STREAM (source), result, &error))
    g_debug ("close: %s", error->message);
  io->pending--;
  io->closed = TRUE;
  if (io->link != NULL)
    link_finish_attempt (io->link);
}

/* Closes the fd once no operation can touch it any more. */
static void
link_io_maybe_close (LinkIo *io)
{
  GSocket *socket;

  if (io->link == NULL || !io->ending || io->pending > 0)
    return;
  if (io->connection == NULL || io->closed)
    {
      link_finish_attempt (io->link);
      return;
    }
  socket = g_socket_connection_get_socket (io->connection);
  if (io->abortive)
    {
      g_autoptr (GError) error = NULL;

      if (!stm32_socket_set_abortive_close (socket, &error))
        LINK_LOG (io->link, G_LOG_LEVEL_WARNING, "%s", error->message);
    }
  io->pending++;
  /* Not cancellable: our cancellable is already cancelled, and a close that
   * never ran would leak the fd. With or without SO_LINGER {1, 0} it never blocks. */
  g_io_stream_close_async (G_IO_STREAM (io->connection), G_PRIORITY_DEFAULT, NULL, on_closed,
                           link_io_ref (io));
}

/* What a frame that never went out whole is answered with. */
static GError *
not_sent_error_new (const GError *end_error)
{
  return g_error_new (end_error->domain, end_error->code, "Not sent, the connection ended: %s",
                      end_error->message);
}

/* What a transaction whose request went out, and may have reached the board,
 * is answered with when the connection ends before the reply. */
static GError *
no_reply_error_new (const GError *end_error)
{
  return g_error_new (end_error->domain, end_error->code, "No reply, the connection ended: %s",
                      end_error->message);
}

static void send_request_free (Stm32Link *self, SendRequest *request);
static void link_confirm_acknowledged (Stm32Link *self);

/* The connection ended: what the board acknowledged was sent, the rest was not. */
static void
link_fail_unconfirmed (Stm32Link *self, const GError *end_error)
{
  Unconfirmed *unconfirmed;

  link_confirm_acknowledged (self);
  while ((unconfirmed = g_queue_pop_head (&self->unconfirmed)) != NULL)
    {
      if (unconfirmed->task)
        g_task_return_new_error (unconfirmed->task, end_error->domain, end_error->code,
                                 "Not delivered: the board did not acknowledge the frame before "
                                 "the connection ended: %s",
                                 end_error->message);
      g_clear_object (&unconfirmed->task);
      g_free (unconfirmed);
    }
  g_clear_handle_id (&self->confirm_timer, g_source_remove);
}
static void transaction_finish (Stm32Link *self, Transaction *transaction, GBytes *reply,
                                GError *error);

/* Fails every frame and transaction waiting on this connection, with the reason it ended. */
static void
link_fail_pending (Stm32Link *self, const GError *end_error, gboolean including_in_flight)
{
  g_autoptr (GError) not_sent = NULL;
  GQueue requests = self->send_queue;
  SendRequest *request;
  Transaction *transaction;

  not_sent = not_sent_error_new (end_error);
  g_queue_init (&self->send_queue);
  /* The frame being written is answered by its write: the kernel may have
   * taken all of it before we learnt that the connection ended. */
  request = g_queue_peek_head (&requests);
  if (!including_in_flight && request != NULL && request->started)
    g_queue_push_tail (&self->send_queue, g_queue_pop_head (&requests));
  while ((transaction = g_queue_peek_head (&self->transactions)) != NULL)
    transaction_finish (self, transaction, NULL,
                        transaction->sent ? no_reply_error_new (end_error)
                                          : g_error_copy (not_sent));
  link_fail_unconfirmed (self, end_error);
  while ((request = g_queue_pop_head (&requests)) != NULL)
    {
      if (request->task)
        g_task_return_error (g_steal_pointer (&request->task), g_error_copy (not_sent));
      send_request_free (self, request);
    }
}

/* Ends the current attempt or connection, whatever stage it is in. Takes @error. */
static void
link_end (Stm32Link *self, Stm32EndReason reason, Stm32ClosedBy closed_by, gboolean abortive,
          GError *error)
{
  g_autoptr (GError) owned_error = error;
  LinkIo *io = self->io;

  if (io == NULL || io->ending)
    return;
  io->ending = TRUE;
  io->abortive = abortive;
  self->end_reason = reason;
  self->end_closed_by = closed_by;
  if (owned_error == NULL)
    owned_error = link_error_new (self, reason, "disconnected");
  self->end_error = g_error_copy (owned_error);
  link_clear_timers (self);
  g_cancellable_cancel (io->cancellable);
  /* A write is never cancelled: GTask would report one that already reached
   * the kernel as cancelled, and a frame that was sent would be answered "not
   * sent". A writable socket means it finished or will at once; one blocked on
   * a board that stopped reading is failed with EPIPE by shutting our side
   * down — then it really was not sent. (A FIN goes out only in that case.) */
  if (io->writing != NULL)
    {
      GSocket *socket = g_socket_connection_get_socket (io->connection);

      if ((g_socket_condition_check (socket, G_IO_OUT) & G_IO_OUT) == 0)
        g_socket_shutdown (socket, FALSE, TRUE, NULL);
    }

  g_object_ref (self);
  if (self->state == STM32_LINK_STATE_CONNECTED)
    link_transition (self, STM32_LINK_STATE_CLOSING, self->last_error, self->last_error_message);
  link_fail_pending (self, owned_error, FALSE);
  link_io_maybe_close (io);
  g_object_unref (self);
}

/* ---- connecting ------------------------------------------------------------ */

static gboolean
on_connect_timeout (gpointer user_data)
{
  Stm32Link *self = user_data;

  self->connect_timer = 0;
  link_end (self, STM32_END_REASON_TIMEOUT, STM32_CLOSED_BY_NONE, FALSE,
            link_error_new (self, STM32_END_REASON_TIMEOUT,
                            "no answer to connect within %u ms (board unreachable, or its TCP "
                            "control-block pool exhausted?)",
                            self->config->connect_timeout));
  return G_SOURCE_REMOVE;
}

static void link_io_next_address (LinkIo *io);

static void
link_on_connected (Stm32Link *self, GSocketConnection *connection)
{
  g_autoptr (GPtrArray) connect_waiters = g_steal_pointer (&self->connect_waiters);
  GSocket *socket = g_socket_connection_get_socket (connection);
  g_autoptr (GSocketAddress) local = g_socket_connection_get_local_address (connection, NULL);
  g_autoptr (GSocketAddress) remote = g_socket_connection_get_remote_address (connection, NULL);
  g_autoptr (GError) error = NULL;

  self->connect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  self->io->connection = connection;
  g_clear_handle_id (&self->connect_timer, g_source_remove);
  if (!stm32_socket_arm_liveness (socket, self->config, &error))
    {
      g_ptr_array_extend_and_steal (self->connect_waiters, g_steal_pointer (&connect_waiters));
      link_end (self, STM32_END_REASON_FAILED, STM32_CLOSED_BY_PC, TRUE, g_steal_pointer (&error));
      return;
    }

  self->attempt->connected = g_get_real_time ();
  self->attempt->local_address = address_to_string (local);
  self->attempt->remote_address = address_to_string (remote);
  self->connected_mono = self->last_rx_mono = g_get_monotonic_time ();
  self->decoder = stm32_decoder_new (self->config->framing, self->config->max_frame);

  g_object_freeze_notify (G_OBJECT (self));
  link_set_string (self, &self->local_address, g_strdup (self->attempt->local_address),
                   PROP_LOCAL_ADDRESS);
  link_set_string (self, &self->remote_address, g_strdup (self->attempt->remote_address),
                   PROP_REMOTE_ADDRESS);
  self->connected_since = self->attempt->connected;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_CONNECTED_SINCE]);
  link_add_counter (self, &self->connects, 1, PROP_CONNECTS);
  link_transition (self, STM32_LINK_STATE_CONNECTED, STM32_END_REASON_NONE, NULL);
  g_object_thaw_notify (G_OBJECT (self));

  link_io_read (self->io);
  link_arm_watchdogs (self);
  complete_waiters (connect_waiters, NULL);
}

static void
on_socket_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketConnection) connection =
      g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  Stm32Link *self = io->link;

  io->pending--;
  if (self == NULL || io->ending)
    {
      /* Connected just as we gave up: nothing was exchanged, reset it at once. */
      if (connection != NULL)
        {
          stm32_socket_set_abortive_close (g_socket_connection_get_socket (connection), NULL);
          io->connection = g_steal_pointer (&connection);
        }
      link_io_maybe_close (io);
      return;
    }
  if (connection == NULL)
    {
      /* Try the host's next address, one socket at a time. */
      g_clear_error (&io->connect_error);
      io->connect_error = g_steal_pointer (&error);
      link_io_next_address (io);
      return;
    }
  link_on_connected (self, g_steal_pointer (&connection));
}

static void
on_next_address (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) address = g_socket_address_enumerator_next_finish (
      G_SOCKET_ADDRESS_ENUMERATOR (source), result, &error);
  Stm32Link *self = io->link;
  Stm32EndReason reason;

  io->pending--;
  if (self == NULL || io->ending)
    {
      link_io_maybe_close (io);
      return;
    }
  if (address != NULL)
    {
      io->pending++;
      g_socket_client_connect_async (self->client, G_SOCKET_CONNECTABLE (address), io->cancellable,
                                     on_socket_connected, link_io_ref (io));
      return;
    }
  if (error == NULL)
    error = g_steal_pointer (&io->connect_error);
  if (error == NULL)
    error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "no address to connect to");
  reason = classify_connect_error (error);
  link_end (self, reason,
            reason == STM32_END_REASON_SERVER_BUSY ? STM32_CLOSED_BY_BOARD : STM32_CLOSED_BY_NONE,
            FALSE, link_error_new (self, reason, "%s", error->message));
}

static void
link_io_next_address (LinkIo *io)
{
  io->pending++;
  g_socket_address_enumerator_next_async (io->addresses, io->cancellable, on_next_address,
                                          link_io_ref (io));
}

static void
link_start_attempt (Stm32Link *self)
{
  g_autoptr (GSocketConnectable) endpoint = NULL;

  g_return_if_fail (self->io == NULL);
  g_clear_handle_id (&self->retry_timer, g_source_remove);

  self->io = link_io_new (self);
  self->attempt = g_new0 (Stm32HistoryEntry, 1);
  self->attempt->started = g_get_real_time ();
  self->end_reason = STM32_END_REASON_NONE;
  self->end_closed_by = STM32_CLOSED_BY_NONE;
  link_transition (self, STM32_LINK_STATE_CONNECTING, self->last_error, self->last_error_message);

  /* GSocketClient would race several addresses at once (happy eyeballs); the
   * board has room for few connections, so we resolve and try one at a time. */
  endpoint = g_network_address_new (self->config->host, self->config->port);
  self->io->addresses = g_socket_connectable_enumerate (endpoint);
  /* GSocketClient:timeout is an I/O timeout on the connected socket, not a
   * connect timeout; ours is a timer that cancels the attempt. */
  self->connect_timer = g_timeout_add (self->config->connect_timeout, on_connect_timeout, self);
  link_io_next_address (self->io);
}

/* ---- reading --------------------------------------------------------------- */

static void
link_deliver_frame (Stm32Link *self, GBytes *frame)
{
  Transaction *transaction = g_queue_peek_head (&self->transactions);

  link_add_counter (self, &self->frames_received, 1, PROP_FRAMES_RECEIVED);
  self->attempt->frames_received++;
  /* A reply is its caller's: broadcast, it would reach every client on the
   * bus, the caller too, mixed with what the board says on its own. One
   * whose caller gave up is nobody's, and is received like any other. */
  if (transaction != NULL && transaction->armed)
    {
      gboolean abandoned = transaction->task == NULL;

      transaction_finish (self, transaction, frame, NULL);
      if (!abandoned)
        return;
    }
  g_signal_emit (self, signals[SIGNAL_RECEIVED], 0, frame);
}

static void
link_on_raw_data (Stm32Link *self, const guint8 *data, gsize len)
{
  g_autoptr (GBytes) chunk = g_bytes_new (data, len);

  link_add_counter (self, &self->bytes_received, len, PROP_BYTES_RECEIVED);
  g_signal_emit (self, signals[SIGNAL_RECEIVED_RAW], 0, chunk);
}

static void
link_on_data (Stm32Link *self, const guint8 *data, gsize len)
{
  g_autoptr (GPtrArray) frames = NULL;
  g_autoptr (GError) error = NULL;
  gboolean valid;

  self->last_rx_mono = g_get_monotonic_time ();
  /* A reply usually carries the acknowledgement of what it answers. */
  link_confirm_acknowledged (self);
  g_clear_handle_id (&self->heartbeat_deadline, g_source_remove);
  self->attempt->bytes_received += len;
  self->attempt->last_received = g_get_real_time ();
  if (self->io->raw)
    {
      link_on_raw_data (self, data, len);
      return;
    }
  frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  valid = stm32_decoder_feed (self->decoder, data, len, frames, &error);

  g_object_freeze_notify (G_OBJECT (self));
  link_add_counter (self, &self->bytes_received, len, PROP_BYTES_RECEIVED);
  for (guint i = 0; i < frames->len; i++)
    link_deliver_frame (self, g_ptr_array_index (frames, i));
  g_object_thaw_notify (G_OBJECT (self));
  /* The heartbeat was answered: a transaction held behind it may go. */
  if (valid)
    link_issue_transaction (self);

  /* The stream can no longer be trusted: reset rather than wait for a FIN. */
  if (!valid)
    link_end (self, STM32_END_REASON_PROTOCOL_ERROR, STM32_CLOSED_BY_PC, TRUE,
              g_error_new (error->domain, error->code, "%s:%u: the board sent a bad frame: %s",
                           self->config->host, self->config->port, error->message));
}

static void
link_on_io_error (Stm32Link *self, GError *error)
{
  Stm32EndReason reason = classify_io_error (error);
  Stm32ClosedBy closed_by =
      reason == STM32_END_REASON_RESET ? STM32_CLOSED_BY_BOARD : STM32_CLOSED_BY_NONE;

  if (reason == STM32_END_REASON_RESET && link_in_busy_window (self))
    link_end (self, STM32_END_REASON_SERVER_BUSY, closed_by, FALSE,
              link_error_new (self, STM32_END_REASON_SERVER_BUSY,
                              "the board accepted and reset the connection at once (its "
                              "connection table is probably full)"));
  else
    link_end (self, reason, closed_by, FALSE, link_error_new (self, reason, "%s", error->message));
}

static void
link_on_eof (Stm32Link *self)
{
  gsize partial = stm32_decoder_pending (self->decoder);
  g_autofree char *lost =
      partial
          ? g_strdup_printf (" (%" G_GSIZE_FORMAT " bytes of an unfinished frame dropped)", partial)
          : g_strdup ("");

  if (self->state != STM32_LINK_STATE_CLOSING &&
      stm32_socket_eof_was_reset (g_socket_connection_get_socket (self->io->connection)))
    {
      g_autoptr (GError) reset = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                                      "Connection reset by peer");

      link_on_io_error (self, reset);
    }
  else if (self->state == STM32_LINK_STATE_CLOSING)
    link_end (self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, FALSE, NULL);
  else if (link_in_busy_window (self))
    link_end (self, STM32_END_REASON_SERVER_BUSY, STM32_CLOSED_BY_BOARD, FALSE,
              link_error_new (self, STM32_END_REASON_SERVER_BUSY,
                              "the board accepted and closed the connection at once (its "
                              "connection table is probably full)%s",
                              lost));
  else
    link_end (self, STM32_END_REASON_REMOTE_CLOSED, STM32_CLOSED_BY_BOARD, FALSE,
              link_error_new (self, STM32_END_REASON_REMOTE_CLOSED,
                              "the board closed the connection%s", lost));
}

static void
on_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  g_autoptr (Stm32Link) self = io->link ? g_object_ref (io->link) : NULL;

  io->pending--;
  if (self == NULL || io->ending)
    {
      link_io_maybe_close (io);
      return;
    }
  if (n < 0)
    link_on_io_error (self, error);
  else if (n == 0)
    link_on_eof (self);
  else
    {
      link_on_data (self, io->buffer, (gsize) n);
      if (!io->ending)
        link_io_read (io);
    }
}

static void
link_io_read (LinkIo *io)
{
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (io->connection));

  io->pending++;
  g_input_stream_read_async (in, io->buffer, sizeof io->buffer, G_PRIORITY_DEFAULT, io->cancellable,
                             on_read, link_io_ref (io));
}

/* ---- writing --------------------------------------------------------------- */

static SendRequest *
send_request_new (Stm32Link *self, GBytes *wire, GTask *task)
{
  SendRequest *request = g_new0 (SendRequest, 1);

  request->wire = g_bytes_ref (wire);
  request->task = task ? g_object_ref (task) : NULL;
  self->queued_bytes += g_bytes_get_size (wire);
  return request;
}

static void
send_request_free (Stm32Link *self, SendRequest *request)
{
  self->queued_bytes -= g_bytes_get_size (request->wire);
  if (request->transaction)
    request->transaction->request = NULL;
  g_bytes_unref (request->wire);
  g_clear_object (&request->task);
  g_free (request);
}

static gboolean
link_check_connected (Stm32Link *self, GError **error)
{
  if (self->state == STM32_LINK_STATE_CONNECTED)
    return TRUE;
  g_set_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED, "Link “%s” is not connected (%s)",
               self->name, stm32_enum_to_string (STM32_TYPE_LINK_STATE, self->state));
  return FALSE;
}

static gboolean
link_check_queue_room (Stm32Link *self, gsize size, GError **error)
{
  if (self->queued_bytes + size <= self->config->send_queue_max)
    return TRUE;
  g_set_error (error, STM32_ERROR, STM32_ERROR_QUEUE_FULL,
               "Send queue of link “%s” is full (%" G_GSIZE_FORMAT " of %u bytes waiting); "
               "wait for earlier sends to finish",
               self->name, self->queued_bytes, self->config->send_queue_max);
  return FALSE;
}

/* Checks that @frame may be queued now, and encodes it. */
static GBytes *
link_prepare_frame (Stm32Link *self, GBytes *frame, GError **error)
{
  g_autoptr (GBytes) wire = NULL;

  if (!link_check_connected (self, error))
    return NULL;
  /* A frame in the middle of someone's raw stream would corrupt both. */
  if (self->io->raw_hold != 0)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_BUSY,
                   "Link “%s” is held by another client (AcquireStream); Send and Transact are "
                   "refused until it is closed",
                   self->name);
      return NULL;
    }
  wire = stm32_frame_encode (self->config->framing, self->config->max_frame, frame, error);
  if (wire == NULL || !link_check_queue_room (self, g_bytes_get_size (wire), error))
    return NULL;
  return g_steal_pointer (&wire);
}

static void
link_shutdown_write (Stm32Link *self)
{
  GSocket *socket = g_socket_connection_get_socket (self->io->connection);
  g_autoptr (GError) error = NULL;

  self->io->shut_wr = TRUE;
  /* Our FIN; the board's EOF (or CloseTimeout) ends the close. */
  if (!g_socket_shutdown (socket, FALSE, TRUE, &error))
    link_on_io_error (self, g_steal_pointer (&error));
}

/* Answers every Send whose last byte the board's stack has acknowledged. */
static void
link_confirm_acknowledged (Stm32Link *self)
{
  LinkIo *io = self->io;
  Unconfirmed *unconfirmed;
  gsize unacknowledged;
  guint64 acknowledged;

  if (g_queue_is_empty (&self->unconfirmed) || io == NULL || io->connection == NULL ||
      !stm32_socket_get_unacknowledged (g_socket_connection_get_socket (io->connection),
                                        &unacknowledged))
    return;
  /* Our FIN is the last thing queued and counts as one byte until acknowledged. */
  if (io->shut_wr && unacknowledged > 0)
    unacknowledged--;
  acknowledged = io->written - MIN (io->written, unacknowledged);
  g_object_freeze_notify (G_OBJECT (self));
  while ((unconfirmed = g_queue_peek_head (&self->unconfirmed)) != NULL &&
         unconfirmed->end <= acknowledged)
    {
      g_queue_pop_head (&self->unconfirmed);
      self->attempt->bytes_sent += unconfirmed->size;
      link_add_counter (self, &self->bytes_sent, unconfirmed->size, PROP_BYTES_SENT);
      if (!unconfirmed->raw)
        {
          self->attempt->frames_sent++;
          link_add_counter (self, &self->frames_sent, 1, PROP_FRAMES_SENT);
        }
      if (unconfirmed->task)
        g_task_return_boolean (unconfirmed->task, TRUE);
      g_clear_object (&unconfirmed->task);
      g_free (unconfirmed);
      self->confirm_interval = 1;
    }
  /* All confirmed (a reply carried the ACK): no wake-up left to spend. */
  if (g_queue_is_empty (&self->unconfirmed))
    g_clear_handle_id (&self->confirm_timer, g_source_remove);
  g_object_thaw_notify (G_OBJECT (self));
}

static gboolean on_confirm_timer (gpointer user_data);

/* Looks again in @interval ms if something still waits for the board's ACK. */
static void
link_poll_acknowledgement (Stm32Link *self, guint interval)
{
  if (g_queue_is_empty (&self->unconfirmed) || self->confirm_timer != 0)
    return;
  self->confirm_interval = interval;
  self->confirm_timer = g_timeout_add (interval, on_confirm_timer, self);
}

static gboolean
on_confirm_timer (gpointer user_data)
{
  Stm32Link *self = user_data;

  self->confirm_timer = 0;
  link_confirm_acknowledged (self);
  /* Linux acknowledges at once or within its delayed-ACK time (40 ms),
   * lwIP within its 250 ms fast timer; a reply carries the ACK sooner and is
   * checked on arrival. Back off so a slow ACK costs few wake-ups. */
  link_poll_acknowledgement (self, MIN (self->confirm_interval * 2, STM32_CONFIRM_POLL_MAX_MS));
  return G_SOURCE_REMOVE;
}

static void
link_await_acknowledgement (Stm32Link *self, SendRequest *request)
{
  Unconfirmed *unconfirmed = g_new0 (Unconfirmed, 1);

  /* A raw stream is a byte stream with a socket's semantics: written is done. */
  if (request->task && request->raw)
    g_task_return_boolean (request->task, TRUE);
  else
    unconfirmed->task = g_steal_pointer (&request->task);
  unconfirmed->end = self->io->written;
  unconfirmed->size = g_bytes_get_size (request->wire);
  unconfirmed->raw = request->raw;
  g_queue_push_tail (&self->unconfirmed, unconfirmed);
  link_confirm_acknowledged (self);
  link_poll_acknowledgement (self, 1);
}

static void on_written (GObject *source, GAsyncResult *result, gpointer user_data);

static void
link_io_write_rest (LinkIo *io)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (io->connection));
  gsize size;
  const guint8 *data = g_bytes_get_data (io->writing, &size);

  io->pending++;
  g_output_stream_write_async (out, data + io->write_offset, size - io->write_offset,
                               G_PRIORITY_DEFAULT, io->write_cancellable, on_written,
                               link_io_ref (io));
}

/* Partial writes are counted as they happen, so that what the kernel holds
 * unacknowledged can be matched byte for byte against what we gave it. */
static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;
  gssize n = g_output_stream_write_finish (G_OUTPUT_STREAM (source), result, &error);
  g_autoptr (Stm32Link) self = io->link ? g_object_ref (io->link) : NULL;
  gboolean complete;
  SendRequest *request;

  io->pending--;
  if (n > 0)
    {
      io->written += (gsize) n;
      io->write_offset += (gsize) n;
    }
  complete = n >= 0 && io->write_offset == g_bytes_get_size (io->writing);
  if (self == NULL)
    {
      g_clear_pointer (&io->writing, g_bytes_unref);
      link_io_maybe_close (io);
      return;
    }
  /* Once the connection is ending a frame not yet whole stays unsent. */
  if (n >= 0 && !complete && !io->ending)
    {
      link_io_write_rest (io);
      return;
    }
  g_clear_pointer (&io->writing, g_bytes_unref);
  io->write_offset = 0;
  if (n < 0 && !io->ending)
    link_on_io_error (self, error);
  request = g_queue_pop_head (&self->send_queue);
  if (!complete)
    {
      if (request->task)
        g_task_return_error (request->task, not_sent_error_new (self->end_error));
      send_request_free (self, request);
      link_io_maybe_close (io);
      return;
    }
  self->attempt->last_sent = g_get_real_time ();
  if (request->transaction)
    request->transaction->sent = TRUE;
  link_await_acknowledgement (self, request);
  send_request_free (self, request);
  if (io->ending)
    {
      /* The connection ended while this was written: now or never. */
      link_fail_unconfirmed (self, self->end_error);
      link_io_maybe_close (io);
    }
  else
    link_kick_writer (self);
}

/* Starts writing the next queued frame, if nothing is being written. */
static void
link_kick_writer (Stm32Link *self)
{
  LinkIo *io = self->io;
  GQueue cancelled = G_QUEUE_INIT;
  SendRequest *request;

  if (io == NULL || io->connection == NULL || io->ending || io->writing != NULL || io->shut_wr)
    return;
  /* A frame cancelled before it started is dropped; one being written is finished. */
  while ((request = g_queue_peek_head (&self->send_queue)) != NULL && request->task &&
         g_cancellable_is_cancelled (g_task_get_cancellable (request->task)))
    g_queue_push_tail (&cancelled, g_queue_pop_head (&self->send_queue));

  if (request != NULL)
    {
      request->started = TRUE;
      if (request->transaction)
        request->transaction->armed = TRUE;
      io->writing = g_bytes_ref (request->wire);
      io->write_offset = 0;
      link_io_write_rest (io);
    }
  else if (self->state == STM32_LINK_STATE_CLOSING)
    link_shutdown_write (self);

  while ((request = g_queue_pop_head (&cancelled)) != NULL)
    {
      g_task_return_error_if_cancelled (request->task);
      send_request_free (self, request);
    }
}

static void
link_enqueue (Stm32Link *self, SendRequest *request)
{
  request->queued = TRUE;
  g_queue_push_tail (&self->send_queue, request);
  link_kick_writer (self);
}

/* ---- transactions ---------------------------------------------------------- */

static void
link_issue_transaction (Stm32Link *self)
{
  Transaction *head = g_queue_peek_head (&self->transactions);

  /* While a heartbeat waits for its answer, the next frame is that answer,
   * not a transaction's reply: the transaction goes out after it. */
  if (self->heartbeat_deadline != 0)
    return;
  if (head != NULL && head->request != NULL && !head->request->queued)
    link_enqueue (self, head->request);
}

/* Completes @transaction with @reply or @error (taken) and starts the next one. */
static void
transaction_finish (Stm32Link *self, Transaction *transaction, GBytes *reply, GError *error)
{
  gboolean was_head = g_queue_peek_head (&self->transactions) == transaction;
  SendRequest *request = transaction->request;

  g_queue_remove (&self->transactions, transaction);
  g_clear_handle_id (&transaction->timer, g_source_remove);
  if (transaction->cancelled)
    {
      g_source_destroy (transaction->cancelled);
      g_clear_pointer (&transaction->cancelled, g_source_unref);
    }
  if (request != NULL)
    {
      request->transaction = NULL;
      /* A request not yet written is withdrawn; one being written is finished. */
      if (!request->started)
        {
          g_queue_remove (&self->send_queue, request);
          send_request_free (self, request);
        }
    }
  if (transaction->task == NULL)
    g_clear_error (&error);
  else if (reply)
    g_task_return_pointer (transaction->task, g_bytes_ref (reply), (GDestroyNotify) g_bytes_unref);
  else
    g_task_return_error (transaction->task, error);
  g_clear_object (&transaction->task);
  g_free (transaction);
  if (was_head)
    link_issue_transaction (self);
}

static gboolean
on_transaction_timeout (gpointer user_data)
{
  Transaction *transaction = user_data;
  Stm32Link *self = transaction->link;

  transaction->timer = 0;
  transaction_finish (self, transaction, NULL,
                      g_error_new (STM32_ERROR, STM32_ERROR_TIMEOUT,
                                   "No reply from link “%s” within %u ms", self->name,
                                   transaction->timeout_ms));
  return G_SOURCE_REMOVE;
}

/* The caller gave up (or left the bus). A request not yet written is
 * withdrawn; one already written will still be answered by the board, so the
 * transaction stays queued without its caller and takes that reply, keeping
 * later transactions matched to their own replies. */
static gboolean
on_transaction_cancelled (GCancellable *cancellable, gpointer user_data)
{
  Transaction *transaction = user_data;
  g_autoptr (GTask) task = g_steal_pointer (&transaction->task);

  g_clear_pointer (&transaction->cancelled, g_source_unref);
  g_task_return_error_if_cancelled (task);
  if (!transaction->armed)
    transaction_finish (transaction->link, transaction, NULL, NULL);
  return G_SOURCE_REMOVE;
}

/* ---- watchdogs ------------------------------------------------------------- */

static gboolean
on_idle_check (gpointer user_data)
{
  Stm32Link *self = user_data;
  gint64 quiet_ms = (g_get_monotonic_time () - self->last_rx_mono) / 1000;

  self->idle_timer = 0;
  if (quiet_ms >= self->config->idle_timeout)
    {
      /* The board's TCP stack still answers but its firmware does not: reset
       * frees its control block, waiting for a FIN would not. */
      link_end (self, STM32_END_REASON_DEAD_PEER, STM32_CLOSED_BY_PC, TRUE,
                link_error_new (self, STM32_END_REASON_DEAD_PEER,
                                "no data from the board for %u ms (IdleTimeout)",
                                self->config->idle_timeout));
      return G_SOURCE_REMOVE;
    }
  /* Re-armed only when it fires, so a busy link costs no timer churn per read. */
  self->idle_timer =
      g_timeout_add (self->config->idle_timeout - (guint) quiet_ms, on_idle_check, self);
  return G_SOURCE_REMOVE;
}

static gboolean
on_heartbeat_deadline (gpointer user_data)
{
  Stm32Link *self = user_data;

  self->heartbeat_deadline = 0;
  link_end (self, STM32_END_REASON_DEAD_PEER, STM32_CLOSED_BY_PC, TRUE,
            link_error_new (self, STM32_END_REASON_DEAD_PEER,
                            "no reply to the heartbeat within %u ms (HeartbeatTimeout)",
                            self->config->heartbeat_timeout));
  return G_SOURCE_REMOVE;
}

static gboolean
on_heartbeat (gpointer user_data)
{
  Stm32Link *self = user_data;
  g_autoptr (GBytes) wire = NULL;
  g_autoptr (GError) error = NULL;

  /* A transaction under way proves liveness itself, and must not get the
   * heartbeat's answer as its reply. */
  if (!g_queue_is_empty (&self->transactions) || self->heartbeat_deadline != 0)
    return G_SOURCE_CONTINUE;
  wire = link_prepare_frame (self, self->config->heartbeat, &error);
  if (wire == NULL)
    {
      LINK_LOG (self, G_LOG_LEVEL_DEBUG, "heartbeat skipped: %s", error->message);
      return G_SOURCE_CONTINUE;
    }
  link_enqueue (self, send_request_new (self, wire, NULL));
  self->heartbeat_deadline =
      g_timeout_add (self->config->heartbeat_timeout, on_heartbeat_deadline, self);
  return G_SOURCE_CONTINUE;
}

static void
link_arm_watchdogs (Stm32Link *self)
{
  if (self->config->idle_timeout > 0)
    self->idle_timer = g_timeout_add (self->config->idle_timeout, on_idle_check, self);
  if (self->config->heartbeat != NULL)
    self->heartbeat_timer = g_timeout_add (self->config->heartbeat_interval, on_heartbeat, self);
}

static gboolean
on_close_timeout (gpointer user_data)
{
  Stm32Link *self = user_data;

  self->close_timer = 0;
  link_end (self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, TRUE,
            link_error_new (self, STM32_END_REASON_LOCAL,
                            "the board did not close within %u ms (CloseTimeout); reset instead",
                            self->config->close_timeout));
  return G_SOURCE_REMOVE;
}

/* ---- public API -------------------------------------------------------------- */

void
stm32_link_connect_async (Stm32Link *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                          gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_return_if_fail (STM32_IS_LINK (self));
  g_task_set_source_tag (task, stm32_link_connect_async);
  self->wanted = TRUE;
  switch (self->state)
    {
    case STM32_LINK_STATE_CONNECTED:
      g_task_return_boolean (task, TRUE);
      return;
    case STM32_LINK_STATE_DISCONNECTED:
    case STM32_LINK_STATE_WAITING:
      g_ptr_array_add (self->connect_waiters, g_steal_pointer (&task));
      link_start_attempt (self);
      return;
    case STM32_LINK_STATE_CONNECTING:
    case STM32_LINK_STATE_CLOSING:
    default:
      /* Joins the attempt under way, or the one that follows the close. */
      g_ptr_array_add (self->connect_waiters, g_steal_pointer (&task));
      return;
    }
}

gboolean
stm32_link_connect_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
stm32_link_disconnect_async (Stm32Link *self, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_return_if_fail (STM32_IS_LINK (self));
  g_task_set_source_tag (task, stm32_link_disconnect_async);
  self->wanted = FALSE;
  switch (self->state)
    {
    case STM32_LINK_STATE_DISCONNECTED:
      g_task_return_boolean (task, TRUE);
      return;
    case STM32_LINK_STATE_WAITING:
      g_clear_handle_id (&self->retry_timer, g_source_remove);
      link_transition (self, STM32_LINK_STATE_DISCONNECTED, self->last_error,
                       self->last_error_message);
      g_task_return_boolean (task, TRUE);
      return;
    case STM32_LINK_STATE_CONNECTING:
      g_ptr_array_add (self->disconnect_waiters, g_steal_pointer (&task));
      link_end (self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, FALSE,
                link_error_new (self, STM32_END_REASON_LOCAL, "disconnected while connecting"));
      return;
    case STM32_LINK_STATE_CONNECTED:
      g_ptr_array_add (self->disconnect_waiters, g_steal_pointer (&task));
      link_transition (self, STM32_LINK_STATE_CLOSING, STM32_END_REASON_NONE, NULL);
      self->close_timer = g_timeout_add (self->config->close_timeout, on_close_timeout, self);
      link_kick_writer (self);
      return;
    case STM32_LINK_STATE_CLOSING:
    default:
      g_ptr_array_add (self->disconnect_waiters, g_steal_pointer (&task));
      return;
    }
}

gboolean
stm32_link_disconnect_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
stm32_link_send_async (Stm32Link *self, GBytes *frame, GCancellable *cancellable,
                       GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr (GBytes) wire = NULL;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (frame != NULL);
  g_task_set_source_tag (task, stm32_link_send_async);
  wire = link_prepare_frame (self, frame, &error);
  if (wire == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  link_enqueue (self, send_request_new (self, wire, task));
}

gboolean
stm32_link_send_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
stm32_link_transact_async (Stm32Link *self, GBytes *request, guint timeout_ms,
                           GCancellable *cancellable, GAsyncReadyCallback callback,
                           gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr (GBytes) wire = NULL;
  Transaction *transaction;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (request != NULL);
  g_task_set_source_tag (task, stm32_link_transact_async);
  if (timeout_ms == 0)
    {
      g_task_return_new_error (task, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                               "A transaction needs a timeout of at least 1 ms");
      return;
    }
  wire = link_prepare_frame (self, request, &error);
  if (wire == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  transaction = g_new0 (Transaction, 1);
  transaction->link = self;
  transaction->task = g_steal_pointer (&task);
  /* Queued bytes are reserved now, so waiting transactions respect SendQueueMax too. */
  transaction->request = send_request_new (self, wire, NULL);
  transaction->request->transaction = transaction;
  transaction->timeout_ms = timeout_ms;
  transaction->timer = g_timeout_add (timeout_ms, on_transaction_timeout, transaction);
  if (cancellable != NULL)
    {
      transaction->cancelled = g_cancellable_source_new (cancellable);
      g_source_set_callback (transaction->cancelled, G_SOURCE_FUNC (on_transaction_cancelled),
                             transaction, NULL);
      g_source_attach (transaction->cancelled, g_main_context_get_thread_default ());
    }
  g_queue_push_tail (&self->transactions, transaction);
  link_issue_transaction (self);
}

GBytes *
stm32_link_transact_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- raw mode ------------------------------------------------------------------ */

/* A partial frame from before the hold can never be finished: its rest, if
 * the board ever sends it, goes to the holder. */
static void
link_reset_decoder (Stm32Link *self)
{
  gsize pending = stm32_decoder_pending (self->decoder);

  if (pending > 0)
    LINK_LOG (self, G_LOG_LEVEL_MESSAGE,
              "raw stream acquired: %" G_GSIZE_FORMAT " bytes of an unfinished frame dropped",
              pending);
  stm32_decoder_free (self->decoder);
  self->decoder = stm32_decoder_new (self->config->framing, self->config->max_frame);
}

/* The holder owns every byte from now on, replies included, so no
 * transaction can be matched any more. Tail first: finishing the head would
 * start writing the next request. */
static void
link_fail_transactions_for_raw (Stm32Link *self)
{
  g_autoptr (GError) busy = g_error_new (
      STM32_ERROR, STM32_ERROR_BUSY,
      "Link “%s” was taken for a raw stream (AcquireStream) before this transaction's reply came",
      self->name);
  Transaction *transaction;

  while ((transaction = g_queue_peek_tail (&self->transactions)) != NULL)
    transaction_finish (self, transaction, NULL, g_error_copy (busy));
}

guint
stm32_link_acquire_raw (Stm32Link *self, GError **error)
{
  g_return_val_if_fail (STM32_IS_LINK (self), 0);

  if (!link_check_connected (self, error))
    return 0;
  if (self->io->raw_hold != 0)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_BUSY,
                   "Link “%s” is already held by another client (AcquireStream); try again once "
                   "it is closed",
                   self->name);
      return 0;
    }
  link_fail_transactions_for_raw (self);
  /* The heartbeat's answer now belongs to the holder; heartbeats pause while
   * held, and any byte still feeds the idle watchdog. */
  g_clear_handle_id (&self->heartbeat_deadline, g_source_remove);
  link_reset_decoder (self);
  if (++self->raw_serial == 0)
    self->raw_serial = 1;
  self->io->raw = TRUE;
  self->io->raw_hold = self->raw_serial;
  LINK_LOG (self, G_LOG_LEVEL_INFO, "raw stream acquired");
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_RAW]);
  return self->raw_serial;
}

void
stm32_link_release_raw (Stm32Link *self, guint hold)
{
  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (hold != 0);

  /* A hold that ended with its connection is gone; a newer one is not ours to end. */
  if (self->io == NULL || self->io->raw_hold != hold)
    return;
  self->io->raw_hold = 0;
  self->io->raw = FALSE;
  LINK_LOG (self, G_LOG_LEVEL_INFO, "raw stream released, back to frames");
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_RAW]);
}

gboolean
stm32_link_get_raw (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), FALSE);
  return self->io != NULL && self->io->raw_hold != 0;
}

void
stm32_link_write_raw_async (Stm32Link *self, GBytes *bytes, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  SendRequest *request;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (bytes != NULL);
  g_task_set_source_tag (task, stm32_link_write_raw_async);
  if (!link_check_connected (self, &error) ||
      !link_check_queue_room (self, g_bytes_get_size (bytes), &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (self->io->raw_hold == 0)
    {
      g_task_return_new_error (task, STM32_ERROR, STM32_ERROR_FAILED,
                               "Link “%s” is not in raw mode", self->name);
      return;
    }
  if (g_bytes_get_size (bytes) == 0)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }
  request = send_request_new (self, bytes, task);
  request->raw = TRUE;
  link_enqueue (self, request);
}

gboolean
stm32_link_write_raw_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
stm32_link_network_changed (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));
  stm32_backoff_reset (&self->backoff);
  if (self->state == STM32_LINK_STATE_WAITING)
    {
      LINK_LOG (self, G_LOG_LEVEL_INFO, "network changed, retrying now");
      link_start_attempt (self);
    }
}

static void
on_network_changed (GNetworkMonitor *monitor, gboolean available, gpointer user_data)
{
  if (available)
    stm32_link_network_changed (STM32_LINK (user_data));
}

const char *
stm32_link_get_name (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return self->name;
}

const Stm32LinkConfig *
stm32_link_get_config (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return self->config;
}

Stm32LinkState
stm32_link_get_state (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), STM32_LINK_STATE_DISCONNECTED);
  return self->state;
}

gboolean
stm32_link_get_autoconnect (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), FALSE);
  return self->config->autoconnect;
}

void
stm32_link_set_autoconnect (Stm32Link *self, gboolean autoconnect)
{
  g_return_if_fail (STM32_IS_LINK (self));
  autoconnect = !!autoconnect;
  if (self->config->autoconnect == autoconnect)
    return;
  self->config->autoconnect = autoconnect;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_AUTOCONNECT]);
  /* Turning it on brings the link up; turning it off leaves a live link alone. */
  if (autoconnect)
    {
      self->wanted = TRUE;
      if (self->state == STM32_LINK_STATE_DISCONNECTED)
        link_start_attempt (self);
    }
}

Stm32EndReason
stm32_link_get_last_error (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), STM32_END_REASON_NONE);
  return self->last_error;
}

const char *
stm32_link_get_last_error_message (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return self->last_error_message;
}

guint
stm32_link_get_retry_in (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), 0);
  return self->retry_in;
}

GPtrArray *
stm32_link_dup_history (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return stm32_history_dup_entries (self->history);
}

Stm32Link *
stm32_link_new_idle (const char *name, const Stm32LinkConfig *config)
{
  Stm32Link *self;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (config != NULL, NULL);

  self = g_object_new (STM32_TYPE_LINK, "name", name, NULL);
  self->config = stm32_link_config_copy (config);
  stm32_backoff_init (&self->backoff, config->retry_min, config->retry_max, g_random_int ());
  g_signal_connect_object (g_network_monitor_get_default (), "network-changed",
                           G_CALLBACK (on_network_changed), self, 0);
  return self;
}

void
stm32_link_start (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));
  if (self->config->autoconnect && self->state == STM32_LINK_STATE_DISCONNECTED && !self->wanted)
    {
      self->wanted = TRUE;
      link_start_attempt (self);
    }
}

Stm32Link *
stm32_link_new (const char *name, const Stm32LinkConfig *config)
{
  Stm32Link *self = stm32_link_new_idle (name, config);

  stm32_link_start (self);
  return self;
}

/* ---- GObject ----------------------------------------------------------------- */

static void
stm32_link_dispose (GObject *object)
{
  Stm32Link *self = STM32_LINK (object);
  g_autoptr (GError) gone = NULL;

  self->wanted = FALSE;
  g_clear_handle_id (&self->retry_timer, g_source_remove);
  link_clear_timers (self);
  if (self->io != NULL)
    {
      g_autoptr (LinkIo) io = g_steal_pointer (&self->io);

      /* No one is left to wait for the board's FIN: reset, so it keeps no PCB. */
      if (io->connection != NULL && !io->closed)
        stm32_socket_set_abortive_close (g_socket_connection_get_socket (io->connection), NULL);
      io->link = NULL;
      io->ending = TRUE;
      g_cancellable_cancel (io->cancellable);
      g_cancellable_cancel (io->write_cancellable);
    }
  gone = g_error_new (STM32_ERROR, STM32_ERROR_NOT_CONNECTED, "Link “%s” was removed", self->name);
  if (self->connect_waiters)
    link_fail_pending (self, gone, TRUE);
  complete_waiters (self->connect_waiters, gone);
  complete_waiters (self->disconnect_waiters, NULL);
  g_clear_pointer (&self->disconnect_waiters, g_ptr_array_unref);
  g_clear_pointer (&self->connect_waiters, g_ptr_array_unref);
  g_clear_object (&self->client);
  G_OBJECT_CLASS (stm32_link_parent_class)->dispose (object);
}

static void
stm32_link_finalize (GObject *object)
{
  Stm32Link *self = STM32_LINK (object);

  g_clear_pointer (&self->attempt, stm32_history_entry_free);
  g_clear_pointer (&self->decoder, stm32_decoder_free);
  g_clear_pointer (&self->history, stm32_history_free);
  g_clear_pointer (&self->config, stm32_link_config_free);
  g_clear_error (&self->end_error);
  stm32_backoff_clear (&self->backoff);
  g_free (self->name);
  g_free (self->last_error_message);
  g_free (self->local_address);
  g_free (self->remote_address);
  G_OBJECT_CLASS (stm32_link_parent_class)->finalize (object);
}

static void
stm32_link_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  Stm32Link *self = STM32_LINK (object);

  switch (prop_id)
    {
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case PROP_HOST:
      g_value_set_string (value, self->config->host);
      break;
    case PROP_PORT:
      g_value_set_uint (value, self->config->port);
      break;
    case PROP_FRAMING:
      g_value_set_enum (value, self->config->framing);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_AUTOCONNECT:
      g_value_set_boolean (value, self->config->autoconnect);
      break;
    case PROP_LOCAL_ADDRESS:
      g_value_set_string (value, self->local_address);
      break;
    case PROP_REMOTE_ADDRESS:
      g_value_set_string (value, self->remote_address);
      break;
    case PROP_CONNECTED_SINCE:
      g_value_set_int64 (value, self->connected_since);
      break;
    case PROP_RETRY_IN:
      g_value_set_uint (value, self->retry_in);
      break;
    case PROP_LAST_ERROR:
      g_value_set_enum (value, self->last_error);
      break;
    case PROP_LAST_ERROR_MESSAGE:
      g_value_set_string (value, self->last_error_message);
      break;
    case PROP_BYTES_SENT:
      g_value_set_uint64 (value, self->bytes_sent);
      break;
    case PROP_BYTES_RECEIVED:
      g_value_set_uint64 (value, self->bytes_received);
      break;
    case PROP_FRAMES_SENT:
      g_value_set_uint64 (value, self->frames_sent);
      break;
    case PROP_FRAMES_RECEIVED:
      g_value_set_uint64 (value, self->frames_received);
      break;
    case PROP_CONNECTS:
      g_value_set_uint64 (value, self->connects);
      break;
    case PROP_DISCONNECTS:
      g_value_set_uint64 (value, self->disconnects);
      break;
    case PROP_CONNECT_FAILURES:
      g_value_set_uint64 (value, self->connect_failures);
      break;
    case PROP_RAW:
      g_value_set_boolean (value, stm32_link_get_raw (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_link_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  Stm32Link *self = STM32_LINK (object);

  switch (prop_id)
    {
    case PROP_NAME:
      self->name = g_value_dup_string (value);
      break;
    case PROP_AUTOCONNECT:
      stm32_link_set_autoconnect (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_link_init (Stm32Link *self)
{
  self->client = g_socket_client_new ();
  g_socket_client_set_enable_proxy (self->client, FALSE);
  self->history = stm32_history_new (STM32_HISTORY_SIZE);
  self->connect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  self->disconnect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  g_queue_init (&self->send_queue);
  g_queue_init (&self->transactions);
}

static GParamSpec *
counter_param (const char *name, const char *blurb)
{
  return g_param_spec_uint64 (name, NULL, blurb, 0, G_MAXUINT64, 0,
                              G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
}

static void
stm32_link_class_init (Stm32LinkClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->dispose = stm32_link_dispose;
  object_class->finalize = stm32_link_finalize;
  object_class->get_property = stm32_link_get_property;
  object_class->set_property = stm32_link_set_property;

  props[PROP_NAME] =
      g_param_spec_string ("name", NULL, "Link name", NULL,
                           G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  props[PROP_HOST] = g_param_spec_string ("host", NULL, "Board host", NULL, ro);
  props[PROP_PORT] = g_param_spec_uint ("port", NULL, "Board TCP port", 0, 65535, 0, ro);
  props[PROP_FRAMING] =
      g_param_spec_enum ("framing", NULL, "Framing", STM32_TYPE_FRAMING, STM32_DEFAULT_FRAMING, ro);
  props[PROP_STATE] = g_param_spec_enum ("state", NULL, "Link state", STM32_TYPE_LINK_STATE,
                                         STM32_LINK_STATE_DISCONNECTED, ro);
  props[PROP_AUTOCONNECT] =
      g_param_spec_boolean ("autoconnect", NULL, "Keep the link up", STM32_DEFAULT_AUTOCONNECT,
                            G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_LOCAL_ADDRESS] = g_param_spec_string ("local-address", NULL, "Our end", NULL, ro);
  props[PROP_REMOTE_ADDRESS] = g_param_spec_string ("remote-address", NULL, "Board end", NULL, ro);
  props[PROP_CONNECTED_SINCE] = g_param_spec_int64 (
      "connected-since", NULL, "Wall-clock µs when connected, or 0", 0, G_MAXINT64, 0, ro);
  props[PROP_RETRY_IN] =
      g_param_spec_uint ("retry-in", NULL, "Reconnect delay in ms", 0, G_MAXUINT, 0, ro);
  props[PROP_LAST_ERROR] = g_param_spec_enum ("last-error", NULL, "Why it last failed",
                                              STM32_TYPE_END_REASON, STM32_END_REASON_NONE, ro);
  props[PROP_LAST_ERROR_MESSAGE] =
      g_param_spec_string ("last-error-message", NULL, "What last failed", NULL, ro);
  props[PROP_BYTES_SENT] = counter_param ("bytes-sent", "Bytes written to the board");
  props[PROP_BYTES_RECEIVED] = counter_param ("bytes-received", "Bytes read from the board");
  props[PROP_FRAMES_SENT] = counter_param ("frames-sent", "Frames written");
  props[PROP_FRAMES_RECEIVED] = counter_param ("frames-received", "Frames received");
  props[PROP_CONNECTS] = counter_param ("connects", "Connections established");
  props[PROP_DISCONNECTS] = counter_param ("disconnects", "Connections ended");
  props[PROP_CONNECT_FAILURES] = counter_param ("connect-failures", "Attempts that failed");
  props[PROP_RAW] =
      g_param_spec_boolean ("raw", NULL, "Held in raw mode (AcquireStream)", FALSE, ro);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /**
   * Stm32Link::received:
   * @frame: (type GBytes): one frame from the board, without framing
   *
   * Every frame the board sends, in order, except the replies transactions
   * return to their callers. A reply that comes after its transaction timed
   * out is received if no other transaction waits by then; if one does, it
   * takes it (replies carry no request id).
   */
  signals[SIGNAL_RECEIVED] =
      g_signal_new ("received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 1, G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * Stm32Link::received-raw:
   * @chunk: (type GBytes): bytes from the board, exactly as one read returned them
   *
   * Replaces #Stm32Link::received while the connection is in raw mode
   * (stm32_link_acquire_raw()), until it is released or the connection ends.
   */
  signals[SIGNAL_RECEIVED_RAW] =
      g_signal_new ("received-raw", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 1, G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE);
}
