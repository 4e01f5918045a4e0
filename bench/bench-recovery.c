/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The recovery section: how soon stm32d is connected again after the board
 * reboots, and how soon it notices hung firmware, against the budgets its
 * settings give. */
#include <math.h>

#include "bench.h"

/* A heartbeat keeps an idle but healthy board talking, so IdleTimeout only
 * fires when the board goes silent. */
#define IDLE_MS 1000

/* The board reboots @rounds times; reports the median and the longest time
 * from its listener reopening to the link's "connected". */
static gboolean
measure_reboots (Stm32Sim *sim, Stm32ClientLink *link, guint rounds, GError **error)
{
  g_autoptr (GArray) back = g_array_new (FALSE, FALSE, sizeof (gint64));
  for (guint i = 0; i < rounds; i++)
    {
      /* Stay up past BusyWindow (a reset sooner counts as a full board and
       * waits BusyBackoff) and RetryResetAfter, so every round starts the
       * backoff from RetryMin. */
      bench_run_for (1100);
      /* The board reboots: its listener is gone for 500 ms, its connections reset. */
      stm32_sim_command (sim, "refuse 500");
      stm32_sim_command (sim, "rst-all");
      stm32_sim_expect (sim, "listener-open", BENCH_WAIT_MS);
      gint64 t_open = stm32_sim_last_event_time (sim, "listener-open") * 1000;
      gint64 t_up = bench_link_wait_state (link, "connected", BENCH_WAIT_MS);
      if (!t_up)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the link did not come back");
          return FALSE;
        }
      gint64 dt = MAX (t_up - t_open, 0);
      g_array_append_val (back, dt);
    }
  g_autofree char *note =
      g_strdup_printf ("max %.0f ms over %u restarts; RetryMin 250 ms, +/-20 %% jitter",
                       bench_percentile_us (back, 1.0) / 1000, rounds);
  bench_report ("recovery", "board back -> connected (median)",
                bench_percentile_us (back, 0.5) / 1000, NAN, "ms", note);
  return TRUE;
}

/* Hung firmware: the kernel still ACKs, only IdleTimeout can notice. */
static gboolean
measure_blackhole (Stm32Sim *sim, Stm32ClientLink *link, GError **error)
{
  stm32_sim_command (sim, "blackhole on");
  gint64 t_silent = stm32_sim_last_event_time (sim, "ok") * 1000;
  gint64 t_noticed = bench_link_wait_state (link, "!connected", IDLE_MS * 5);
  if (!t_noticed)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "a blackholed board went unnoticed");
      return FALSE;
    }
  bench_report ("recovery", "blackhole noticed vs IdleTimeout", (t_noticed - t_silent) / 1e6,
                IDLE_MS, "ms", "budget = IdleTimeout (heartbeat 200 ms keeps a healthy link busy)");
  return TRUE;
}

gboolean
bench_recovery (const BenchConfig *config, GError **error)
{
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, NULL);
  g_autofree char *conf = g_strdup_printf ("IdleTimeout=%u\nHeartbeat=ping\nHeartbeatInterval=200\n"
                                           "HeartbeatTimeout=10000\nRetryResetAfter=1000\n",
                                           IDLE_MS);
  g_autoptr (BenchDaemon) d =
      bench_daemon_start (config, stm32_sim_get_port (sim), conf, TRUE, error);
  if (!d)
    return FALSE;
  return measure_reboots (sim, d->link, config->smoke ? 1 : 5, error) &&
         measure_blackhole (sim, d->link, error);
}
