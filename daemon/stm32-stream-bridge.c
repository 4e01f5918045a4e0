/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-stream-bridge.h"

#include <errno.h>
#include <glib-unix.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stm32-error.h"

#define BRIDGE_LOG(self, level, fmt, ...)                                                          \
  g_log_structured (G_LOG_DOMAIN, level, "STM32D_LINK", stm32_link_get_name ((self)->link),        \
                    "MESSAGE", "%s: stream: " fmt, stm32_link_get_name ((self)->link),             \
                    ##__VA_ARGS__)

struct _Stm32StreamBridge
{
  GObject parent_instance;

  Stm32Link *link;
  guint hold;                     /* our raw-mode token; 0 once the hold ended */
  GSocketConnection *connection;  /* our end */
  int holder_fd;                  /* the other end, until handed out */
  GCancellable *cancellable;      /* everything on our end */
  GCancellable *read_cancellable; /* the holder → board direction only */
  GQueue to_holder;               /* GBytes from the board, oldest first */
  GBytes *writing;                /* being written to the holder */
  gsize waiting;                  /* bytes in @to_holder and @writing */
  guint pending;                  /* operations on our end; it is closed once none is left */
  gboolean ending;                /* no more bytes from the holder or the board */
  gboolean closing;               /* our fd is being closed; "closed" follows */
};

static void stm32_stream_bridge_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (Stm32StreamBridge, stm32_stream_bridge, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      stm32_stream_bridge_initable_iface_init))

enum
{
  PROP_0,
  PROP_LINK,
  N_PROPS
};

static GParamSpec *props[N_PROPS];

enum
{
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void bridge_read_holder (Stm32StreamBridge *self);

static GSocket *
bridge_socket (Stm32StreamBridge *self)
{
  return g_socket_connection_get_socket (self->connection);
}

/* ---- ending ---------------------------------------------------------------------- */

static void
on_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (Stm32StreamBridge) self = user_data;
  g_autoptr (GError) error = NULL;

  /* Closing a socket cannot fail in a way that leaves the fd open. */
  if (!g_io_stream_close_finish (G_IO_STREAM (source), result, &error))
    g_debug ("stream close: %s", error->message);
  self->pending--;
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
}

/* Closes our fd once the stream ended and no operation can still touch it. */
static void
bridge_maybe_close (Stm32StreamBridge *self)
{
  if (!self->ending || self->closing || self->pending > 0 || self->writing != NULL ||
      !g_queue_is_empty (&self->to_holder))
    return;
  self->closing = TRUE;
  self->pending++;
  /* Not cancellable: a close that never ran would leak the fd. It never blocks. */
  g_io_stream_close_async (G_IO_STREAM (self->connection), G_PRIORITY_DEFAULT, NULL, on_closed,
                           g_object_ref (self));
}

/* Nothing more reaches the holder. Shutting our end down gives the holder its
 * EOF now, while cancelled operations still hold the fd. */
static void
bridge_drop (Stm32StreamBridge *self)
{
  if (g_cancellable_is_cancelled (self->cancellable))
    return;
  g_cancellable_cancel (self->cancellable);
  g_queue_clear_full (&self->to_holder, (GDestroyNotify) g_bytes_unref);
  self->waiting = self->writing ? g_bytes_get_size (self->writing) : 0;
  if (self->connection != NULL)
    g_socket_shutdown (bridge_socket (self), TRUE, TRUE, NULL);
}

/* Gives the link back and takes no more bytes from either side. With @drain,
 * what the board sent is still written to the holder before our end closes. */
static void bridge_end (Stm32StreamBridge *self, gboolean drain, GLogLevelFlags level,
                        const char *format, ...) G_GNUC_PRINTF (4, 5);

static void
bridge_end (Stm32StreamBridge *self, gboolean drain, GLogLevelFlags level, const char *format, ...)
{
  if (!self->ending)
    {
      g_autofree char *reason = NULL;
      va_list args;

      va_start (args, format);
      reason = g_strdup_vprintf (format, args);
      va_end (args);
      BRIDGE_LOG (self, level, "closing: %s", reason);
      self->ending = TRUE;
      g_signal_handlers_disconnect_by_data (self->link, self);
      if (self->hold != 0)
        stm32_link_release_raw (self->link, self->hold);
      self->hold = 0;
      g_cancellable_cancel (self->read_cancellable);
      /* The holder's writes now fail (EPIPE) while it can still read the rest. */
      g_socket_shutdown (bridge_socket (self), TRUE, FALSE, NULL);
    }
  if (!drain)
    bridge_drop (self);
  bridge_maybe_close (self);
}

/* ---- board → holder -------------------------------------------------------------- */

static void bridge_write_holder (Stm32StreamBridge *self);

