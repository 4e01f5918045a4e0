/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fleet section: one stm32d with 1 to 4,096 links, each to its own board
 * (one stm32-sim with --boards): time until every link is connected, memory
 * and fds, stm32ctl's time to list them, wake-ups while nothing happens, and
 * how the reconnects spread when every board goes away and comes back. */
#include <math.h>
#include <signal.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bench.h"
#include "test-util.h"

#define FLEET_BUCKET_US (100 * 1000)

typedef struct
{
  const BenchConfig *config;
  guint n;
  Stm32Sim *sim;
  char *conf;
  Stm32Daemon *daemon;
  Stm32Client *client;
  GList *links; /* Stm32ClientLink, owned by the client */
} Fleet;

static void
fleet_free (Fleet *fleet)
{
  g_list_free (fleet->links);
  g_clear_object (&fleet->client);
  if (fleet->daemon != NULL)
    {
      stm32_daemon_send_signal (fleet->daemon, SIGTERM);
      (void) stm32_daemon_wait_exit (fleet->daemon);
      stm32_daemon_free (fleet->daemon);
    }
  if (fleet->sim != NULL)
    stm32_sim_stop (fleet->sim);
  if (fleet->conf != NULL)
    g_unlink (fleet->conf);
  g_free (fleet->conf);
  g_free (fleet);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Fleet, fleet_free)

static gboolean
fleet_write_config (Fleet *fleet, GError **error)
{
  g_autoptr (GString) text = g_string_new (NULL);
  int fd = g_file_open_tmp ("stm32-bench-fleet-XXXXXX.conf", &fleet->conf, error);

  if (fd < 0)
    return FALSE;
  close (fd);
  g_string_append_printf (text, "[Link b0]\nHost=127.0.0.1\nPort=%u\n",
                          stm32_sim_get_port (fleet->sim));
  for (guint i = 1; i < fleet->n; i++)
    {
      g_autoptr (JsonObject) listening = stm32_sim_wait_event (fleet->sim, "listening", 10000);

      g_string_append_printf (text, "[Link b%u]\nHost=127.0.0.1\nPort=%" G_GINT64_FORMAT "\n", i,
                              json_object_get_int_member (listening, "port"));
    }
  return g_file_set_contents (fleet->conf, text->str, -1, error);
}

/* Links connected (as the client last heard) by a connection made at or
 * after @since (µs since the epoch). */
static guint
fleet_count_connected (Fleet *fleet, gint64 since)
{
  guint n = 0;

  for (GList *l = fleet->links; l != NULL; l = l->next)
    n += g_strcmp0 (stm32_client_link_get_state (l->data), "connected") == 0 &&
         (gint64) stm32_client_link_get_connected_since (l->data) >= since;
  return n;
}

/* Runs the main context until every link is connected by a connection made
 * at or after @since; FALSE after @timeout_ms. */
static gboolean
fleet_wait_connected (Fleet *fleet, gint64 since, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (fleet_count_connected (fleet, since) < fleet->n && g_get_monotonic_time () < deadline)
    stm32_test_iterate (deadline);
  return fleet_count_connected (fleet, since) == fleet->n;
}

static int
compare_int64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

/* The latest ConnectedSince (stm32d's own clock, µs since the epoch) and the
 * most links that connected within one 100 ms window, from @since on. */
static void
fleet_connect_times (Fleet *fleet, gint64 since, gint64 *last, guint *peak)
{
  g_autoptr (GArray) keys = g_array_new (FALSE, FALSE, sizeof (gint64));

  *last = 0;
  *peak = 0;
  for (GList *l = fleet->links; l != NULL; l = l->next)
    {
      gint64 at = (gint64) stm32_client_link_get_connected_since (l->data);

      if (at < since)
        continue;
      *last = MAX (*last, at);
      g_array_append_val (keys, at);
    }
  /* Sliding: the densest 100 ms anywhere, not just on bucket edges. */
  g_array_sort (keys, compare_int64);
  for (guint i = 0, j = 0; j < keys->len; j++)
    {
      while (g_array_index (keys, gint64, j) - g_array_index (keys, gint64, i) >= FLEET_BUCKET_US)
        i++;
      *peak = MAX (*peak, j - i + 1);
    }
}

