/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The footprint section: stm32d's wake-ups while nothing happens, and its
 * memory and fds before and after many Sends (they should stay flat). */
#include <math.h>

#include "bench.h"
#include "test-util.h"

/* Context switches per second over a quiet window of @ms. */
static gboolean
quiet_wakeups (GPid pid, guint ms, double *rate, GError **error)
{
  Stm32ProcessStat a, b;
  if (!stm32_test_read_process_stat (pid, &a, error))
    return FALSE;
  bench_run_for (ms);
  if (!stm32_test_read_process_stat (pid, &b, error))
    return FALSE;
  *rate = (double) (b.ctxt_switches - a.ctxt_switches) * 1000.0 / ms;
  return TRUE;
}

gboolean
bench_footprint (const BenchConfig *config, GError **error)
{
  guint window = config->smoke ? 1000 : 5000;
  guint frames = config->smoke ? 2000 : 1000000;
  guint max_s = config->smoke ? 5 : 120;
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, "--reply", "none", NULL);
  g_autoptr (BenchDaemon) d =
      bench_daemon_start (config, stm32_sim_get_port (sim), NULL, FALSE, error);
  if (!d)
    return FALSE;
  GPid pid = bench_daemon_get_pid (d);

  Stm32ProcessStat idle, quiet, half, full;
  double idle_rate, quiet_rate;
  if (!quiet_wakeups (pid, window, &idle_rate, error) ||
      !stm32_test_read_process_stat (pid, &idle, error))
    return FALSE;
  if (!stm32_client_link_connect_sync (d->link, NULL, error))
    return FALSE;
  if (!quiet_wakeups (pid, window, &quiet_rate, error) ||
      !stm32_test_read_process_stat (pid, &quiet, error))
    return FALSE;
  guint done1 = 0, done2 = 0;
  if (bench_send_pipelined (d->link, 64, frames / 2, max_s / 2, &done1, error) < 0 ||
      !stm32_test_read_process_stat (pid, &half, error) ||
      bench_send_pipelined (d->link, 64, frames / 2, max_s / 2, &done2, error) < 0 ||
      !stm32_test_read_process_stat (pid, &full, error))
    return FALSE;
  g_autofree char *note_w = g_strdup_printf ("over %u ms, voluntary + nonvoluntary", window);
  g_autofree char *note_h = g_strdup_printf ("baseline: after the first %u frames", done1);
  g_autofree char *name_f = g_strdup_printf ("RSS after %u 64 B Sends", done1 + done2);
  g_autofree char *name_d = g_strdup_printf ("open fds after %u 64 B Sends", done1 + done2);
  bench_report ("footprint", "ctxt switches/s, no link up", idle_rate, NAN, "1/s", note_w);
  bench_report ("footprint", "ctxt switches/s, connected, quiet", quiet_rate, NAN, "1/s", note_w);
  bench_report ("footprint", "RSS connected, quiet", quiet.rss_kib, idle.rss_kib, "KiB",
                "baseline: no link up");
  bench_report ("footprint", name_f, full.rss_kib, half.rss_kib, "KiB", note_h);
  bench_report ("footprint", "open fds connected, quiet", quiet.fds, idle.fds, "fds",
                "baseline: no link up");
  bench_report ("footprint", name_d, full.fds, quiet.fds, "fds", "baseline: before the frames");
  return TRUE;
}
