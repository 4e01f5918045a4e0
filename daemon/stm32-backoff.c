/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-backoff.h"

#include "stm32-defaults.h"

void
stm32_backoff_init (Stm32Backoff *self, guint min_ms, guint max_ms, guint32 seed)
{
  self->min_ms = min_ms;
  self->max_ms = MAX (min_ms, max_ms);
  self->failures = 0;
  /* Never 0, where xorshift would stay. */
  self->rand_state = ((guint64) seed << 32) ^ G_GUINT64_CONSTANT (0x9e3779b97f4a7c15);
}

/* Uniform in [0, 1). */
static double
backoff_random (Stm32Backoff *self)
{
  self->rand_state ^= self->rand_state >> 12;
  self->rand_state ^= self->rand_state << 25;
  self->rand_state ^= self->rand_state >> 27;
  return (double) ((self->rand_state * G_GUINT64_CONSTANT (0x2545f4914f6cdd1d)) >> 11) /
         (double) (G_GUINT64_CONSTANT (1) << 53);
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
      base * (1.0 - STM32_RETRY_JITTER + 2 * STM32_RETRY_JITTER * backoff_random (self)),
      (double) G_MAXUINT);
}

void
stm32_backoff_reset (Stm32Backoff *self)
{
  self->failures = 0;
}
