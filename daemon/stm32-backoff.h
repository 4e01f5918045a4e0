/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Exponential reconnect backoff with ±STM32_RETRY_JITTER jitter, so a lab full
 * of PCs that lost the same board never reconnects in lockstep. */
typedef struct
{
  guint min_ms;
  guint max_ms;
  guint failures; /* consecutive failures since the last reset */
  /* xorshift64* state: a GRand (2.5 KiB of Mersenne Twister) per link was a
   * tenth of a quiet link's memory, for a jitter that needs no such quality. */
  guint64 rand_state;
} Stm32Backoff;

void stm32_backoff_init (Stm32Backoff *self, guint min_ms, guint max_ms, guint32 seed);

/* Delay before the next attempt; each call counts one more failure. The
 * un-jittered delay is min × 2^failures, capped at max; jitter never leaves
 * [min × 0.8, max × 1.2]. */
guint stm32_backoff_next (Stm32Backoff *self);

/* Back to min: after a healthy connection or a change of the PC's network. */
void stm32_backoff_reset (Stm32Backoff *self);

G_END_DECLS
