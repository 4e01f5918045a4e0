/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stm32ClientSendChannel: sends over the socket OpenSendChannel gives, frames
 * batched into packets, any number outstanding, answered in order. */
#include "stm32-client-send-channel.h"

#include <errno.h>
#include <sys/socket.h>

#include "stm32-client-private.h"
#include "stm32-error.h"
#include "stm32-send-wire.h"

/* What errors call this kind of channel. */
#define CHANNEL_NAME "send channel"

/* One frame given to the channel, which stm32d answers in its turn. */
typedef struct
{
  Stm32ClientSendChannel *channel; /* unowned: a slot lives in the channel's FIFO */
  GTask *task;                     /* NULL when nobody waits for the answer any more */
  GSource *cancel_source;
  GError **sync_error; /* a _sync call's: where its outcome goes */
  gboolean *sync_done;
} Slot;

struct _Stm32ClientSendChannel
{
  GObject parent_instance;

  GSocket *socket; /* non-blocking; NULL once the channel is shut */
  GError *shut;    /* why it is, for every later call */
  guint call_timeout;
  gsize packet_max; /* the largest packet the socket takes */
  GQueue slots;     /* Slot *, oldest first: answers come in this order */
  guint n_async;    /* slots with a task */
  GByteArray *batch; /* frames given in this main-loop iteration, not yet a packet */
  GQueue packets;    /* GBytes *, waiting for room in the socket */
  gsize unwritten;   /* bytes in @batch and @packets */
  GSource *read_source;
  GSource *write_source; /* the flush at the end of the iteration, or room in the socket */
};

G_DEFINE_FINAL_TYPE (Stm32ClientSendChannel, stm32_client_send_channel, G_TYPE_OBJECT)

static void channel_shut (Stm32ClientSendChannel *self, const GError *why);

static void
clear_source (GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

/* ---- slots -------------------------------------------------------------------------- */

static Slot *
slot_new (Stm32ClientSendChannel *self)
{
  Slot *slot = g_new0 (Slot, 1);

  slot->channel = self;
  g_queue_push_tail (&self->slots, slot);
  return slot;
}

/* Takes the slot's task, if someone still waits for it. */
static GTask *
slot_take_task (Slot *slot)
{
  Stm32ClientSendChannel *self = slot->channel;

  clear_source (&slot->cancel_source);
  if (slot->task == NULL)
    return NULL;
  /* Reading stops with the last waiting task: answers still owed to
   * cancelled sends wait in the socket until the next send reads past them. */
  if (--self->n_async == 0)
    clear_source (&self->read_source);
  return g_steal_pointer (&slot->task);
}

/* Gives the slot its outcome (@error is borrowed) and frees it. */
static void
slot_finish (Slot *slot, const GError *error)
{
  g_autoptr (GTask) task = slot_take_task (slot);

  if (slot->sync_done != NULL)
    {
      *slot->sync_done = TRUE;
      if (error != NULL)
        g_propagate_error (slot->sync_error, g_error_copy (error));
    }
  else if (task != NULL && !g_task_return_error_if_cancelled (task))
    {
      if (error == NULL)
        g_task_return_boolean (task, TRUE);
      else
        g_task_return_error (task, g_error_copy (error));
    }
  g_free (slot);
}

static gboolean
on_slot_cancelled (GCancellable *cancellable, gpointer user_data)
{
  g_autoptr (GTask) task = slot_take_task (user_data);

  if (task != NULL)
    g_task_return_error_if_cancelled (task);
  return G_SOURCE_REMOVE;
}

/* ---- answers ------------------------------------------------------------------------ */

/* The next packet, or NULL with G_IO_ERROR_WOULD_BLOCK when none waits, or
 * with why the channel cannot be used any more. */
static GBytes *
channel_receive (Stm32ClientSendChannel *self, GError **error)
{
  guint8 data[4096];
  ssize_t n = recv (g_socket_get_fd (self->socket), data, sizeof data, MSG_DONTWAIT | MSG_TRUNC);

  if (!stm32_client_channel_received (n, CHANNEL_NAME, error))
    return NULL;
  /* Answers are a count and an error's name and message: small. */
  if ((gsize) n > sizeof data)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "stm32d sent an answer of %zd bytes on the send channel", n);
      return NULL;
    }
  return g_bytes_new (data, n);
}

