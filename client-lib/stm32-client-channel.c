/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stm32ClientChannel: transactions over the socket OpenTransactChannel gives,
 * any number outstanding, each reply matched to its request in order. */
#include "stm32-client-channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "stm32-channel-wire.h"
#include "stm32-client-private.h"
#include "stm32-error.h"

/* What errors call this kind of channel. */
#define CHANNEL_NAME "transaction channel"

/* How much longer than the transactions' own timeouts a _sync call waits for
 * stm32d before it gives up on a daemon that hangs. */
#define SYNC_MARGIN_MS 2000

/* One request written to stm32d, which owes it one reply packet. */
typedef struct
{
  Stm32ClientChannel *channel; /* unowned: a slot lives in the channel's FIFO */
  GTask *task;                 /* NULL when nobody waits for the reply any more */
  GSource *cancel_source;
  guint timeout_ms;
} Slot;

struct _Stm32ClientChannel
{
  GObject parent_instance;

  GSocket *socket; /* non-blocking; NULL once the channel is shut */
  GError *shut;    /* why it is, for every later call */
  GQueue slots;    /* Slot *, oldest first: replies come in this order */
  guint n_async;   /* slots with a task */
  GSource *read_source;
  /* The last cancellable a _sync call waited on, and its fd: GLib makes and
   * closes an eventfd each time one is asked for and given back, two system
   * calls a transaction for a caller that passes the same one every time. */
  GCancellable *wait_cancellable;
  int wait_cancellable_fd;
};

G_DEFINE_FINAL_TYPE (Stm32ClientChannel, stm32_client_channel, G_TYPE_OBJECT)

static void channel_shut (Stm32ClientChannel *self, const GError *why);
static void channel_forget_cancellable (Stm32ClientChannel *self);

/* ---- slots -------------------------------------------------------------------------- */

static Slot *
slot_new (Stm32ClientChannel *self, guint timeout_ms)
{
  Slot *slot = g_new0 (Slot, 1);

  slot->channel = self;
  slot->timeout_ms = timeout_ms;
  g_queue_push_tail (&self->slots, slot);
  return slot;
}

static void
channel_stop_reading (Stm32ClientChannel *self)
{
  if (self->read_source == NULL)
    return;
  g_source_destroy (self->read_source);
  g_clear_pointer (&self->read_source, g_source_unref);
}

/* Takes the slot's task, if someone still waits for it; the slot stays in the
 * FIFO until its reply is read, or the channel is shut. */
static GTask *
slot_take_task (Slot *slot)
{
  Stm32ClientChannel *self = slot->channel;

  if (slot->cancel_source != NULL)
    {
      g_source_destroy (slot->cancel_source);
      g_clear_pointer (&slot->cancel_source, g_source_unref);
    }
  if (slot->task == NULL)
    return NULL;
  /* Reading stops with the last waiting task: a channel nobody waits on
   * wakes nobody, and replies still owed to cancelled slots wait in the
   * socket until the next transaction reads past them. */
  if (--self->n_async == 0)
    channel_stop_reading (self);
  return g_steal_pointer (&slot->task);
}

static void
slot_free (Slot *slot)
{
  g_autoptr (GTask) task = slot_take_task (slot);

  g_assert (task == NULL);
  g_free (slot);
}

/* ---- packets ------------------------------------------------------------------------ */

/* The next packet, or NULL with G_IO_ERROR_WOULD_BLOCK when none waits, or
 * with why the channel cannot be used any more. */
static GBytes *
channel_receive (Stm32ClientChannel *self, GError **error)
{
  int fd = g_socket_get_fd (self->socket);
  g_autofree guint8 *data = NULL;
  ssize_t size, n;

  /* The size of the next packet (FIONREAD would give all of them together),
   * so that it is read whole into a buffer of its own. */
  size = recv (fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  if (size > 0)
    {
      data = g_malloc (size);
      n = recv (fd, data, size, MSG_DONTWAIT);
    }
  else
    n = size;
  if (!stm32_client_channel_received (n, CHANNEL_NAME, error))
    return NULL;
  if (n != size)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "stm32d sent a reply of %zd bytes on the transaction channel, %zd were read",
                   size, n);
      return NULL;
    }
  return g_bytes_new_take (g_steal_pointer (&data), size);
}

