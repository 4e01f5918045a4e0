/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-backoff.h"

#include "stm32-defaults.h"

void
stm32_backoff_init (Stm32Backoff *self, guint min_ms, guint max_ms, guint32 seed)
{
  self->min_ms = min_ms;
  self->max_ms = MAX (min_ms, max_ms);
  self->failures = 0;
  self->rand = g_rand_new_with_seed (seed);
}

void
stm32_backoff_clear (Stm32Backoff *self)
{
  g_clear_pointer (&self->rand, g_rand_free);
}

guint
stm32_backoff_next (Stm32Backoff *self)
{
  guint64 base = self->min_ms;

  /* Doubling stops at max, so the shift never overflows however long a board stays away. */
  for (guint i = 0; i < self->failures && base < self->max_ms; i++)
    base *= 2;
  base = MIN (base, self->max_ms);
  if (self->failures < G_MAXUINT)
    self->failures++;

  /* Jitter may push a large RetryMax past what a guint of ms holds. */
  return (guint) MIN (
      base * g_rand_double_range (self->rand, 1.0 - STM32_RETRY_JITTER, 1.0 + STM32_RETRY_JITTER),
      (double) G_MAXUINT);
}

void
stm32_backoff_reset (Stm32Backoff *self)
{
  self->failures = 0;
}
