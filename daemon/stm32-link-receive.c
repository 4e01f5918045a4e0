/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a Stm32Link's board sends, and what it means: bytes become frames
 * (or a raw holder's chunks), frames go to the transaction they answer or
 * out as "received", and an EOF or error ends the connection, classified —
 * an ending right after the accept is a full connection table. Whoever
 * takes "received" may hold receiving while it falls behind.
 */
#include "stm32-link-private.h"

#include "stm32-socket-options.h"

static gboolean
link_in_busy_window (Stm32Link *self)
{
  /* lwIP aborts a connection it cannot give a netconn to right after the
   * handshake, before the firmware ever sends; a board that spoke first did not. */
  return self->attempt->bytes_received == 0 &&
         g_get_monotonic_time () - self->connected_mono < (gint64) self->config->busy_window * 1000;
}

static void
link_deliver_frame (Stm32Link *self, GBytes *frame)
{
  stm32_link_add_counter (self, &self->frames_received, 1);
  self->attempt->frames_received++;
  if (!stm32_link_transactions_take_reply (self, frame))
    g_signal_emit (self, stm32_link_signals[SIGNAL_RECEIVED], 0, frame);
}

static void
link_on_raw_data (Stm32Link *self, const guint8 *data, gsize len)
{
  g_autoptr (GBytes) chunk = g_bytes_new (data, len);

  stm32_link_add_counter (self, &self->bytes_received, len);
  g_signal_emit (self, stm32_link_signals[SIGNAL_RECEIVED_RAW], 0, chunk);
}

void
stm32_link_on_data (Stm32Link *self, const guint8 *data, gsize len)
{
  g_autoptr (GPtrArray) frames = NULL;
  g_autoptr (GError) error = NULL;
  gboolean valid;

  stm32_link_watchdog_feed (self);
  /* A reply usually carries the acknowledgement of what it answers: a Send
   * waiting for it is answered now. A transaction's request, which no one
   * waits to see acknowledged, is left to the send queue's slower look
   * (a SIOCOUTQ per reply was a seventh system call per transaction). */
  if (stm32_send_queue_awaits_acknowledgement (self->send_queue))
    stm32_send_queue_confirm (self->send_queue);
  self->attempt->bytes_received += len;
  self->attempt->last_received = g_get_real_time ();
  if (self->io->raw)
    {
      link_on_raw_data (self, data, len);
      return;
    }
  frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  valid = stm32_decoder_feed (self->decoder, data, len, frames, &error);

  stm32_link_hold_counters (self);
  stm32_link_add_counter (self, &self->bytes_received, len);
  for (guint i = 0; i < frames->len; i++)
    link_deliver_frame (self, g_ptr_array_index (frames, i));
  stm32_link_release_counters (self);
  /* The heartbeat was answered: a transaction held behind it may go. */
  if (valid)
    stm32_link_transactions_issue (self);

  /* The stream can no longer be trusted: reset rather than wait for a FIN. */
  if (!valid)
    stm32_link_end (self, STM32_END_REASON_PROTOCOL_ERROR, STM32_CLOSED_BY_PC, TRUE,
                    g_error_new (error->domain, error->code,
                                 "%s:%u: the board sent a bad frame: %s", self->config->host,
                                 self->config->port, error->message));
}

void
stm32_link_on_io_error (Stm32Link *self, const GError *error)
{
  Stm32EndReason reason = stm32_classify_io_error (error);
  Stm32ClosedBy closed_by =
      reason == STM32_END_REASON_RESET ? STM32_CLOSED_BY_BOARD : STM32_CLOSED_BY_NONE;

  if (reason == STM32_END_REASON_RESET && link_in_busy_window (self))
    stm32_link_end (
        self, STM32_END_REASON_SERVER_BUSY, closed_by, FALSE,
        stm32_link_error_new (self, STM32_END_REASON_SERVER_BUSY,
                              "the board accepted and reset the connection at once (its "
                              "connection table is probably full)"));
  else
    /* ETIMEDOUT and unreachable on an established connection: the kernel's
     * keepalive or TCP_USER_TIMEOUT gave up on a board that ACKs nothing. */
    stm32_link_end_detected (
        self, reason == STM32_END_REASON_DEAD_PEER ? STM32_DETECTOR_KEEPALIVE : STM32_DETECTOR_NONE,
        reason, closed_by, FALSE, stm32_link_error_new (self, reason, "%s", error->message));
}

void
stm32_link_on_eof (Stm32Link *self)
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

      stm32_link_on_io_error (self, reset);
    }
  else if (self->state == STM32_LINK_STATE_CLOSING)
    {
      stm32_link_close_on_eof (self);
      stm32_link_end (self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, FALSE, NULL);
    }
  else if (link_in_busy_window (self))
    stm32_link_end (
        self, STM32_END_REASON_SERVER_BUSY, STM32_CLOSED_BY_BOARD, FALSE,
        stm32_link_error_new (self, STM32_END_REASON_SERVER_BUSY,
                              "the board accepted and closed the connection at once (its "
                              "connection table is probably full)%s",
                              lost));
  else
    stm32_link_end (self, STM32_END_REASON_REMOTE_CLOSED, STM32_CLOSED_BY_BOARD, FALSE,
                    stm32_link_error_new (self, STM32_END_REASON_REMOTE_CLOSED,
                                          "the board closed the connection%s", lost));
}

void
stm32_link_hold_receiving (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));

  if (self->receive_holds++ == 0)
    LINK_LOG (self, G_LOG_LEVEL_DEBUG, "receiving held: the board's frames wait in TCP");
}

void
stm32_link_release_receiving (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (self->receive_holds > 0);

  if (--self->receive_holds > 0)
    return;
  LINK_LOG (self, G_LOG_LEVEL_DEBUG, "receiving resumed");
  if (self->io == NULL)
    return;
  /* The time held was ours, not the board's silence. */
  stm32_link_watchdog_feed (self);
  stm32_link_transactions_receiving_resumed (self);
  stm32_link_io_read (self->io);
}

gboolean
stm32_link_get_receiving_held (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), FALSE);
  return self->receive_holds > 0;
}