static void
on_holder_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (Stm32StreamBridge) self = user_data;
  g_autoptr (GBytes) written = g_steal_pointer (&self->writing);
  g_autoptr (GError) error = NULL;

  self->pending--;
  self->waiting -= g_bytes_get_size (written);
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    bridge_end (self, FALSE, G_LOG_LEVEL_INFO, "writing to the holder failed: %s", error->message);
  bridge_write_holder (self);
  bridge_maybe_close (self);
}

static void
bridge_write_holder (Stm32StreamBridge *self)
{
  GOutputStream *out;

  if (self->writing != NULL || g_queue_is_empty (&self->to_holder) ||
      g_cancellable_is_cancelled (self->cancellable))
    return;
  self->writing = g_queue_pop_head (&self->to_holder);
  out = g_io_stream_get_output_stream (G_IO_STREAM (self->connection));
  self->pending++;
  g_output_stream_write_all_async (out, g_bytes_get_data (self->writing, NULL),
                                   g_bytes_get_size (self->writing), G_PRIORITY_DEFAULT,
                                   self->cancellable, on_holder_written, g_object_ref (self));
}

static void
on_received_raw (Stm32Link *link, GBytes *chunk, Stm32StreamBridge *self)
{
  gsize size = g_bytes_get_size (chunk);

  /* The link reads the board regardless, so a holder that stops reading
   * would grow this without bound; blocking the link would stall its
   * watchdogs and its close. */
  if (self->waiting + size > STM32_STREAM_BUFFER_MAX)
    {
      bridge_end (self, FALSE, G_LOG_LEVEL_WARNING,
                  "the holder does not read: %" G_GSIZE_FORMAT
                  " bytes from the board wait for it and %" G_GSIZE_FORMAT
                  " more came; the limit is %u",
                  self->waiting, size, STM32_STREAM_BUFFER_MAX);
      return;
    }
  g_queue_push_tail (&self->to_holder, g_bytes_ref (chunk));
  self->waiting += size;
  bridge_write_holder (self);
}

/* The hold ended with the connection: nothing to release, but the board's
 * last bytes are the holder's. */
static void
on_raw_changed (Stm32Link *link, GParamSpec *pspec, Stm32StreamBridge *self)
{
  if (stm32_link_get_raw (link))
    return;
  self->hold = 0;
  bridge_end (self, TRUE, G_LOG_LEVEL_INFO, "the connection to the board ended");
}

/* ---- holder → board -------------------------------------------------------------- */

static void
on_board_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (Stm32StreamBridge) self = user_data;
  g_autoptr (GError) error = NULL;
  gboolean written = stm32_link_write_raw_finish (STM32_LINK (source), result, &error);

  if (self->ending)
    return;
  if (!written)
    bridge_end (self, TRUE, G_LOG_LEVEL_WARNING, "writing to the board failed: %s", error->message);
  else
    bridge_read_holder (self);
}

static void
on_holder_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (Stm32StreamBridge) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes =
      g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result, &error);

  self->pending--;
  if (self->ending)
    bridge_maybe_close (self);
  else if (bytes == NULL)
    bridge_end (self, FALSE, G_LOG_LEVEL_INFO, "reading from the holder failed: %s",
                error->message);
  else if (g_bytes_get_size (bytes) == 0)
    bridge_end (self, FALSE, G_LOG_LEVEL_INFO, "the holder closed its end");
  else
    /* The next read waits for this write: back-pressure to the holder. */
    stm32_link_write_raw_async (self->link, bytes, self->read_cancellable, on_board_written,
                                g_object_ref (self));
}

static void
bridge_read_holder (Stm32StreamBridge *self)
{
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (self->connection));
  /* One chunk must always fit the link's send queue, or it could never be taken. */
  gsize chunk = MIN (STM32_STREAM_READ_CHUNK, stm32_link_get_config (self->link)->send_queue_max);

  self->pending++;
  g_input_stream_read_bytes_async (in, chunk, G_PRIORITY_DEFAULT, self->read_cancellable,
                                   on_holder_read, g_object_ref (self));
}

/* ---- setting up ------------------------------------------------------------------ */

static gboolean
bridge_open_pair (Stm32StreamBridge *self, GError **error)
{
  g_autoptr (GSocket) socket = NULL;
  int fds[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, STM32_ERROR, STM32_ERROR_FAILED, "Cannot create the stream's sockets: %s",
                   g_strerror (saved_errno));
      return FALSE;
    }
  self->holder_fd = fds[1];
  socket = g_socket_new_from_fd (fds[0], NULL);
  if (socket == NULL)
    {
      close (fds[0]);
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_FAILED,
                           "Cannot use the stream's socket");
      return FALSE;
    }
  /* GSocket makes ours non-blocking; the holder's stays an ordinary blocking
   * socket, so plain reads and writes (cat, dd, a script) work on it. */
  self->connection = g_socket_connection_factory_create_connection (socket);
  return TRUE;
}

