/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-send-channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stm32-defaults.h"
#include "stm32-error.h"
#include "stm32-link-config.h"
#include "stm32-send-wire.h"

#define CHANNEL_LOG(self, level, fmt, ...)                                                         \
  g_log_structured (G_LOG_DOMAIN, level, "STM32D_LINK", stm32_link_get_name ((self)->link),        \
                    "MESSAGE", "%s: send channel: " fmt, stm32_link_get_name ((self)->link),       \
                    ##__VA_ARGS__)

/* One frame handed to the link, in the order the client wrote it. */
typedef struct
{
  Stm32SendChannel *channel; /* a reference: the link's callback always runs */
  GError *error;             /* why it failed, once done */
  gboolean done;
} Pending;

struct _Stm32SendChannel
{
  GObject parent_instance;

  Stm32Link *link;
  GSocket *socket;           /* our end; NULL once closed */
  int client_fd;             /* the other end, until handed out */
  GCancellable *cancellable; /* every frame of the channel's */
  GSource *watch;            /* what the channel waits for, HUP always */
  GIOCondition watching;
  guint pump_idle; /* answers and reads after the link's callbacks, once per burst */
  guint room_timer;
  GBytes *packet; /* read, with frames from @offset on not handed to the link yet */
  gsize offset;
  GQueue pending; /* Pending *, oldest first: answered in this order */
  GBytes *answer; /* serialized, waiting for room in the client's buffer */
};

enum
{
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (Stm32SendChannel, stm32_send_channel, G_TYPE_OBJECT)

static gboolean on_socket_ready (GSocket *socket, GIOCondition condition, gpointer user_data);

static Pending *
pending_push (Stm32SendChannel *self)
{
  Pending *pending = g_new0 (Pending, 1);

  pending->channel = g_object_ref (self);
  g_queue_push_tail (&self->pending, pending);
  return pending;
}

static void
pending_free (Pending *pending)
{
  g_clear_error (&pending->error);
  g_object_unref (pending->channel);
  g_free (pending);
}

static gboolean
same_outcome (const Pending *a, const Pending *b)
{
  if (a->error == NULL || b->error == NULL)
    return a->error == b->error;
  return a->error->domain == b->error->domain && a->error->code == b->error->code &&
         g_strcmp0 (a->error->message, b->error->message) == 0;
}

/* HUP and ERR are always watched: a client that leaves gives up its frames
 * at once. The source is replaced only when what we wait for changes, not
 * per frame. */
static void
channel_watch (Stm32SendChannel *self, GIOCondition condition)
{
  if (self->watch != NULL && self->watching == condition)
    return;
  if (self->watch != NULL)
    {
      g_source_destroy (self->watch);
      g_clear_pointer (&self->watch, g_source_unref);
    }
  self->watching = condition;
  self->watch = g_socket_create_source (self->socket, condition | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (self->watch, G_SOURCE_FUNC (on_socket_ready), self, NULL);
  g_source_attach (self->watch, g_main_context_get_thread_default ());
}

static int
channel_fd (Stm32SendChannel *self)
{
  return g_socket_get_fd (self->socket);
}

/* Writes the answer waiting, if the client's buffer has room for it. */
static void
channel_flush_answer (Stm32SendChannel *self)
{
  gsize size;
  const void *data = g_bytes_get_data (self->answer, &size);
  ssize_t written = send (channel_fd (self), data, size, MSG_DONTWAIT | MSG_NOSIGNAL);

  if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (written < 0)
    {
      int saved_errno = errno;

      stm32_send_channel_close (self, g_strerror (saved_errno));
      return;
    }
  /* A packet goes whole or not at all. */
  g_clear_pointer (&self->answer, g_bytes_unref);
}

/* Answers the runs of answered frames at the head, as long as the client
 * takes them. */
static void
channel_answer (Stm32SendChannel *self)
{
  while (self->socket != NULL && self->answer == NULL)
    {
      Pending *head = g_queue_peek_head (&self->pending);
      g_autofree char *name = NULL;
      guint32 count = 0;

      if (head == NULL || !head->done)
        return;
      for (GList *l = self->pending.head; l != NULL; l = l->next)
        {
          Pending *p = l->data;

          if (!p->done || !same_outcome (head, p) || count == G_MAXUINT32)
            break;
          count++;
        }
      if (head->error != NULL)
        name = g_dbus_error_encode_gerror (head->error);
      self->answer = stm32_send_wire_answer_new (count, name ? name : "",
                                                 head->error ? head->error->message : "");
      for (guint32 i = 0; i < count; i++)
        pending_free (g_queue_pop_head (&self->pending));
      channel_flush_answer (self);
    }
}

/* After the channel closed: frames answered at the head go to no one. */
static void
channel_drop_answered (Stm32SendChannel *self)
{
  Pending *head;

  while ((head = g_queue_peek_head (&self->pending)) != NULL && head->done)
    pending_free (g_queue_pop_head (&self->pending));
}

static gboolean channel_pump (Stm32SendChannel *self);

static void
on_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Pending *pending = user_data;
  g_autoptr (Stm32SendChannel) self = g_object_ref (pending->channel);

  if (!stm32_link_send_finish (STM32_LINK (source), result, &pending->error))
    g_assert (pending->error != NULL);
  pending->done = TRUE;
  if (self->socket == NULL)
    channel_drop_answered (self);
  else if (self->pump_idle == 0)
    self->pump_idle = g_idle_add_full (G_PRIORITY_DEFAULT, G_SOURCE_FUNC (channel_pump), self,
                                       NULL);
}

/* A frame the channel answers itself, in its place among the others. */
static void
channel_fail_frame (Stm32SendChannel *self, Stm32Error code, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

static void
channel_fail_frame (Stm32SendChannel *self, Stm32Error code, const char *format, ...)
{
  Pending *pending = pending_push (self);
  va_list args;

  va_start (args, format);
  pending->error = g_error_new_valist (STM32_ERROR, code, format, args);
  va_end (args);
  pending->done = TRUE;
}

/* A packet larger than any the client library writes: answers its frame if
 * it is a single one (too large), else it cannot be answered frame by frame. */
static void
channel_refuse_packet (Stm32SendChannel *self, gsize size)
{
  guint32 length = 0;

  /* Reading a little of a packet drops the rest of it. */
  if (recv (channel_fd (self), &length, sizeof length, MSG_DONTWAIT) != sizeof length ||
      (gsize) length + STM32_SEND_WIRE_FRAME_OVERHEAD != size)
    {
      stm32_send_channel_close (self, "a packet too large to be batched frames");
      return;
    }
  channel_fail_frame (self, STM32_ERROR_FRAME_TOO_LARGE, "Frame of %u bytes exceeds MaxFrame (%u)",
                      length, stm32_link_get_config (self->link)->max_frame);
}

/* Reads the next packet into @packet; FALSE when none waits (or the channel
 * closed). */
static gboolean
channel_read_packet (Stm32SendChannel *self)
{
  gsize limit = MAX ((gsize) STM32_SEND_WIRE_BATCH_MAX,
                     (gsize) stm32_link_get_config (self->link)->max_frame +
                         STM32_SEND_WIRE_FRAME_OVERHEAD);
  guint8 *data;
  ssize_t size, received;

  /* The size of the next packet, so that it is read whole into a buffer of its own. */
  size = recv (channel_fd (self), NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  if (size < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return FALSE;
  if (size < 0)
    {
      int saved_errno = errno;

      stm32_send_channel_close (self, g_strerror (saved_errno));
      return FALSE;
    }
  /* End of file (shutdown) and an empty packet read the same. */
  if (size == 0)
    {
      stm32_send_channel_close (self, "the client ended it");
      return FALSE;
    }
  if ((gsize) size > limit)
    {
      channel_refuse_packet (self, size);
      return self->socket != NULL;
    }
  data = g_malloc (size);
  received = recv (channel_fd (self), data, size, MSG_DONTWAIT);
  if (received != size)
    {
      int saved_errno = errno;

      g_free (data);
      stm32_send_channel_close (self, received < 0 ? g_strerror (saved_errno)
                                                   : "a packet changed size between two reads");
      return FALSE;
    }
  self->packet = g_bytes_new_take (data, size);
  self->offset = 0;
  return TRUE;
}

static gboolean
on_room_timer (gpointer user_data)
{
  Stm32SendChannel *self = user_data;

  self->room_timer = 0;
  channel_pump (self);
  return G_SOURCE_REMOVE;
}

/* Hands the next frame of @packet to the link; FALSE if it must wait. */
static gboolean
channel_send_next (Stm32SendChannel *self)
{
  gsize offset = self->offset;
  gboolean malformed;
  g_autoptr (GBytes) frame = stm32_send_wire_next (self->packet, &offset, &malformed);

  if (frame == NULL)
    {
      g_clear_pointer (&self->packet, g_bytes_unref);
      if (malformed)
        stm32_send_channel_close (self, "a packet that is not a sequence of whole frames");
      return !malformed;
    }
  /* Whatever fills the queue, this frame waits for room rather than failing:
   * our own sends wake us when they finish, others' by this timer. */
  if (!stm32_link_has_send_room (self->link, g_bytes_get_size (frame)))
    {
      if (self->room_timer == 0)
        self->room_timer = g_timeout_add (STM32_SEND_CHANNEL_ROOM_POLL_MS, on_room_timer, self);
      return FALSE;
    }
  self->offset = offset;
  stm32_link_send_async (self->link, frame, self->cancellable, on_sent, pending_push (self));
  return TRUE;
}

/* Answers what was answered, then reads and sends as far as the limits let
 * it, and waits for what comes next. */
static gboolean
channel_pump (Stm32SendChannel *channel)
{
  g_autoptr (Stm32SendChannel) self = g_object_ref (channel);
  GIOCondition want = 0;

  self->pump_idle = 0;
  for (;;)
    {
      channel_answer (self);
      if (self->socket == NULL)
        return G_SOURCE_REMOVE;
      if (self->answer != NULL)
        {
          want = G_IO_OUT;
          break;
        }
      if (g_queue_get_length (&self->pending) >= STM32_SEND_CHANNEL_UNANSWERED_MAX)
        break;
      if (self->packet == NULL && !channel_read_packet (self))
        {
          want = G_IO_IN;
          break;
        }
      if (self->packet != NULL && !channel_send_next (self))
        break;
    }
  if (self->socket != NULL)
    channel_watch (self, want);
  return G_SOURCE_REMOVE;
}

static gboolean
on_socket_ready (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  g_autoptr (Stm32SendChannel) self = g_object_ref (user_data);

  if (condition & (G_IO_HUP | G_IO_ERR))
    stm32_send_channel_close (self, "the client closed it");
  else if (self->answer != NULL)
    {
      channel_flush_answer (self);
      if (self->socket != NULL)
        channel_pump (self);
    }
  else
    channel_pump (self);
  return G_SOURCE_CONTINUE;
}

/* A packet must fit the sender's buffer whole; the kernel doubles what is
 * asked for, and only with CAP_NET_ADMIN goes past net.core.wmem_max. */
static void
fit_packets (int fd, gsize largest_packet)
{
  int size = 0, want = (int) MIN (largest_packet + 4096, (gsize) G_MAXINT / 2);
  socklen_t len = sizeof size;

  if (getsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, &len) == 0 &&
      (gsize) size >= largest_packet + 32)
    return;
  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) < 0)
    (void) setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
}

Stm32SendChannel *
stm32_send_channel_new (Stm32Link *link, GError **error)
{
  g_autoptr (Stm32SendChannel) self = NULL;
  int fds[2];

  g_return_val_if_fail (STM32_IS_LINK (link), NULL);

  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, STM32_ERROR, STM32_ERROR_FAILED,
                   "Cannot create the send channel's sockets: %s", g_strerror (saved_errno));
      return NULL;
    }
  fit_packets (fds[1], MAX ((gsize) STM32_SEND_WIRE_BATCH_MAX,
                            (gsize) stm32_link_get_config (link)->max_frame +
                                STM32_SEND_WIRE_FRAME_OVERHEAD));
  self = g_object_new (STM32_TYPE_SEND_CHANNEL, NULL);
  self->link = g_object_ref (link);
  self->client_fd = fds[1];
  self->socket = g_socket_new_from_fd (fds[0], error);
  if (self->socket == NULL)
    {
      close (fds[0]);
      return NULL;
    }
  channel_watch (self, G_IO_IN);
  return g_steal_pointer (&self);
}

