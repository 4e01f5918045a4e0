/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The watchdogs of a Stm32Link beyond TCP's own keepalive: IdleTimeout (no
 * data from the board for too long ends the connection as a dead peer), and
 * the application heartbeat's timer (its answer is awaited like a
 * transaction's reply, in stm32-link-transactions.c). Neither counts time
 * while receiving is held (stm32_link_hold_receiving).
 */
#include "stm32-link-private.h"

static gboolean
on_idle_check (gpointer user_data)
{
  Stm32Link *self = user_data;
  gint64 quiet_ms;

  self->idle_timer = 0;
  /* We are not reading: whatever the board sent waits for us. */
  if (stm32_link_get_receiving_held (self))
    stm32_link_watchdog_feed (self);
  quiet_ms = (g_get_monotonic_time () - self->last_rx_mono) / 1000;
  if (quiet_ms >= self->config->idle_timeout)
    {
      /* The board's TCP stack still answers but its firmware does not: reset
       * frees its control block, waiting for a FIN would not. */
      stm32_link_end_detected (self, STM32_DETECTOR_IDLE_TIMEOUT, STM32_END_REASON_DEAD_PEER,
                               STM32_CLOSED_BY_PC, TRUE,
                               stm32_link_error_new (self, STM32_END_REASON_DEAD_PEER,
                                                     "no data from the board for %u ms "
                                                     "(IdleTimeout)",
                                                     self->config->idle_timeout));
      return G_SOURCE_REMOVE;
    }
  /* Re-armed only when it fires, so a busy link costs no timer churn per read. */
  self->idle_timer =
      g_timeout_add (self->config->idle_timeout - (guint) quiet_ms, on_idle_check, self);
  return G_SOURCE_REMOVE;
}

static gboolean
on_heartbeat (gpointer user_data)
{
  Stm32Link *self = user_data;
  g_autoptr (GBytes) wire = NULL;
  g_autoptr (GError) error = NULL;

  /* A transaction under way proves liveness itself (and an earlier heartbeat
   * still owes its answer); while receiving is held the answer could not be
   * read, and the board has proved itself with the data we hold back. */
  if (!stm32_link_transactions_is_empty (self) || stm32_link_get_receiving_held (self))
    return G_SOURCE_CONTINUE;
  wire = stm32_link_prepare_frame (self, self->config->heartbeat, &error);
  if (wire == NULL)
    {
      LINK_LOG (self, G_LOG_LEVEL_DEBUG, "heartbeat skipped: %s", error->message);
      return G_SOURCE_CONTINUE;
    }
  stm32_link_transactions_heartbeat (self, wire);
  return G_SOURCE_CONTINUE;
}

void
stm32_link_watchdog_arm (Stm32Link *self)
{
  if (self->config->idle_timeout > 0)
    self->idle_timer = g_timeout_add (self->config->idle_timeout, on_idle_check, self);
  if (self->config->heartbeat != NULL)
    self->heartbeat_timer = g_timeout_add (self->config->heartbeat_interval, on_heartbeat, self);
}

void
stm32_link_watchdog_disarm (Stm32Link *self)
{
  g_clear_handle_id (&self->idle_timer, g_source_remove);
  g_clear_handle_id (&self->heartbeat_timer, g_source_remove);
}

void
stm32_link_watchdog_feed (Stm32Link *self)
{
  self->last_rx_mono = g_get_monotonic_time ();
}