/* Reads one answer and finishes the slots it answers. FALSE when no packet
 * waits (@error is G_IO_ERROR_WOULD_BLOCK), or when the channel broke: it is
 * shut then, and @error says why. */
static gboolean
channel_read_answer (Stm32ClientSendChannel *self, GError **error)
{
  g_autoptr (GBytes) packet = NULL;
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GError) outcome = NULL;
  g_autofree char *name = NULL;
  g_autofree char *message = NULL;
  guint32 count = 0;

  packet = channel_receive (self, &local_error);
  if (packet != NULL && !stm32_send_wire_answer_parse (packet, &count, &name, &message))
    g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "stm32d sent an answer that is not a (uss) in normal form (%zu bytes)",
                 g_bytes_get_size (packet));
  else if (packet != NULL && count > g_queue_get_length (&self->slots))
    g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "stm32d answered %u frames on the send channel, %u were waiting", count,
                 g_queue_get_length (&self->slots));
  if (local_error != NULL)
    {
      /* After an answer that cannot be read, which frames the next one
       * answers is anyone's guess. */
      if (!g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        channel_shut (self, local_error);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (*name != '\0')
    {
      outcome = g_dbus_error_new_for_dbus_error (name, message);
      g_dbus_error_strip_remote_error (outcome);
    }
  /* A callback may close the channel, which finishes the rest with its own
   * error: each is popped before it is finished. */
  for (guint32 i = 0; i < count && self->socket != NULL; i++)
    slot_finish (g_queue_pop_head (&self->slots), outcome);
  return TRUE;
}

static gboolean
on_readable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  g_autoptr (Stm32ClientSendChannel) self = g_object_ref (user_data);

  while (self->n_async > 0 && channel_read_answer (self, NULL))
    ;
  return G_SOURCE_CONTINUE;
}

/* ---- frames ------------------------------------------------------------------------- */

static void
channel_seal_batch (Stm32ClientSendChannel *self)
{
  if (self->batch->len == 0)
    return;
  g_queue_push_tail (&self->packets, g_byte_array_free_to_bytes (self->batch));
  self->batch = g_byte_array_new ();
}

static void
channel_add_frame (Stm32ClientSendChannel *self, GBytes *frame)
{
  gsize size = g_bytes_get_size (frame) + STM32_SEND_WIRE_FRAME_OVERHEAD;

  if (self->batch->len > 0 && self->batch->len + size > STM32_SEND_WIRE_BATCH_MAX)
    channel_seal_batch (self);
  stm32_send_wire_append (self->batch, frame);
  self->unwritten += size;
  /* A frame too large to share a packet goes alone. */
  if (self->batch->len >= STM32_SEND_WIRE_BATCH_MAX)
    channel_seal_batch (self);
}

/* Writes the frames waiting, as far as the socket takes them; FALSE when it
 * is full (or the channel was shut). */
static gboolean
channel_flush (Stm32ClientSendChannel *self)
{
  GBytes *packet;

  channel_seal_batch (self);
  while (self->socket != NULL && (packet = g_queue_peek_head (&self->packets)) != NULL)
    {
      gsize size;
      const void *data = g_bytes_get_data (packet, &size);
      ssize_t n = send (g_socket_get_fd (self->socket), data, size, MSG_DONTWAIT | MSG_NOSIGNAL);

      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return FALSE;
      if (n < 0)
        {
          g_autoptr (GError) why = NULL;
          int saved_errno = errno;

          stm32_client_set_channel_closed (&why, CHANNEL_NAME, g_strerror (saved_errno));
          channel_shut (self, why);
          return FALSE;
        }
      /* A packet goes whole or not at all. */
      self->unwritten -= size;
      g_bytes_unref (g_queue_pop_head (&self->packets));
    }
  return self->socket != NULL;
}

static gboolean on_flush (gpointer user_data);

static gboolean
on_writable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  return on_flush (user_data);
}

