/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-transact-channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stm32-channel-wire.h"
#include "stm32-error.h"
#include "stm32-link-config.h"

#define CHANNEL_LOG(self, level, fmt, ...)                                                         \
  g_log_structured (G_LOG_DOMAIN, level, "STM32D_LINK", stm32_link_get_name ((self)->link),        \
                    "MESSAGE", "%s: transaction channel: " fmt,                                    \
                    stm32_link_get_name ((self)->link), ##__VA_ARGS__)

struct _Stm32TransactChannel
{
  GObject parent_instance;

  Stm32Link *link;
  GSocket *socket;           /* our end; NULL once closed */
  int client_fd;             /* the other end, until handed out */
  GCancellable *cancellable; /* the transaction under way */
  GSource *watch;            /* the socket, for the channel's whole life */
  gpointer watch_tag;
  GIOCondition watching;
  gboolean busy;  /* a request is being answered: the next one waits in the client's buffer */
  GBytes *reply;  /* serialized, waiting for room in the client's buffer */
};

enum
{
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (Stm32TransactChannel, stm32_transact_channel, G_TYPE_OBJECT)

static void on_socket_ready (Stm32TransactChannel *self, GIOCondition condition);

/* One source watches the socket for the channel's life, with the conditions
 * changed in place. In GLib 2.74 each fd source attached or destroyed, and
 * each one blocked and unblocked around its own dispatch, adds or removes a
 * poll record and so writes the context's eventfd and costs the loop an
 * extra turn: a source per step cost a channel transaction five of them.
 * This one may recurse (no daemon code runs a nested loop), so it is not
 * blocked around its dispatch, and a transaction answered one at a time
 * changes nothing: G_IO_IN stays watched while it runs, and is dropped only
 * when the client writes the next request before the reply is out. */
typedef struct
{
  GSource source;
  Stm32TransactChannel *channel; /* unowned: the channel destroys its watch when it closes */
} ChannelWatch;

static gboolean
watch_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  Stm32TransactChannel *self = ((ChannelWatch *) source)->channel;

  on_socket_ready (self, g_source_query_unix_fd (source, self->watch_tag));
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs watch_funcs = { .dispatch = watch_dispatch };

/* HUP and ERR are always watched: a client that leaves gives up its
 * transaction at once, as a D-Bus caller that leaves the bus does. */
static void
channel_watch (Stm32TransactChannel *self, GIOCondition condition)
{
  condition |= G_IO_HUP | G_IO_ERR;
  if (self->watch == NULL || condition == self->watching)
    return;
  self->watching = condition;
  g_source_modify_unix_fd (self->watch, self->watch_tag, condition);
}

static int
channel_fd (Stm32TransactChannel *self)
{
  return g_socket_get_fd (self->socket);
}

static void channel_reply_error (Stm32TransactChannel *self, Stm32Error code, const char *format,
                                 ...) G_GNUC_PRINTF (3, 4);

static void
channel_flush_reply (Stm32TransactChannel *self)
{
  gsize size;
  const void *data = g_bytes_get_data (self->reply, &size);
  ssize_t written = send (channel_fd (self), data, size, MSG_DONTWAIT | MSG_NOSIGNAL);

  if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    {
      channel_watch (self, G_IO_OUT);
      return;
    }
  /* Only where the daemon may not raise its buffer past net.core.wmem_max
   * for a large MaxFrame; the error that says so is small enough. */
  if (written < 0 && errno == EMSGSIZE)
    {
      g_clear_pointer (&self->reply, g_bytes_unref);
      channel_reply_error (self, STM32_ERROR_FRAME_TOO_LARGE,
                           "The reply (%zu bytes) does not fit the transaction channel's socket "
                           "buffer; raise net.core.wmem_max or use Transact",
                           size);
      return;
    }
  if (written < 0)
    {
      int saved_errno = errno;

      stm32_transact_channel_close (self, g_strerror (saved_errno));
      return;
    }
  /* A packet goes whole or not at all. */
  g_clear_pointer (&self->reply, g_bytes_unref);
  self->busy = FALSE;
  channel_watch (self, G_IO_IN);
}

static void
channel_reply (Stm32TransactChannel *self, GBytes *frame, const GError *error)
{
  g_autoptr (GBytes) empty = NULL;
  g_autofree char *name = NULL;

  if (error == NULL)
    {
      self->reply = stm32_channel_reply_new (frame, "", "");
    }
  else
    {
      empty = g_bytes_new_static ("", 0);
      name = g_dbus_error_encode_gerror (error);
      self->reply = stm32_channel_reply_new (empty, name, error->message);
    }
  channel_flush_reply (self);
}

static void
channel_reply_error (Stm32TransactChannel *self, Stm32Error code, const char *format, ...)
{
  g_autoptr (GError) error = NULL;
  va_list args;

  va_start (args, format);
  error = g_error_new_valist (STM32_ERROR, code, format, args);
  va_end (args);
  channel_reply (self, NULL, error);
}

static void
on_transacted (GBytes *reply, const GError *error, gpointer user_data)
{
  g_autoptr (Stm32TransactChannel) self = user_data;

  /* Closed while it ran: there is no one to answer. */
  if (self->socket == NULL)
    return;
  channel_reply (self, reply, error);
}

/* One buffer for every channel's requests, kept at the largest any needed:
 * channels run on the main thread only, and a request is copied out of it
 * at its own size. Allocating room for MaxFrame per request cost a 64 KiB
 * malloc and a realloc each. */
static guint8 *request_buffer;
static gsize request_buffer_size;

static guint8 *
request_buffer_get (gsize size)
{
  if (request_buffer_size < size)
    {
      g_free (request_buffer);
      request_buffer = g_malloc (size);
      request_buffer_size = size;
    }
  return request_buffer;
}

static void
channel_read_request (Stm32TransactChannel *self)
{
  guint64 limit =
      (guint64) stm32_link_get_config (self->link)->max_frame + STM32_CHANNEL_REQUEST_OVERHEAD;
  g_autoptr (GBytes) packet = NULL;
  g_autoptr (GBytes) frame = NULL;
  g_autoptr (GError) error = NULL;
  guint32 timeout_ms;
  guint8 *data;
  ssize_t size;

  /* One read, into room for the largest request and one byte more: MSG_TRUNC
   * gives the packet's whole size, so one too large is told from one that
   * fits, and is dropped whole. */
  data = request_buffer_get (limit + 1);
  size = recv (channel_fd (self), data, limit + 1, MSG_TRUNC | MSG_DONTWAIT);
  if (size < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (size < 0)
    {
      int saved_errno = errno;

      stm32_transact_channel_close (self, g_strerror (saved_errno));
      return;
    }
  /* End of file (shutdown) and an empty packet read the same; neither is a request. */
  if (size == 0)
    {
      stm32_transact_channel_close (self, "the client ended it");
      return;
    }
  self->busy = TRUE;
  if ((guint64) size > limit)
    {
      channel_reply_error (
          self, STM32_ERROR_FRAME_TOO_LARGE,
          "The request (%zd bytes with its packet framing) is larger than MaxFrame (%u) allows",
          size, stm32_link_get_config (self->link)->max_frame);
      return;
    }
  packet = g_bytes_new (data, size);
  if (!stm32_channel_request_parse (packet, &frame, &timeout_ms))
    {
      channel_reply_error (self, STM32_ERROR_INVALID_ARGS,
                           "A request is a GVariant (ayu) in normal form, serialized in the "
                           "host's byte order; this packet of %zd bytes is not one",
                           size);
      return;
    }
  if (!stm32_link_transact_start (self->link, frame, timeout_ms, self->cancellable, on_transacted,
                                  g_object_ref (self), &error))
    {
      channel_reply (self, NULL, error);
      g_object_unref (self);
    }
}

static void
on_socket_ready (Stm32TransactChannel *watched, GIOCondition condition)
{
  /* Whoever listens to "closed" may drop the last reference. */
  g_autoptr (Stm32TransactChannel) self = g_object_ref (watched);

  if (condition & (G_IO_HUP | G_IO_ERR))
    stm32_transact_channel_close (self, "the client closed it");
  else if ((condition & G_IO_OUT) && self->reply != NULL)
    channel_flush_reply (self);
  else if ((condition & G_IO_IN) && self->busy)
    channel_watch (self, self->reply != NULL ? G_IO_OUT : 0);
  else if (condition & G_IO_IN)
    channel_read_request (self);
}

static gsize
send_buffer_size (int fd)
{
  int size = 0;
  socklen_t len = sizeof size;

  return getsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, &len) == 0 && size > 0 ? (gsize) size : 0;
}

/* A packet must fit the sender's buffer whole, less the kernel's 32 bytes of
 * bookkeeping; the kernel doubles what is asked for. Only with CAP_NET_ADMIN
 * (not under the shipped unit) may it go past net.core.wmem_max. Returns the
 * largest packet the buffer now takes. */
static gsize
size_send_buffer (int fd, gsize largest_packet)
{
  int want = (int) MIN (largest_packet + 4096, (gsize) G_MAXINT / 2);
  gsize have;

  if (send_buffer_size (fd) < largest_packet + 32 &&
      setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) < 0)
    (void) setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  have = send_buffer_size (fd);
  return have > 32 ? have - 32 : 0;
}

Stm32TransactChannel *
stm32_transact_channel_new (Stm32Link *link, GError **error)
{
  g_autoptr (Stm32TransactChannel) self = NULL;
  guint max_frame;
  gsize largest;
  int fds[2];

  g_return_val_if_fail (STM32_IS_LINK (link), NULL);

  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, STM32_ERROR, STM32_ERROR_FAILED,
                   "Cannot create the transaction channel's sockets: %s", g_strerror (saved_errno));
      return NULL;
    }
  max_frame = stm32_link_get_config (link)->max_frame;
  largest = MIN (size_send_buffer (fds[0], (gsize) max_frame + STM32_CHANNEL_REPLY_OVERHEAD),
                 size_send_buffer (fds[1], (gsize) max_frame + STM32_CHANNEL_REQUEST_OVERHEAD));

  self = g_object_new (STM32_TYPE_TRANSACT_CHANNEL, NULL);
  self->link = g_object_ref (link);
  if (largest < (gsize) max_frame + STM32_CHANNEL_REPLY_OVERHEAD)
    CHANNEL_LOG (self, G_LOG_LEVEL_WARNING,
                 "its socket buffers take packets of %zu bytes, less than MaxFrame (%u) needs; "
                 "larger frames will fail. Raise net.core.wmem_max or lower MaxFrame",
                 largest, max_frame);
  self->client_fd = fds[1];
  self->socket = g_socket_new_from_fd (fds[0], error);
  if (self->socket == NULL)
    {
      close (fds[0]);
      return NULL;
    }
  self->watching = G_IO_IN | G_IO_HUP | G_IO_ERR;
  self->watch = g_source_new (&watch_funcs, sizeof (ChannelWatch));
  ((ChannelWatch *) self->watch)->channel = self;
  g_source_set_static_name (self->watch, "[stm32d] transaction channel");
  g_source_set_can_recurse (self->watch, TRUE);
  self->watch_tag = g_source_add_unix_fd (self->watch, fds[0], self->watching);
  g_source_attach (self->watch, g_main_context_get_thread_default ());
  return g_steal_pointer (&self);
}