/* The reply frame, or the error Transact would have given, typed the same way
 * as a D-Bus call's (see stm32_client_call_error()). */
static GBytes *
reply_result (GBytes *frame, const char *error_name, const char *message, GError **error)
{
  GError *remote;

  if (*error_name == '\0')
    return g_bytes_ref (frame);
  remote = g_dbus_error_new_for_dbus_error (error_name, message);
  g_dbus_error_strip_remote_error (remote);
  g_propagate_error (error, remote);
  return NULL;
}

/* Reads the next reply and takes the slot it answers off the FIFO: returns the
 * slot, with the reply frame in @reply or the transaction's error in @error.
 * Returns NULL when no packet waits (@error is G_IO_ERROR_WOULD_BLOCK), or
 * when the channel broke: it is shut then, and @error says why. */
static Slot *
channel_read (Stm32ClientChannel *self, GBytes **reply, GError **error)
{
  g_autoptr (GBytes) packet = NULL;
  g_autoptr (GBytes) frame = NULL;
  g_autofree char *error_name = NULL;
  g_autofree char *message = NULL;
  g_autoptr (GError) local_error = NULL;

  packet = channel_receive (self, &local_error);
  if (packet != NULL && g_queue_is_empty (&self->slots))
    g_set_error_literal (&local_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "stm32d sent a reply no request was waiting for");
  else if (packet != NULL && !stm32_channel_reply_parse (packet, &frame, &error_name, &message))
    g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "stm32d sent a reply that is not a (ayss) in normal form (%zu bytes)",
                 g_bytes_get_size (packet));
  if (local_error != NULL)
    {
      /* After a reply that cannot be read, which request the next one
       * answers is anyone's guess. */
      if (!g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        channel_shut (self, local_error);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
  *reply = reply_result (frame, error_name, message, error);
  return g_queue_pop_head (&self->slots);
}

/* Writes one request. Errors that leave the channel usable are the
 * transaction's; any other shuts the channel. */
static gboolean
channel_send (Stm32ClientChannel *self, GBytes *request, guint timeout_ms, GError **error)
{
  g_autoptr (GBytes) packet = stm32_channel_request_new (request, timeout_ms);
  gsize size = g_bytes_get_size (packet);
  g_autoptr (GError) local_error = NULL;
  gssize n;

  n = g_socket_send (self->socket, g_bytes_get_data (packet, NULL), size, NULL, &local_error);
  if (n == (gssize) size)
    return TRUE;
  if (n >= 0)
    {
      /* A SEQPACKET socket sends a packet whole or not at all. */
      g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "the transaction channel took %zd bytes of a %zu-byte request", n, size);
      channel_shut (self, local_error);
    }
  else if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_QUEUE_FULL,
                   "too many transactions outstanding on the channel (its socket buffer is "
                   "full); wait for replies before sending more");
      return FALSE;
    }
  else if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE,
                   "a request of %zu bytes does not fit in one packet of the transaction channel",
                   g_bytes_get_size (request));
      return FALSE;
    }
  else
    {
      g_autoptr (GError) why = NULL;

      stm32_client_set_channel_closed (&why, CHANNEL_NAME, local_error->message);
      g_clear_error (&local_error);
      local_error = g_steal_pointer (&why);
      channel_shut (self, local_error);
    }
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

/* ---- the channel ---------------------------------------------------------------------- */

/* Makes the channel unusable: closes the socket, fails every waiting
 * transaction with @why, and every later one. */
static void
channel_shut (Stm32ClientChannel *self, const GError *why)
{
  GQueue slots = G_QUEUE_INIT;
  Slot *slot;

  if (self->socket == NULL)
    return;
  self->shut = g_error_copy (why);
  channel_forget_cancellable (self);
  channel_stop_reading (self);
  g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);
  /* A callback may already start the next transaction: the channel is in
   * its final state before any runs. */
  slots = self->slots;
  g_queue_init (&self->slots);
  while ((slot = g_queue_pop_head (&slots)) != NULL)
    {
      g_autoptr (GTask) task = slot_take_task (slot);

      if (task != NULL)
        g_task_return_error (task, g_error_copy (why));
      slot_free (slot);
    }
}

