/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CloseMode=auto's decisions, close by close: when a board is taken for
 * firmware that ignores EOF, when it is checked again, and how long a close
 * waits for a board that answers.
 */
#include <string.h>

#include "stm32-close-learner.h"

#define TIMEOUT 1000
#define NO_FIN (-1)

static void
assert_next (const Stm32CloseLearner *learner, Stm32CloseKind kind, guint wait)
{
  g_assert_cmpint (stm32_close_learner_next_kind (learner), ==, kind);
  g_assert_cmpuint (stm32_close_learner_next_wait (learner), ==, wait);
}

/* Closes as the learner asks, the board answering none, until it has learned. */
static void
learn_no_fin (Stm32CloseLearner *learner)
{
  for (guint i = 0; i < STM32_CLOSE_LEARN_AFTER; i++)
    {
      g_assert_cmpint (stm32_close_learner_next_kind (learner), ==, STM32_CLOSE_KIND_GRACEFUL);
      stm32_close_learner_record (learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
    }
}

static void
test_learns_after_three (void)
{
  Stm32CloseLearner learner;
  g_autofree char *why = NULL;

  stm32_close_learner_init (&learner, STM32_CLOSE_MODE_AUTO, TIMEOUT);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, TIMEOUT);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  /* A FIN in between: the streak starts over. */
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, 2000);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_GRACEFUL);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_GRACEFUL);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  assert_next (&learner, STM32_CLOSE_KIND_LEARNED_RESET, TIMEOUT);
  why = stm32_close_learner_describe (&learner);
  g_assert_nonnull (strstr (why, "ignores EOF"));
}

static void
test_recheck_schedule (void)
{
  Stm32CloseLearner learner;
  guint interval = STM32_CLOSE_RECHECK_FIRST;

  stm32_close_learner_init (&learner, STM32_CLOSE_MODE_AUTO, TIMEOUT);
  learn_no_fin (&learner);
  /* 16, 32, … 256, 256: the n-th learned close re-checks, and each re-check
   * that still sees no FIN doubles the interval. */
  for (guint round = 0; round < 6; round++)
    {
      for (guint i = 1; i < interval; i++)
        {
          assert_next (&learner, STM32_CLOSE_KIND_LEARNED_RESET, TIMEOUT);
          stm32_close_learner_record (&learner, STM32_CLOSE_KIND_LEARNED_RESET, NO_FIN);
        }
      assert_next (&learner, STM32_CLOSE_KIND_RECHECK, TIMEOUT);
      stm32_close_learner_record (&learner, STM32_CLOSE_KIND_RECHECK, NO_FIN);
      interval = MIN (interval * 2, STM32_CLOSE_RECHECK_MAX);
    }
  /* A re-check answered: graceful again, and learning starts over. */
  for (guint i = 1; i < interval; i++)
    stm32_close_learner_record (&learner, STM32_CLOSE_KIND_LEARNED_RESET, NO_FIN);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_RECHECK);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_RECHECK, 3000);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, STM32_CLOSE_WAIT_FLOOR);
  for (guint i = 0; i < STM32_CLOSE_LEARN_AFTER; i++)
    stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_LEARNED_RESET);
  /* Back to the first interval. */
  for (guint i = 1; i < STM32_CLOSE_RECHECK_FIRST; i++)
    stm32_close_learner_record (&learner, STM32_CLOSE_KIND_LEARNED_RESET, NO_FIN);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_RECHECK);
}

static void
test_board_changed (void)
{
  Stm32CloseLearner learner;

  stm32_close_learner_init (&learner, STM32_CLOSE_MODE_AUTO, TIMEOUT);
  /* Before anything was learned, a restart only breaks the streak. */
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  stm32_close_learner_board_changed (&learner);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, NO_FIN);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_GRACEFUL);
  stm32_close_learner_board_changed (&learner);

  learn_no_fin (&learner);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_LEARNED_RESET, NO_FIN);
  stm32_close_learner_board_changed (&learner);
  assert_next (&learner, STM32_CLOSE_KIND_RECHECK, TIMEOUT);
  /* Still no FIN: learned resets again, and the next re-check later. */
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_RECHECK, NO_FIN);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_LEARNED_RESET);
  stm32_close_learner_board_changed (&learner);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_RECHECK, 500);
  g_assert_cmpint (stm32_close_learner_next_kind (&learner), ==, STM32_CLOSE_KIND_GRACEFUL);
}

static void
test_adaptive_wait (void)
{
  Stm32CloseLearner learner;

  stm32_close_learner_init (&learner, STM32_CLOSE_MODE_AUTO, TIMEOUT);
  /* Fast answers: the floor. */
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, 300);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, STM32_CLOSE_WAIT_FLOOR);
  /* 4 × the slowest of the last 8. */
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, 100 * 1000);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, 400);
  for (guint i = 0; i < STM32_CLOSE_FIN_SAMPLES - 1; i++)
    stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, 80 * 1000);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, 400);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, 80 * 1000);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, 320);
  /* Never above CloseTimeout. */
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, 900 * 1000);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, TIMEOUT);
  /* A CloseTimeout below the floor wins too. */
  stm32_close_learner_init (&learner, STM32_CLOSE_MODE_AUTO, 10);
  stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, 100);
  assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, 10);
}

static void
test_fixed_modes (void)
{
  Stm32CloseLearner learner;

  stm32_close_learner_init (&learner, STM32_CLOSE_MODE_GRACEFUL, TIMEOUT);
  for (guint i = 0; i < 10; i++)
    {
      assert_next (&learner, STM32_CLOSE_KIND_GRACEFUL, TIMEOUT);
      stm32_close_learner_record (&learner, STM32_CLOSE_KIND_GRACEFUL, i % 2 ? NO_FIN : 100);
    }
  stm32_close_learner_init (&learner, STM32_CLOSE_MODE_RESET, TIMEOUT);
  for (guint i = 0; i < 10; i++)
    {
      assert_next (&learner, STM32_CLOSE_KIND_RESET, TIMEOUT);
      stm32_close_learner_record (&learner, STM32_CLOSE_KIND_RESET, NO_FIN);
      stm32_close_learner_board_changed (&learner);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/close-learner/learns-after-three", test_learns_after_three);
  g_test_add_func ("/close-learner/recheck-schedule", test_recheck_schedule);
  g_test_add_func ("/close-learner/board-changed", test_board_changed);
  g_test_add_func ("/close-learner/adaptive-wait", test_adaptive_wait);
  g_test_add_func ("/close-learner/fixed-modes", test_fixed_modes);
  return g_test_run ();
}