int
stm32_send_channel_steal_fd (Stm32SendChannel *self)
{
  g_return_val_if_fail (STM32_IS_SEND_CHANNEL (self), -1);
  return g_steal_fd (&self->client_fd);
}

static void
channel_clear_sources (Stm32SendChannel *self)
{
  if (self->watch != NULL)
    {
      g_source_destroy (self->watch);
      g_clear_pointer (&self->watch, g_source_unref);
    }
  g_clear_handle_id (&self->pump_idle, g_source_remove);
  g_clear_handle_id (&self->room_timer, g_source_remove);
}

void
stm32_send_channel_close (Stm32SendChannel *self, const char *reason)
{
  g_return_if_fail (STM32_IS_SEND_CHANNEL (self));

  if (self->socket == NULL)
    return;
  CHANNEL_LOG (self, G_LOG_LEVEL_DEBUG, "closed with %u frames unanswered: %s",
               g_queue_get_length (&self->pending), reason);
  /* Whoever listens may drop the last reference. */
  g_object_ref (self);
  channel_clear_sources (self);
  g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);
  g_clear_pointer (&self->packet, g_bytes_unref);
  g_clear_pointer (&self->answer, g_bytes_unref);
  /* Frames not yet written are dropped; their callbacks free their places. */
  g_cancellable_cancel (self->cancellable);
  channel_drop_answered (self);
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
  g_object_unref (self);
}