static gboolean
on_flush (gpointer user_data)
{
  g_autoptr (Stm32ClientSendChannel) self = g_object_ref (user_data);
  GMainContext *context = g_source_get_context (self->write_source);

  g_clear_pointer (&self->write_source, g_source_unref);
  if (!channel_flush (self) && self->socket != NULL)
    {
      /* stm32d stopped reading: the rest waits for room. */
      self->write_source = g_socket_create_source (self->socket, G_IO_OUT, NULL);
      g_source_set_callback (self->write_source, G_SOURCE_FUNC (on_writable), self, NULL);
      g_source_attach (self->write_source, context);
    }
  return G_SOURCE_REMOVE;
}

/* Frames given in one main-loop iteration are written together at its end. */
static void
channel_schedule_flush (Stm32ClientSendChannel *self, GMainContext *context)
{
  if (self->write_source != NULL)
    return;
  self->write_source = g_idle_source_new ();
  g_source_set_priority (self->write_source, G_PRIORITY_DEFAULT);
  g_source_set_callback (self->write_source, on_flush, self, NULL);
  g_source_attach (self->write_source, context);
}

static gboolean
channel_check_frame (Stm32ClientSendChannel *self, GBytes *frame, GError **error)
{
  if (self->socket == NULL)
    {
      g_propagate_error (error, g_error_copy (self->shut));
      return FALSE;
    }
  if (g_bytes_get_size (frame) + STM32_SEND_WIRE_FRAME_OVERHEAD <= self->packet_max)
    return TRUE;
  g_set_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE,
               "a frame of %zu bytes does not fit in one packet of the send channel",
               g_bytes_get_size (frame));
  return FALSE;
}

/* ---- the channel ---------------------------------------------------------------------- */

/* Makes the channel unusable: closes the socket, fails every waiting send
 * with @why, and every later one. */
static void
channel_shut (Stm32ClientSendChannel *self, const GError *why)
{
  GQueue slots;
  Slot *slot;

  if (self->socket == NULL)
    return;
  self->shut = g_error_copy (why);
  clear_source (&self->read_source);
  clear_source (&self->write_source);
  g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);
  g_queue_clear_full (&self->packets, (GDestroyNotify) g_bytes_unref);
  g_byte_array_set_size (self->batch, 0);
  self->unwritten = 0;
  /* A callback may already start the next send: the channel is in its final
   * state before any runs. */
  slots = self->slots;
  g_queue_init (&self->slots);
  while ((slot = g_queue_pop_head (&slots)) != NULL)
    slot_finish (slot, why);
}

static void
stm32_client_send_channel_dispose (GObject *object)
{
  stm32_client_send_channel_close (STM32_CLIENT_SEND_CHANNEL (object));
  G_OBJECT_CLASS (stm32_client_send_channel_parent_class)->dispose (object);
}

static void
stm32_client_send_channel_finalize (GObject *object)
{
  Stm32ClientSendChannel *self = STM32_CLIENT_SEND_CHANNEL (object);

  g_clear_error (&self->shut);
  g_byte_array_unref (self->batch);
  G_OBJECT_CLASS (stm32_client_send_channel_parent_class)->finalize (object);
}

static void
stm32_client_send_channel_class_init (Stm32ClientSendChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = stm32_client_send_channel_dispose;
  object_class->finalize = stm32_client_send_channel_finalize;
  /* Registers the org.stm32d.Error names that answers carry. */
  (void) STM32_ERROR;
}

static void
stm32_client_send_channel_init (Stm32ClientSendChannel *self)
{
  g_queue_init (&self->slots);
  g_queue_init (&self->packets);
  self->batch = g_byte_array_new ();
}

/* Takes @socket, stm32d's end of OpenSendChannel; a _sync send waits at
 * most @call_timeout ms for its answer. */
