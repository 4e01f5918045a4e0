/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * How a Stm32Link closes a connection on request (CloseMode): gracefully —
 * our FIN, the board's FIN awaited — or with a RST once the board
 * acknowledged everything we sent and no transaction waits for its reply; in
 * auto mode the close learner (stm32-close-learner.h) picks which from how
 * the board answered earlier closes, and learns from each.
 */
#include "stm32-link-private.h"

#include "stm32-enum-types.h"
#include "stm32-socket-options.h"

static void
link_close_notify (Stm32Link *self)
{
  g_object_freeze_notify (G_OBJECT (self));
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_CLOSE_STRATEGY]);
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_CLOSE_STRATEGY_REASON]);
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_CLOSE_WAIT]);
  g_object_thaw_notify (G_OBJECT (self));
}

static gboolean
link_close_is_reset (Stm32Link *self)
{
  return self->close_kind == STM32_CLOSE_KIND_LEARNED_RESET ||
         self->close_kind == STM32_CLOSE_KIND_RESET;
}

static void link_close_arm (Stm32Link *self, guint ms);

/* CloseTimeout less what the close took so far, in ms. */
static guint
link_close_time_left (Stm32Link *self)
{
  gint64 spent = (g_get_monotonic_time () - self->close_started_mono) / 1000;

  return spent >= self->config->close_timeout ? 0 : self->config->close_timeout - (guint) spent;
}

static gboolean
on_close_timeout (gpointer user_data)
{
  Stm32Link *self = user_data;
  LinkIo *io = self->io;
  GSocket *socket = io && io->connection ? g_socket_connection_get_socket (io->connection) : NULL;

  self->close_timer = 0;
  if (!link_close_is_reset (self) && socket != NULL && io->fin_sent)
    {
      /* The board's FIN is in, its EOF just not read yet (a busy main
       * loop): that close was answered, and the read that follows ends it. */
      if (stm32_socket_peer_closed (socket))
        return G_SOURCE_REMOVE;
      /* The learned wait measures the firmware's answer to an EOF it got;
       * a board that did not even acknowledge our FIN has not seen it yet
       * (a slow link, a busy board): it has the rest of CloseTimeout. */
      if (self->close_armed < self->config->close_timeout &&
          stm32_socket_fin_unacknowledged (socket) && link_close_time_left (self) > 0)
        {
          link_close_arm (self, link_close_time_left (self));
          return G_SOURCE_REMOVE;
        }
    }
  stm32_link_end (self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, TRUE,
                  link_close_is_reset (self)
                      ? stm32_link_error_new (self, STM32_END_REASON_LOCAL,
                                              "the board did not acknowledge everything sent "
                                              "within %u ms (CloseTimeout); reset anyway",
                                              self->close_armed)
                      : stm32_link_error_new (self, STM32_END_REASON_LOCAL,
                                              "the board did not close within %u ms; reset "
                                              "instead",
                                              self->close_armed));
  return G_SOURCE_REMOVE;
}

static void
link_close_arm (Stm32Link *self, guint ms)
{
  g_clear_handle_id (&self->close_timer, g_source_remove);
  self->close_armed = ms;
  self->close_timer = g_timeout_add (ms, on_close_timeout, self);
}

void
stm32_link_close_begin (Stm32Link *self)
{
  self->close_kind = stm32_close_learner_next_kind (&self->close_learner);
  self->close_wait = stm32_close_learner_next_wait (&self->close_learner);
  self->close_started_mono = g_get_monotonic_time ();
  /* CloseTimeout bounds the whole close, writing what is queued included;
   * a shorter FIN wait starts with our FIN. */
  link_close_arm (self, self->config->close_timeout);
  LINK_LOG (self, G_LOG_LEVEL_DEBUG, "closing: %s, waiting at most %u ms",
            stm32_enum_to_string (STM32_TYPE_CLOSE_KIND, self->close_kind), self->close_wait);
  stm32_link_kick_writer (self);
}

/* Whether the board has everything we sent and owes no reply: then a RST loses nothing. */
static gboolean
link_close_nothing_owed (Stm32Link *self)
{
  guint64 acknowledged;

  return !stm32_send_queue_is_writing (self->send_queue) &&
         stm32_send_queue_is_empty (self->send_queue) && stm32_link_transactions_is_empty (self) &&
         stm32_link_io_get_acknowledged (self->io, &acknowledged) &&
         acknowledged == self->io->written;
}

static gboolean
on_close_poll (gpointer user_data)
{
  Stm32Link *self = user_data;

  if (self->io == NULL || self->io->phase != LINK_IO_OPEN)
    {
      self->close_poll_timer = 0;
      return G_SOURCE_REMOVE;
    }
  if (!link_close_nothing_owed (self))
    return G_SOURCE_CONTINUE;
  self->close_poll_timer = 0;
  stm32_link_end (self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, TRUE, NULL);
  return G_SOURCE_REMOVE;
}

void
stm32_link_close_drained (Stm32Link *self)
{
  if (!link_close_is_reset (self))
    {
      self->io->fin_sent_mono = g_get_monotonic_time ();
      if (self->close_wait < link_close_time_left (self))
        link_close_arm (self, self->close_wait);
      stm32_link_io_shutdown_write (self->io);
      return;
    }
  /* The ACK usually comes with the reply, before the Disconnect: often
   * nothing is owed already. Otherwise look again every millisecond, within
   * the close timer's bound; the kernel tells no one when the board ACKs. */
  if (link_close_nothing_owed (self))
    stm32_link_end (self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, TRUE, NULL);
  else if (self->close_poll_timer == 0)
    self->close_poll_timer = g_timeout_add (STM32_CLOSE_ACK_POLL_MS, on_close_poll, self);
}

void
stm32_link_close_on_eof (Stm32Link *self)
{
  if (self->io->fin_sent)
    self->fin_delay = g_get_monotonic_time () - self->io->fin_sent_mono;
}

void
stm32_link_close_clear_timers (Stm32Link *self)
{
  g_clear_handle_id (&self->close_timer, g_source_remove);
  g_clear_handle_id (&self->close_poll_timer, g_source_remove);
}

void
stm32_link_close_record (Stm32Link *self, Stm32HistoryEntry *entry)
{
  Stm32CloseKind kind = self->close_kind;

  entry->close_kind = kind;
  entry->fin_delay = self->fin_delay;
  self->close_kind = STM32_CLOSE_KIND_NONE;
  self->fin_delay = -1;
  if (entry->reason == STM32_END_REASON_LOCAL && kind != STM32_CLOSE_KIND_NONE)
    stm32_close_learner_record (&self->close_learner, kind, entry->fin_delay);
  /* A refused connect is a board without a listener: rebooting, perhaps
   * with new firmware. A connection the board ended says the same. */
  else if (entry->reason == STM32_END_REASON_REFUSED ||
           (entry->connected != 0 && entry->reason != STM32_END_REASON_LOCAL))
    stm32_close_learner_board_changed (&self->close_learner);
  else
    return;
  link_close_notify (self);
}