static void
stm32_send_channel_dispose (GObject *object)
{
  Stm32SendChannel *self = STM32_SEND_CHANNEL (object);

  if (self->link != NULL)
    stm32_send_channel_close (self, "it is no longer needed");
  channel_clear_sources (self);
  g_clear_object (&self->link);
  G_OBJECT_CLASS (stm32_send_channel_parent_class)->dispose (object);
}

static void
stm32_send_channel_finalize (GObject *object)
{
  Stm32SendChannel *self = STM32_SEND_CHANNEL (object);

  /* Every pending frame holds a reference: none is left. */
  g_assert (g_queue_is_empty (&self->pending));
  /* Never handed out: the client end is ours to close. */
  if (self->client_fd >= 0)
    close (self->client_fd);
  g_object_unref (self->cancellable);
  G_OBJECT_CLASS (stm32_send_channel_parent_class)->finalize (object);
}

static void
stm32_send_channel_class_init (Stm32SendChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = stm32_send_channel_dispose;
  object_class->finalize = stm32_send_channel_finalize;
  signals[SIGNAL_CLOSED] = g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                         NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
stm32_send_channel_init (Stm32SendChannel *self)
{
  self->client_fd = -1;
  self->cancellable = g_cancellable_new ();
  g_queue_init (&self->pending);
}
