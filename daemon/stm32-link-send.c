/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a Stm32Link sends: the checks a frame passes before it is queued,
 * the writer that feeds the send queue to the socket one request at a time
 * (our FIN last, when closing), and Send itself.
 */
#include "stm32-link-private.h"

#include "stm32-enum-types.h"
#include "stm32-error.h"

gboolean
stm32_link_check_connected (Stm32Link *self, GError **error)
{
  if (self->state == STM32_LINK_STATE_CONNECTED)
    return TRUE;
  g_set_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED, "Link “%s” is not connected (%s)",
               self->name, stm32_enum_to_string (STM32_TYPE_LINK_STATE, self->state));
  return FALSE;
}

gboolean
stm32_link_check_queue_room (Stm32Link *self, gsize size, GError **error)
{
  if (stm32_send_queue_has_room (self->send_queue, size))
    return TRUE;
  g_set_error (error, STM32_ERROR, STM32_ERROR_QUEUE_FULL,
               "Send queue of link “%s” is full (%" G_GSIZE_FORMAT " of %u bytes waiting); "
               "wait for earlier sends to finish",
               self->name, stm32_send_queue_get_reserved (self->send_queue),
               self->config->send_queue_max);
  return FALSE;
}

GBytes *
stm32_link_prepare_frame (Stm32Link *self, GBytes *frame, GError **error)
{
  g_autoptr (GBytes) wire = NULL;

  if (!stm32_link_check_connected (self, error))
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
  if (wire == NULL || !stm32_link_check_queue_room (self, g_bytes_get_size (wire), error))
    return NULL;
  return g_steal_pointer (&wire);
}

static void link_written_whole (Stm32Link *self);

/* Requests written with one system call: a stream of small frames costs a
 * send() per batch, not per frame. IOV_MAX is 1024 on Linux. */
#define LINK_WRITE_BATCH_VECTORS 1024
#define LINK_WRITE_BATCH_BYTES (256 * 1024)

/* Writes the queue. The first write of a burst finishes on the next turn of
 * the main loop, as it always did, so that what a caller queues in one go
 * is measured against SendQueueMax together (a transaction's request goes at
 * once: stm32_link_enqueue_now()); once a write finished, the
 * requests queued meanwhile are given to the kernel together (@at_once),
 * batch after batch for as long as it takes them: one wake-up and one
 * send() per batch. Where the kernel stops in the middle of a request, the
 * rest of it goes the asynchronous way. */
static void
link_kick_writer (Stm32Link *self, gboolean at_once)
{
  static GOutputVector vectors[LINK_WRITE_BATCH_VECTORS];
  GBytes *partial;
  gsize offset = 0, taken;
  guint n;

  for (;;)
    {
      if (self->io == NULL || self->io->phase != LINK_IO_OPEN ||
          stm32_send_queue_is_writing (self->send_queue))
        return;
      stm32_send_queue_drop_cancelled (self->send_queue);
      /* Their callers' callbacks may have started a write, or ended the connection. */
      if (self->io == NULL || self->io->phase != LINK_IO_OPEN ||
          stm32_send_queue_is_writing (self->send_queue))
        return;
      n = stm32_send_queue_start_batch (self->send_queue, vectors, at_once ? G_N_ELEMENTS (vectors) : 1,
                                        LINK_WRITE_BATCH_BYTES);
      if (n == 0)
        {
          if (self->state == STM32_LINK_STATE_CLOSING)
            stm32_link_close_drained (self);
          return;
        }
      taken = at_once ? stm32_link_io_write_now (self->io, vectors, n) : 0;
      if (taken > 0)
        self->attempt->last_sent = g_get_real_time ();
      partial = stm32_send_queue_batch_taken (self->send_queue, taken, self->io->written, &offset);
      if (partial != NULL)
        {
          stm32_link_io_write (self->io, partial, offset);
          return;
        }
    }
}

void
stm32_link_kick_writer (Stm32Link *self)
{
  link_kick_writer (self, FALSE);
}

void
stm32_link_enqueue (Stm32Link *self, Stm32SendRequest *request)
{
  stm32_send_queue_push (self->send_queue, request);
  stm32_link_kick_writer (self);
}

void
stm32_link_enqueue_now (Stm32Link *self, Stm32SendRequest *request)
{
  stm32_send_queue_push (self->send_queue, request);
  link_kick_writer (self, TRUE);
}

/* The kernel took the head request whole. */
static void
link_written_whole (Stm32Link *self)
{
  self->attempt->last_sent = g_get_real_time ();
  stm32_send_queue_written (self->send_queue, self->io->written);
}

void
stm32_link_on_written (Stm32Link *self, gboolean complete, const GError *error)
{
  LinkIo *io = self->io;

  if (error != NULL && !stm32_link_io_is_ending (io))
    stm32_link_on_io_error (self, error);
  if (!complete)
    {
      stm32_send_queue_unsent (self->send_queue, stm32_link_not_sent_error_new (self->end_error));
      stm32_link_io_maybe_close (io);
      return;
    }
  link_written_whole (self);
  if (stm32_link_io_is_ending (io))
    {
      /* The connection ended while this was written: now or never. */
      stm32_send_queue_fail_unconfirmed (self->send_queue, self->end_error);
      stm32_link_io_maybe_close (io);
    }
  else
    link_kick_writer (self, TRUE);
}

void
stm32_link_send_async (Stm32Link *self, GBytes *frame, GCancellable *cancellable,
                       GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (GBytes) wire = NULL;
  g_autoptr (Stm32SendRequest) request = NULL;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (frame != NULL);
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_link_send_async);
  wire = stm32_link_prepare_frame (self, frame, &error);
  if (wire == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  request = stm32_send_queue_reserve (self->send_queue, wire, task, FALSE);
  stm32_link_enqueue (self, request);
}

gboolean
stm32_link_send_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

gboolean
stm32_link_has_send_room (Stm32Link *self, gsize frame_size)
{
  g_return_val_if_fail (STM32_IS_LINK (self), FALSE);
  /* A length prefix of u32be is the most framing adds. */
  return stm32_send_queue_get_reserved (self->send_queue) == 0 ||
         stm32_send_queue_has_room (self->send_queue, frame_size + 4);
}
