/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "stm32-defaults.h"
#include "stm32-link-types.h"

G_BEGIN_DECLS

/*
 * CloseMode=auto: how a link's board closes, learned from its closes.
 *
 * A graceful close sends our FIN and waits for the board's. Firmware that
 * ignores EOF never sends one, so each close would cost the whole
 * CloseTimeout before the RST that frees the board's control block. After
 * STM32_CLOSE_LEARN_AFTER graceful closes in a row without a FIN the link
 * resets at once instead — as soon as the board acknowledged every byte and
 * no transaction waits for a reply, so nothing sent is lost. Every so often
 * (the 16th learned close, then doubling up to 256), and at once after the
 * board restarted or a connection ended some other way, a graceful close
 * checks again, so a fixed firmware is noticed. For a board that answers,
 * the FIN wait is a few times the slowest recent FIN delay, within
 * STM32_CLOSE_WAIT_FLOOR and CloseTimeout, so a hung board is reset sooner.
 *
 * Pure logic, no timers: the link asks what the next close is, does it, and
 * tells what happened.
 */
typedef struct
{
  Stm32CloseMode mode;
  guint close_timeout;
  guint no_fin_streak;  /* graceful closes in a row without the board's FIN */
  gboolean learned;     /* the board ignores EOF */
  guint learned_closes; /* learned resets since learning or the last re-check */
  guint recheck_every;
  gboolean recheck_now;                       /* the board may have changed */
  gint64 fin_delays[STM32_CLOSE_FIN_SAMPLES]; /* µs, the most recent ones */
  guint n_fin_delays;
  guint next_fin_delay;
} Stm32CloseLearner;

void stm32_close_learner_init (Stm32CloseLearner *self, Stm32CloseMode mode, guint close_timeout);
/* How the next close is done. */
Stm32CloseKind stm32_close_learner_next_kind (const Stm32CloseLearner *self);
/* The longest the next close waits, in ms: for the board's FIN (graceful
 * kinds), or for it to acknowledge what we sent (resets). */
guint stm32_close_learner_next_wait (const Stm32CloseLearner *self);
/* A close of @kind ended; @fin_delay_us: how long after our FIN the board's
 * came, or -1 if none did. */
void stm32_close_learner_record (Stm32CloseLearner *self, Stm32CloseKind kind, gint64 fin_delay_us);
/* The board restarted (a refused connect) or a connection ended other than
 * by our close: what was learned may be stale; the next close re-checks. */
void stm32_close_learner_board_changed (Stm32CloseLearner *self);
/* Why the next close is what it is, for people. */
char *stm32_close_learner_describe (const Stm32CloseLearner *self);

G_END_DECLS