static gboolean
channel_check_open (Stm32ClientChannel *self, GError **error)
{
  if (self->socket != NULL)
    return TRUE;
  g_propagate_error (error, g_error_copy (self->shut));
  return FALSE;
}

static gboolean
on_readable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  g_autoptr (Stm32ClientChannel) self = g_object_ref (user_data);

  /* A callback may close the channel or start transactions of its own. */
  while (self->n_async > 0)
    {
      g_autoptr (GBytes) reply = NULL;
      g_autoptr (GError) error = NULL;
      g_autoptr (GTask) task = NULL;
      Slot *slot = channel_read (self, &reply, &error);

      if (slot == NULL)
        break; /* nothing more to read now, or the channel was shut */
      task = slot_take_task (slot);
      slot_free (slot);
      if (task == NULL || g_task_return_error_if_cancelled (task))
        continue;
      if (reply != NULL)
        g_task_return_pointer (task, g_steal_pointer (&reply), (GDestroyNotify) g_bytes_unref);
      else
        g_task_return_error (task, g_steal_pointer (&error));
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_slot_cancelled (GCancellable *cancellable, gpointer user_data)
{
  g_autoptr (GTask) task = slot_take_task (user_data);

  if (task != NULL)
    g_task_return_error_if_cancelled (task);
  return G_SOURCE_REMOVE;
}

static void
stm32_client_channel_dispose (GObject *object)
{
  stm32_client_channel_close (STM32_CLIENT_CHANNEL (object));
  G_OBJECT_CLASS (stm32_client_channel_parent_class)->dispose (object);
}

static void
channel_forget_cancellable (Stm32ClientChannel *self)
{
  if (self->wait_cancellable == NULL)
    return;
  if (self->wait_cancellable_fd >= 0)
    g_cancellable_release_fd (self->wait_cancellable);
  g_clear_object (&self->wait_cancellable);
}

static void
stm32_client_channel_finalize (GObject *object)
{
  Stm32ClientChannel *self = STM32_CLIENT_CHANNEL (object);

  g_clear_error (&self->shut);
  channel_forget_cancellable (self);
  G_OBJECT_CLASS (stm32_client_channel_parent_class)->finalize (object);
}

static void
stm32_client_channel_class_init (Stm32ClientChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = stm32_client_channel_dispose;
  object_class->finalize = stm32_client_channel_finalize;
  /* Registers the org.stm32d.Error names that replies carry. */
  (void) STM32_ERROR;
}

static void
stm32_client_channel_init (Stm32ClientChannel *self)
{
  g_queue_init (&self->slots);
  self->wait_cancellable_fd = -1;
}

/* Takes @socket, stm32d's end of OpenTransactChannel. */
Stm32ClientChannel *
stm32_client_channel_new (GSocket *socket)
{
  Stm32ClientChannel *self;

  g_return_val_if_fail (G_IS_SOCKET (socket), NULL);
  self = g_object_new (STM32_TYPE_CLIENT_CHANNEL, NULL);
  self->socket = socket;
  g_socket_set_blocking (socket, FALSE);
  return self;
}

/**
 * stm32_client_channel_transact:
 * @self: a channel
 * @request: the frame to send
 * @timeout_ms: how long stm32d waits for the reply, including the wait for
 *   earlier transactions on the link; at least 1
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the reply or an error
 * @user_data: (closure): data for @callback
 *
 * Sends @request to the board through stm32d and returns the next frame the
 * board sends, like stm32_client_link_transact(). The request is written at
 * once; any number of transactions may be outstanding, and each gets its own
 * reply, in order. Call it from the thread that uses the channel: @callback
 * runs in that thread's thread-default main context.
 *
 * Cancelling completes the transaction at once; stm32d still runs it, and
 * its reply is dropped.
 *
 * stm32d answers every request, with %STM32_ERROR_TIMEOUT at the latest once
 * @timeout_ms has passed, or the channel reads EOF when it exits; there is no
 * timer of our own. Against a daemon that hangs with the channel open, use
 * @cancellable.
 */
void
stm32_client_channel_transact (Stm32ClientChannel *self, GBytes *request, guint timeout_ms,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  GError *error = NULL;
  Slot *slot;

  g_return_if_fail (STM32_IS_CLIENT_CHANNEL (self));
  g_return_if_fail (request != NULL);
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_client_channel_transact);
  if (g_task_return_error_if_cancelled (task))
    return;
  if (!channel_check_open (self, &error) || !channel_send (self, request, timeout_ms, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  slot = slot_new (self, timeout_ms);
  slot->task = g_steal_pointer (&task);
  if (self->n_async++ == 0)
    {
      self->read_source = g_socket_create_source (self->socket, G_IO_IN, NULL);
      g_source_set_callback (self->read_source, G_SOURCE_FUNC (on_readable), self, NULL);
      g_source_attach (self->read_source, g_task_get_context (slot->task));
    }
  if (cancellable != NULL)
    {
      slot->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (slot->cancel_source, G_SOURCE_FUNC (on_slot_cancelled), slot, NULL);
      g_source_attach (slot->cancel_source, g_task_get_context (slot->task));
    }
}

/**
 * stm32_client_channel_transact_finish:
 * @self: a channel
 * @result: the result passed to the callback
 * @error: return location for an error: a #STM32_ERROR code as from
 *   stm32_client_link_transact() (%STM32_ERROR_TIMEOUT when no frame came in
 *   time), %STM32_ERROR_QUEUE_FULL when the channel's socket buffer is full,
 *   %STM32_ERROR_FRAME_TOO_LARGE when @request does not fit in a packet,
 *   %G_IO_ERROR_CONNECTION_CLOSED once stm32d closed the channel,
 *   %G_IO_ERROR_CLOSED after stm32_client_channel_close(), or
 *   %G_IO_ERROR_INVALID_DATA if stm32d's reply was unreadable (the channel
 *   is closed then)
 *
 * Returns: (transfer full): the reply, without framing bytes, or %NULL
 */
GBytes *
stm32_client_channel_transact_finish (Stm32ClientChannel *self, GAsyncResult *result,
                                      GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == stm32_client_channel_transact,
                        NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* The longest stm32d may take to answer the last request on the channel. */
static gint64
slots_timeout_ms (Stm32ClientChannel *self)
{
  gint64 total = SYNC_MARGIN_MS;

  for (GList *l = self->slots.head; l != NULL; l = l->next)
    total += ((Slot *) l->data)->timeout_ms;
  return total;
}

/* The fd that becomes readable when @cancellable is cancelled, kept from
 * one call to the next; -1 where GLib has none to give. */
static int
channel_cancellable_fd (Stm32ClientChannel *self, GCancellable *cancellable)
{
  GPollFD pollfd = { .fd = -1 };

  if (cancellable != self->wait_cancellable)
    {
      channel_forget_cancellable (self);
      self->wait_cancellable = g_object_ref (cancellable);
      /* g_cancellable_reset() drains this fd; it does not replace it. */
      self->wait_cancellable_fd =
          g_cancellable_make_pollfd (cancellable, &pollfd) ? pollfd.fd : -1;
    }
  return self->wait_cancellable_fd;
}

/* Waits until a reply can be read, @deadline (monotonic µs) passes, or
 * @cancellable is cancelled: one poll() on the socket and the cancellable. */
static gboolean
channel_wait_readable (Stm32ClientChannel *self, gint64 deadline, GCancellable *cancellable,
                       GError **error)
{
  struct pollfd fds[2] = { { .fd = g_socket_get_fd (self->socket), .events = POLLIN } };
  nfds_t n = 1;

  if (cancellable != NULL)
    {
      fds[1].fd = channel_cancellable_fd (self, cancellable);
      fds[1].events = POLLIN;
      if (fds[1].fd < 0)
        return g_socket_condition_timed_wait (self->socket, G_IO_IN,
                                              MAX (deadline - g_get_monotonic_time (), 1),
                                              cancellable, error);
      n = 2;
    }
  for (;;)
    {
      gint64 remaining = deadline - g_get_monotonic_time ();
      int ready;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (remaining <= 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "timed out");
          return FALSE;
        }
      ready = poll (fds, n, (int) MIN ((remaining + 999) / 1000, G_MAXINT));
      if (ready < 0 && errno != EINTR)
        {
          int saved_errno = errno;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       "waiting for the transaction channel failed: %s", g_strerror (saved_errno));
          return FALSE;
        }
      /* Readable, or hung up: the read that follows says which. */
      if (ready > 0 && fds[0].revents != 0)
        return TRUE;
    }
}

/**
 * stm32_client_channel_transact_sync:
 * @self: a channel
 * @request: the frame to send
 * @timeout_ms: how long stm32d waits for the reply; at least 1
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error, as for
 *   stm32_client_channel_transact_finish()
 *
 * Blocks the calling thread without running any main loop; see
 * stm32_client_channel_transact(). Fails with %G_IO_ERROR_PENDING while
 * asynchronous transactions are outstanding on @self. If stm32d does not
 * answer in @timeout_ms (plus those of transactions still ahead on the
 * channel, plus a margin) the result is %STM32_ERROR_TIMEOUT and the late
 * reply is dropped when it comes. Cancelling @cancellable from another
 * thread ends the wait at once with %G_IO_ERROR_CANCELLED; the late reply
 * is dropped too. The channel keeps a reference to the last @cancellable
 * and the fd GLib made for it, for the next call, until it is given
 * another one or closed.
 *
 * Returns: (transfer full): the reply, without framing bytes, or %NULL
 */
GBytes *
stm32_client_channel_transact_sync (Stm32ClientChannel *self, GBytes *request, guint timeout_ms,
                                    GCancellable *cancellable, GError **error)
{
  gint64 budget_ms, deadline;
  Slot *mine;

  g_return_val_if_fail (STM32_IS_CLIENT_CHANNEL (self), NULL);
  g_return_val_if_fail (request != NULL, NULL);
  if (g_cancellable_set_error_if_cancelled (cancellable, error) ||
      !channel_check_open (self, error))
    return NULL;
  if (self->n_async > 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PENDING,
                           "asynchronous transactions are outstanding on the channel");
      return NULL;
    }
  if (!channel_send (self, request, timeout_ms, error))
    return NULL;
  mine = slot_new (self, timeout_ms);
  /* stm32d answers in order, so replies still owed to earlier (abandoned)
   * requests may come first, each within its own timeout. */
  budget_ms = slots_timeout_ms (self);
  deadline = g_get_monotonic_time () + budget_ms * 1000;
  /* Waits before each read: a reply cannot be there the moment its request
   * went out, and a read that finds nothing is a system call for nothing. */
  for (;;)
    {
      g_autoptr (GBytes) reply = NULL;
      g_autoptr (GError) local_error = NULL;
      Slot *slot;

      if (!channel_wait_readable (self, deadline, cancellable, &local_error))
        {
          /* @mine stays in the FIFO: its reply, if it ever comes, is dropped. */
          if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
            g_set_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT,
                         "stm32d did not answer on the transaction channel within %" G_GINT64_FORMAT
                         " ms",
                         budget_ms);
          else
            g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
      slot = channel_read (self, &reply, &local_error);
      if (slot != NULL)
        {
          gboolean is_mine = slot == mine;

          slot_free (slot);
          if (!is_mine)
            continue;
          if (reply == NULL)
            g_propagate_error (error, g_steal_pointer (&local_error));
          return g_steal_pointer (&reply);
        }
      /* The channel is shut, which took @mine with it. */
      if (!g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
    }
}

/**
 * stm32_client_channel_close:
 * @self: a channel
 *
 * Closes the channel: outstanding transactions fail with %G_IO_ERROR_CLOSED,
 * and so does every later one. stm32d cancels the transaction it has under
 * way for the channel. Closing twice does nothing; the last reference going
 * away closes it too.
 */
void
stm32_client_channel_close (Stm32ClientChannel *self)
{
  g_autoptr (GError) why = NULL;

  g_return_if_fail (STM32_IS_CLIENT_CHANNEL (self));
  if (self->socket == NULL)
    return;
  g_set_error_literal (&why, G_IO_ERROR, G_IO_ERROR_CLOSED, "the transaction channel is closed");
  channel_shut (self, why);
}
