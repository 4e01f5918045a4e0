/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Raw mode of a Stm32Link (AcquireStream): one holder at a time takes the
 * current connection's bytes unframed, both ways, until it lets go or the
 * connection ends.
 */
#include "stm32-link-private.h"

#include "stm32-error.h"

void
stm32_link_raw_end_hold (Stm32Link *self)
{
  if (self->io == NULL || self->io->raw_hold == 0)
    return;
  self->io->raw_hold = 0;
  LINK_LOG (self, G_LOG_LEVEL_INFO, "raw stream ended with the connection");
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_RAW]);
}

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

guint
stm32_link_acquire_raw (Stm32Link *self, GError **error)
{
  g_autoptr (GError) busy = NULL;

  g_return_val_if_fail (STM32_IS_LINK (self), 0);

  if (!stm32_link_check_connected (self, error))
    return 0;
  if (self->io->raw_hold != 0)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_BUSY,
                   "Link “%s” is already held by another client (AcquireStream); try again once "
                   "it is closed",
                   self->name);
      return 0;
    }
  /* The holder owns every byte from now on, replies included, so no
   * transaction can be matched any more. */
  busy = g_error_new (
      STM32_ERROR, STM32_ERROR_BUSY,
      "Link “%s” was taken for a raw stream (AcquireStream) before this transaction's reply came",
      self->name);
  /* A heartbeat's answer too now belongs to the holder; heartbeats pause
   * while held, and any byte still feeds the idle watchdog. */
  stm32_link_transactions_fail_all_with (self, busy);
  link_reset_decoder (self);
  if (++self->raw_serial == 0)
    self->raw_serial = 1;
  self->io->raw = TRUE;
  self->io->raw_hold = self->raw_serial;
  LINK_LOG (self, G_LOG_LEVEL_INFO, "raw stream acquired");
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_RAW]);
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
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_RAW]);
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
  g_autoptr (GTask) task = NULL;
  g_autoptr (Stm32SendRequest) request = NULL;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (bytes != NULL);
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_link_write_raw_async);
  if (!stm32_link_check_connected (self, &error) ||
      !stm32_link_check_queue_room (self, g_bytes_get_size (bytes), &error))
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
  request = stm32_send_queue_reserve (self->send_queue, bytes, task, TRUE);
  stm32_link_enqueue (self, request);
}

gboolean
stm32_link_write_raw_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