Stm32ClientSendChannel *
stm32_client_send_channel_new (GSocket *socket, guint call_timeout)
{
  Stm32ClientSendChannel *self;
  int size = 0;
  socklen_t len = sizeof size;

  g_return_val_if_fail (G_IS_SOCKET (socket), NULL);
  self = g_object_new (STM32_TYPE_CLIENT_SEND_CHANNEL, NULL);
  self->socket = socket;
  self->call_timeout = call_timeout;
  /* stm32d sized it for its MaxFrame; the kernel keeps 32 bytes of each
   * packet's for itself. */
  if (getsockopt (g_socket_get_fd (socket), SOL_SOCKET, SO_SNDBUF, &size, &len) == 0 && size > 32)
    self->packet_max = (gsize) size - 32;
  g_socket_set_blocking (socket, FALSE);
  return self;
}

/**
 * stm32_client_send_channel_send:
 * @self: a send channel
 * @frame: the frame to send
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the frame was acknowledged, or with an error
 * @user_data: (closure): data for @callback
 *
 * Sends @frame to the board through stm32d, like stm32_client_link_send():
 * completes once the board's TCP stack acknowledged the whole frame, or with
 * why not. Frames reach the board in the order they were given; those given
 * in one main-loop iteration are written to stm32d together at its end. Call
 * it from the thread that uses the channel: @callback runs in that thread's
 * thread-default main context.
 *
 * Nothing here ever fails for lack of room: when stm32d takes no more frames
 * they wait in the channel (see stm32_client_send_channel_get_unwritten()).
 * Cancelling completes the send at once; a frame already given to stm32d is
 * still sent.
 */