static gboolean
stm32_stream_bridge_initable_init (GInitable *initable, GCancellable *cancellable, GError **error)
{
  Stm32StreamBridge *self = STM32_STREAM_BRIDGE (initable);

  self->hold = stm32_link_acquire_raw (self->link, error);
  if (self->hold == 0 || !bridge_open_pair (self, error))
    return FALSE;
  g_signal_connect_object (self->link, "received-raw", G_CALLBACK (on_received_raw), self, 0);
  g_signal_connect_object (self->link, "notify::raw", G_CALLBACK (on_raw_changed), self, 0);
  BRIDGE_LOG (self, G_LOG_LEVEL_INFO, "opened");
  bridge_read_holder (self);
  return TRUE;
}

static void
stm32_stream_bridge_initable_iface_init (GInitableIface *iface)
{
  iface->init = stm32_stream_bridge_initable_init;
}

/* ---- public API ------------------------------------------------------------------ */

Stm32StreamBridge *
stm32_stream_bridge_new (Stm32Link *link, GError **error)
{
  g_return_val_if_fail (STM32_IS_LINK (link), NULL);
  return g_initable_new (STM32_TYPE_STREAM_BRIDGE, NULL, error, "link", link, NULL);
}

int
stm32_stream_bridge_steal_fd (Stm32StreamBridge *self)
{
  g_return_val_if_fail (STM32_IS_STREAM_BRIDGE (self), -1);
  return g_steal_fd (&self->holder_fd);
}

void
stm32_stream_bridge_close (Stm32StreamBridge *self, const char *reason)
{
  g_return_if_fail (STM32_IS_STREAM_BRIDGE (self));
  g_return_if_fail (reason != NULL);
  if (self->connection != NULL)
    bridge_end (self, FALSE, G_LOG_LEVEL_INFO, "%s", reason);
}

/* ---- GObject --------------------------------------------------------------------- */

/* Every operation holds a reference, so by now none is in flight: what is
 * left (a failed set-up, or an end that never ran) is closed right here. */
static void
stm32_stream_bridge_dispose (GObject *object)
{
  Stm32StreamBridge *self = STM32_STREAM_BRIDGE (object);

  g_cancellable_cancel (self->cancellable);
  g_cancellable_cancel (self->read_cancellable);
  if (self->link != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->link, self);
      if (self->hold != 0)
        stm32_link_release_raw (self->link, self->hold);
      self->hold = 0;
    }
  if (self->holder_fd >= 0)
    close (g_steal_fd (&self->holder_fd));
  g_queue_clear_full (&self->to_holder, (GDestroyNotify) g_bytes_unref);
  g_clear_object (&self->connection);
  g_clear_object (&self->link);
  G_OBJECT_CLASS (stm32_stream_bridge_parent_class)->dispose (object);
}

static void
stm32_stream_bridge_finalize (GObject *object)
{
  Stm32StreamBridge *self = STM32_STREAM_BRIDGE (object);

  g_clear_pointer (&self->writing, g_bytes_unref);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->read_cancellable);
  G_OBJECT_CLASS (stm32_stream_bridge_parent_class)->finalize (object);
}

static void
stm32_stream_bridge_set_property (GObject *object, guint prop_id, const GValue *value,
                                  GParamSpec *pspec)
{
  Stm32StreamBridge *self = STM32_STREAM_BRIDGE (object);

  switch (prop_id)
    {
    case PROP_LINK:
      self->link = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_stream_bridge_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  Stm32StreamBridge *self = STM32_STREAM_BRIDGE (object);

  switch (prop_id)
    {
    case PROP_LINK:
      g_value_set_object (value, self->link);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_stream_bridge_init (Stm32StreamBridge *self)
{
  self->holder_fd = -1;
  self->cancellable = g_cancellable_new ();
  self->read_cancellable = g_cancellable_new ();
  g_queue_init (&self->to_holder);
}

static void
stm32_stream_bridge_class_init (Stm32StreamBridgeClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = stm32_stream_bridge_dispose;
  object_class->finalize = stm32_stream_bridge_finalize;
  object_class->set_property = stm32_stream_bridge_set_property;
  object_class->get_property = stm32_stream_bridge_get_property;

  props[PROP_LINK] =
      g_param_spec_object ("link", NULL, "The link held in raw mode", STM32_TYPE_LINK,
                           G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /**
   * Stm32StreamBridge::closed:
   *
   * The stream ended and our end is closed; the link is no longer held.
   */
  signals[SIGNAL_CLOSED] = g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                         NULL, NULL, NULL, G_TYPE_NONE, 0);
}