/* Wall time of `stm32ctl ARGS…`, which must succeed; its output is dropped. */
static gboolean
fleet_time_ctl (Fleet *fleet, double *ms, GError **error, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) ctl = NULL;
  va_list args;
  gint64 start;

  g_ptr_array_add (argv, (gpointer) fleet->config->ctl);
  g_ptr_array_add (argv, "--session");
  va_start (args, error);
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  start = bench_now_ns ();
  ctl = g_subprocess_newv ((const char *const *) argv->pdata, G_SUBPROCESS_FLAGS_STDOUT_SILENCE,
                           error);
  if (ctl == NULL || !g_subprocess_wait_check (ctl, NULL, error))
    return FALSE;
  *ms = (double) (bench_now_ns () - start) / 1e6;
  return TRUE;
}

static Fleet *
fleet_start (const BenchConfig *config, guint n, gint64 *started, GError **error)
{
  g_autoptr (Fleet) fleet = g_new0 (Fleet, 1);
  g_autofree char *boards = g_strdup_printf ("%u", n);
  const char *argv[] = { config->daemon, "--session", "--config", NULL, NULL };

  fleet->config = config;
  fleet->n = n;
  fleet->sim = bench_sim_start (config, "--boards", boards, "--slots", "0", NULL);
  if (!fleet_write_config (fleet, error))
    return NULL;
  argv[3] = fleet->conf;
  *started = g_get_real_time ();
  fleet->daemon = stm32_daemon_spawn (argv, G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  fleet->client = stm32_client_new_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (fleet->client == NULL)
    return NULL;
  fleet->links = stm32_client_get_links (fleet->client);
  if (g_list_length (fleet->links) != n)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "stm32d has %u links, not %u",
                   g_list_length (fleet->links), n);
      return NULL;
    }
  return g_steal_pointer (&fleet);
}

/* Every board resets its connection and refuses for @refuse_ms, as a rack
 * that is power-cycled; returns when every link is back. */
static gboolean
fleet_power_cycle (Fleet *fleet, guint refuse_ms, guint *peak, double *all_back_ms, GError **error)
{
  g_autofree char *refuse = g_strdup_printf ("refuse %u", refuse_ms);
  gint64 cut, last;

  cut = g_get_real_time ();
  stm32_sim_command (fleet->sim, "restart");
  /* Refusing from now on: no link retries within 200 ms of the reset. */
  if (refuse_ms > 0)
    stm32_sim_command (fleet->sim, refuse);
  /* Every link notices the reset, then waits for the boards. */
  if (!fleet_wait_connected (fleet, cut, 60000 + refuse_ms))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "%u of %u links reconnected within %u s", fleet_count_connected (fleet, cut),
                   fleet->n, 60 + refuse_ms / 1000);
      return FALSE;
    }
  fleet_connect_times (fleet, cut, &last, peak);
  *all_back_ms = (double) (last - cut) / 1000.0;
  return TRUE;
}

