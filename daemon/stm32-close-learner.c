/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-close-learner.h"

void
stm32_close_learner_init (Stm32CloseLearner *self, Stm32CloseMode mode, guint close_timeout)
{
  *self = (Stm32CloseLearner){ .mode = mode,
                               .close_timeout = close_timeout,
                               .recheck_every = STM32_CLOSE_RECHECK_FIRST };
}

Stm32CloseKind
stm32_close_learner_next_kind (const Stm32CloseLearner *self)
{
  switch (self->mode)
    {
    case STM32_CLOSE_MODE_GRACEFUL:
      return STM32_CLOSE_KIND_GRACEFUL;
    case STM32_CLOSE_MODE_RESET:
      return STM32_CLOSE_KIND_RESET;
    case STM32_CLOSE_MODE_AUTO:
    default:
      break;
    }
  if (!self->learned)
    return STM32_CLOSE_KIND_GRACEFUL;
  if (self->recheck_now || self->learned_closes + 1 >= self->recheck_every)
    return STM32_CLOSE_KIND_RECHECK;
  return STM32_CLOSE_KIND_LEARNED_RESET;
}

guint
stm32_close_learner_next_wait (const Stm32CloseLearner *self)
{
  gint64 slowest = 0;
  guint64 wait_ms;

  /* A re-check gives a firmware that may have changed the whole timeout. */
  if (self->mode != STM32_CLOSE_MODE_AUTO ||
      stm32_close_learner_next_kind (self) != STM32_CLOSE_KIND_GRACEFUL || self->n_fin_delays == 0)
    return self->close_timeout;
  for (guint i = 0; i < self->n_fin_delays; i++)
    slowest = MAX (slowest, self->fin_delays[i]);
  wait_ms = ((guint64) slowest * STM32_CLOSE_WAIT_FACTOR + 999) / 1000;
  return (guint) MIN ((guint64) self->close_timeout, MAX (wait_ms, STM32_CLOSE_WAIT_FLOOR));
}

static void
learner_add_fin_delay (Stm32CloseLearner *self, gint64 fin_delay_us)
{
  self->fin_delays[self->next_fin_delay] = fin_delay_us;
  self->next_fin_delay = (self->next_fin_delay + 1) % STM32_CLOSE_FIN_SAMPLES;
  self->n_fin_delays = MIN (self->n_fin_delays + 1, STM32_CLOSE_FIN_SAMPLES);
}

void
stm32_close_learner_record (Stm32CloseLearner *self, Stm32CloseKind kind, gint64 fin_delay_us)
{
  gboolean fin = fin_delay_us >= 0;

  if (fin)
    learner_add_fin_delay (self, fin_delay_us);
  switch (kind)
    {
    case STM32_CLOSE_KIND_GRACEFUL:
    case STM32_CLOSE_KIND_RECHECK:
      if (fin)
        {
          self->no_fin_streak = 0;
          self->learned = FALSE;
          self->recheck_every = STM32_CLOSE_RECHECK_FIRST;
        }
      else if (self->learned)
        /* Still ignoring EOF: look less often. */
        self->recheck_every = MIN (self->recheck_every * 2, STM32_CLOSE_RECHECK_MAX);
      else if (++self->no_fin_streak >= STM32_CLOSE_LEARN_AFTER)
        self->learned = TRUE;
      self->learned_closes = 0;
      self->recheck_now = FALSE;
      break;
    case STM32_CLOSE_KIND_LEARNED_RESET:
      self->learned_closes++;
      break;
    case STM32_CLOSE_KIND_RESET:
    case STM32_CLOSE_KIND_NONE:
    default:
      break;
    }
}

void
stm32_close_learner_board_changed (Stm32CloseLearner *self)
{
  if (self->learned)
    self->recheck_now = TRUE;
  /* A streak that spans a restart is not one board's habit. */
  self->no_fin_streak = 0;
}

char *
stm32_close_learner_describe (const Stm32CloseLearner *self)
{
  switch (self->mode)
    {
    case STM32_CLOSE_MODE_GRACEFUL:
      return g_strdup ("CloseMode=graceful: FIN, then the board's FIN awaited up to CloseTimeout");
    case STM32_CLOSE_MODE_RESET:
      return g_strdup ("CloseMode=reset: RST once the board acknowledged everything sent");
    case STM32_CLOSE_MODE_AUTO:
    default:
      break;
    }
  switch (stm32_close_learner_next_kind (self))
    {
    case STM32_CLOSE_KIND_RECHECK:
      return g_strdup_printf (self->recheck_now
                                  ? "the board may have restarted: the next close checks "
                                    "gracefully whether it now answers our FIN"
                                  : "after %u learned resets the next close checks gracefully "
                                    "whether the board now answers our FIN",
                              self->learned_closes);
    case STM32_CLOSE_KIND_LEARNED_RESET:
      return g_strdup_printf ("the board answered none of %u closes in a row with a FIN (its "
                              "firmware ignores EOF): RST once it acknowledged everything sent; "
                              "re-check in %u closes",
                              STM32_CLOSE_LEARN_AFTER,
                              self->recheck_every - self->learned_closes - 1);
    case STM32_CLOSE_KIND_GRACEFUL:
    default:
      if (self->no_fin_streak > 0)
        return g_strdup_printf ("%u of the last closes got no FIN from the board; after %u in a "
                                "row the link resets instead of waiting",
                                self->no_fin_streak, STM32_CLOSE_LEARN_AFTER);
      if (self->n_fin_delays > 0)
        return g_strdup ("the board answers our FIN; the wait adapts to how fast it does");
      return g_strdup ("no close seen yet: FIN, then the board's FIN awaited up to CloseTimeout");
    }
}