void
stm32_client_send_channel_send (Stm32ClientSendChannel *self, GBytes *frame,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  GError *error = NULL;
  GMainContext *context;
  Slot *slot;

  g_return_if_fail (STM32_IS_CLIENT_SEND_CHANNEL (self));
  g_return_if_fail (frame != NULL);
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_client_send_channel_send);
  if (g_task_return_error_if_cancelled (task))
    return;
  if (!channel_check_frame (self, frame, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  context = g_task_get_context (task);
  channel_add_frame (self, frame);
  slot = slot_new (self);
  slot->task = g_steal_pointer (&task);
  if (self->n_async++ == 0)
    {
      self->read_source = g_socket_create_source (self->socket, G_IO_IN, NULL);
      g_source_set_callback (self->read_source, G_SOURCE_FUNC (on_readable), self, NULL);
      g_source_attach (self->read_source, context);
    }
  if (cancellable != NULL)
    {
      slot->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (slot->cancel_source, G_SOURCE_FUNC (on_slot_cancelled), slot, NULL);
      g_source_attach (slot->cancel_source, context);
    }
  channel_schedule_flush (self, context);
}

/**
 * stm32_client_send_channel_send_finish:
 * @self: a send channel
 * @result: the result passed to the callback
 * @error: return location for an error: a #STM32_ERROR code as from
 *   stm32_client_link_send() (%STM32_ERROR_NOT_CONNECTED, %STM32_ERROR_RESET,
 *   %STM32_ERROR_FRAME_TOO_LARGE, …), %G_IO_ERROR_CONNECTION_CLOSED once
 *   stm32d closed the channel, %G_IO_ERROR_CLOSED after
 *   stm32_client_send_channel_close(), or %G_IO_ERROR_INVALID_DATA if
 *   stm32d's answer was unreadable (the channel is closed then)
 *
 * Returns: %TRUE once the board acknowledged the frame
 */
gboolean
stm32_client_send_channel_send_finish (Stm32ClientSendChannel *self, GAsyncResult *result,
                                       GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == stm32_client_send_channel_send,
                        FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Waits for @condition until @deadline (monotonic µs); FALSE with @error. */
static gboolean
channel_wait (Stm32ClientSendChannel *self, GIOCondition condition, gint64 deadline,
              GCancellable *cancellable, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  gint64 remaining = deadline - g_get_monotonic_time ();

  if (remaining > 0 && g_socket_condition_timed_wait (self->socket, condition, remaining,
                                                      cancellable, &local_error))
    return TRUE;
  if (remaining <= 0 || g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    g_propagate_error (error, stm32_client_no_answer_error (self->call_timeout));
  else
    g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

/**
 * stm32_client_send_channel_send_sync:
 * @self: a send channel
 * @frame: the frame to send
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error, as for
 *   stm32_client_send_channel_send_finish()
 *
 * Blocks the calling thread without running any main loop; see
 * stm32_client_send_channel_send(). Fails with %G_IO_ERROR_PENDING while
 * asynchronous sends are outstanding on @self, and with
 * %STM32_CLIENT_ERROR_NO_ANSWER when stm32d did not answer within the
 * client's call-timeout.
 *
 * Returns: %TRUE once the board acknowledged the frame
 */
gboolean
stm32_client_send_channel_send_sync (Stm32ClientSendChannel *self, GBytes *frame,
                                     GCancellable *cancellable, GError **error)
{
  g_autoptr (GError) outcome = NULL;
  gboolean done = FALSE;
  gint64 deadline;
  Slot *mine;

  g_return_val_if_fail (STM32_IS_CLIENT_SEND_CHANNEL (self), FALSE);
  g_return_val_if_fail (frame != NULL, FALSE);
  if (g_cancellable_set_error_if_cancelled (cancellable, error) ||
      !channel_check_frame (self, frame, error))
    return FALSE;
  if (self->n_async > 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           "asynchronous sends are outstanding on the send channel");
      return FALSE;
    }
  channel_add_frame (self, frame);
  mine = slot_new (self);
  mine->sync_done = &done;
  mine->sync_error = &outcome;
  deadline = g_get_monotonic_time () + (gint64) self->call_timeout * 1000;
  while (!channel_flush (self))
    if (self->socket == NULL || !channel_wait (self, G_IO_OUT, deadline, cancellable, error))
      goto out;
  /* stm32d answers in order: answers owed to earlier (cancelled) sends come first. */
  while (!done)
    {
      g_autoptr (GError) local_error = NULL;

      if (channel_read_answer (self, &local_error))
        continue;
      if (self->socket == NULL || !channel_wait (self, G_IO_IN, deadline, cancellable, error))
        goto out;
    }
out:
  if (done && outcome == NULL)
    return TRUE;
  if (done)
    g_propagate_error (error, g_steal_pointer (&outcome));
  else
    {
      /* Gave up: @mine stays in the FIFO for its answer, which nobody wants;
       * or the channel was shut, which answered it already. */
      mine = NULL;
      for (GList *l = self->slots.head; l != NULL; l = l->next)
        if (((Slot *) l->data)->sync_done == &done)
          mine = l->data;
      if (mine != NULL)
        {
          mine->sync_done = NULL;
          mine->sync_error = NULL;
        }
      if (error != NULL && *error == NULL)
        g_propagate_error (error, g_error_copy (self->shut));
    }
  return FALSE;
}

/**
 * stm32_client_send_channel_get_unanswered:
 * @self: a send channel
 *
 * Returns: how many frames given to the channel stm32d has not answered yet
 */
guint
stm32_client_send_channel_get_unanswered (Stm32ClientSendChannel *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_SEND_CHANNEL (self), 0);
  return g_queue_get_length (&self->slots);
}

/**
 * stm32_client_send_channel_get_unwritten:
 * @self: a send channel
 *
 * Frames wait in the channel while stm32d takes no more (its send queue is
 * full, or the board stopped reading): a client that streams watches this to
 * stop producing.
 *
 * Returns: how many bytes of frames the channel holds that stm32d has not taken
 */
gsize
stm32_client_send_channel_get_unwritten (Stm32ClientSendChannel *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_SEND_CHANNEL (self), 0);
  return self->unwritten;
}

/**
 * stm32_client_send_channel_close:
 * @self: a send channel
 *
 * Closes the channel: outstanding sends fail with %G_IO_ERROR_CLOSED, and so
 * does every later one. stm32d drops the frames it has not written yet.
 * Closing twice does nothing; the last reference going away closes it too.
 */
void
stm32_client_send_channel_close (Stm32ClientSendChannel *self)
{
  g_autoptr (GError) why = NULL;

  g_return_if_fail (STM32_IS_CLIENT_SEND_CHANNEL (self));
  if (self->socket == NULL)
    return;
  g_set_error_literal (&why, G_IO_ERROR, G_IO_ERROR_CLOSED, "the send channel is closed");
  channel_shut (self, why);
}