static gboolean
bench_fleet_size (const BenchConfig *config, guint n, double rss_one, double *rss_out,
                  GError **error)
{
  guint window = config->smoke ? 300 : 5000;
  guint refuse_ms = config->smoke ? 500 : 3000;
  g_autoptr (Fleet) fleet = NULL;
  g_autofree char *size = g_strdup_printf ("%u link(s)", n);
  g_autofree char *note_w = g_strdup_printf ("%s, over %u ms, all threads", size, window);
  g_autofree char *name = NULL;
  g_autofree char *note = NULL;
  Stm32ProcessStat a, b;
  gint64 started, last;
  guint start_peak, restart_peak, refuse_peak;
  double ms_links, ms_status, back_ms, refuse_back_ms;
  GPid pid;

  fleet = fleet_start (config, n, &started, error);
  if (fleet == NULL)
    return FALSE;
  if (!fleet_wait_connected (fleet, started, 60000))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%u of %u links connected in 60 s",
                   fleet_count_connected (fleet, started), n);
      return FALSE;
    }
  fleet_connect_times (fleet, started, &last, &start_peak);
  pid = stm32_daemon_get_pid (fleet->daemon);
  if (!stm32_test_read_process_stat (pid, &a, error))
    return FALSE;
  bench_run_for (window);
  if (!stm32_test_read_process_stat (pid, &b, error))
    return FALSE;
  if (!fleet_time_ctl (fleet, &ms_links, error, "links", NULL) ||
      !fleet_time_ctl (fleet, &ms_status, error, "-l", "b0", "status", "--json", NULL))
    return FALSE;

  bench_report ("fleet", (name = g_strdup_printf ("%s: all connected after", size)),
                (double) (last - started) / 1000.0, NAN, "ms",
                "from spawning stm32d to the last link's ConnectedSince");
  g_clear_pointer (&name, g_free);
  bench_report ("fleet", (name = g_strdup_printf ("%s: RSS", size)), b.rss_kib, NAN, "KiB",
                "all connected, quiet");
  g_clear_pointer (&name, g_free);
  *rss_out = b.rss_kib;
  if (n > 1 && !isnan (rss_one))
    {
      bench_report ("fleet", (name = g_strdup_printf ("%s: RSS per link", size)),
                    (b.rss_kib - rss_one) / (n - 1), NAN, "KiB",
                    "above the 1-link RSS, divided by the links added");
      g_clear_pointer (&name, g_free);
    }
  bench_report ("fleet", (name = g_strdup_printf ("%s: open fds", size)), b.fds, NAN, "fds",
                "all connected");
  g_clear_pointer (&name, g_free);
  bench_report ("fleet", (name = g_strdup_printf ("%s: ctxt switches/s, quiet", size)),
                (double) (b.ctxt_switches - a.ctxt_switches) * 1000.0 / window, NAN, "1/s", note_w);
  g_clear_pointer (&name, g_free);
  bench_report ("fleet", (name = g_strdup_printf ("%s: stm32ctl links", size)), ms_links, NAN, "ms",
                "wall time of the command");
  g_clear_pointer (&name, g_free);
  bench_report ("fleet", (name = g_strdup_printf ("%s: stm32ctl -l b0 status --json", size)),
                ms_status, NAN, "ms", "wall time of the command");
  g_clear_pointer (&name, g_free);
  bench_report ("fleet", (name = g_strdup_printf ("%s: start, peak connects / 100 ms", size)),
                start_peak, NAN, "", "densest 100 ms of ConnectedSince after the start");
  g_clear_pointer (&name, g_free);

  /* Every board resets at once and is back at once: each link's first
   * retry comes RetryMin (250 ms) +-20 % later, 200 to 300 ms. */
  if (!fleet_power_cycle (fleet, 0, &restart_peak, &back_ms, error))
    return FALSE;
  note = g_strdup_printf ("all back after %.0f ms; first retry RetryMin 250 ms +-20 %%: 200-300 ms",
                          back_ms);
  bench_report ("fleet",
                (name = g_strdup_printf ("%s: boards restart, peak connects / 100 ms", size)),
                restart_peak, NAN, "", note);
  g_clear_pointer (&name, g_free);
  g_clear_pointer (&note, g_free);

  /* The boards stay away for a while: each link's backoff doubles on every
   * refused attempt, each with its own jitter, so they come back spread. */
  if (!fleet_power_cycle (fleet, refuse_ms, &refuse_peak, &refuse_back_ms, error))
    return FALSE;
  note = g_strdup_printf ("refusing for %u ms; all back %.0f ms after the reset", refuse_ms,
                          refuse_back_ms);
  bench_report ("fleet", (name = g_strdup_printf ("%s: power cycle, peak connects / 100 ms", size)),
                refuse_peak, NAN, "", note);
  return TRUE;
}

gboolean
bench_fleet (const BenchConfig *config, GError **error)
{
  static const guint full[] = { 1, 256, 1024, 4096 };
  static const guint smoke[] = { 1, 64 };
  const guint *sizes = config->smoke ? smoke : full;
  guint n_sizes = config->smoke ? G_N_ELEMENTS (smoke) : G_N_ELEMENTS (full);
  double rss_one = NAN, rss;

  for (guint i = 0; i < n_sizes; i++)
    {
      if (!bench_fleet_size (config, sizes[i], rss_one, &rss, error))
        return FALSE;
      if (sizes[i] == 1)
        rss_one = rss;
    }
  return TRUE;
}