int
stm32_transact_channel_steal_fd (Stm32TransactChannel *self)
{
  g_return_val_if_fail (STM32_IS_TRANSACT_CHANNEL (self), -1);
  return g_steal_fd (&self->client_fd);
}

void
stm32_transact_channel_close (Stm32TransactChannel *self, const char *reason)
{
  g_return_if_fail (STM32_IS_TRANSACT_CHANNEL (self));

  if (self->socket == NULL)
    return;
  CHANNEL_LOG (self, G_LOG_LEVEL_DEBUG, "closed: %s", reason);
  g_cancellable_cancel (self->cancellable);
  if (self->watch != NULL)
    {
      g_source_destroy (self->watch);
      g_clear_pointer (&self->watch, g_source_unref);
    }
  self->busy = FALSE;
  g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);
  g_clear_pointer (&self->reply, g_bytes_unref);
  /* Whoever listens may drop the last reference. */
  g_object_ref (self);
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
  g_object_unref (self);
}

static void
stm32_transact_channel_dispose (GObject *object)
{
  Stm32TransactChannel *self = STM32_TRANSACT_CHANNEL (object);

  if (self->link != NULL)
    stm32_transact_channel_close (self, "it is no longer needed");
  g_clear_object (&self->link);
  G_OBJECT_CLASS (stm32_transact_channel_parent_class)->dispose (object);
}

static void
stm32_transact_channel_finalize (GObject *object)
{
  Stm32TransactChannel *self = STM32_TRANSACT_CHANNEL (object);

  /* Never handed out: the client end is ours to close. */
  if (self->client_fd >= 0)
    close (self->client_fd);
  g_object_unref (self->cancellable);
  G_OBJECT_CLASS (stm32_transact_channel_parent_class)->finalize (object);
}

static void
stm32_transact_channel_class_init (Stm32TransactChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = stm32_transact_channel_dispose;
  object_class->finalize = stm32_transact_channel_finalize;
  signals[SIGNAL_CLOSED] = g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                         NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
stm32_transact_channel_init (Stm32TransactChannel *self)
{
  self->client_fd = -1;
  self->cancellable = g_cancellable_new ();
}
