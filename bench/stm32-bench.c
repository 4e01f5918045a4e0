/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* stm32-bench: what going through stm32d costs compared with a direct socket
 * to the same board (stm32-sim on loopback). Each figure is printed beside a
 * baseline measured in the same run, and the ratio. This file parses the
 * options and runs the sections (bench-*.c).
 *
 * Run on a private session bus (bench/run.sh does that); every section starts
 * its own simulator(s) and its own stm32d, so sections do not disturb each
 * other. */
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "bench.h"

typedef struct
{
  const char *name;
  BenchSection run;
} Section;

static const Section sections[] = {
  { "latency", bench_latency },   { "throughput", bench_throughput }, { "cycle", bench_cycles },
  { "recovery", bench_recovery }, { "footprint", bench_footprint },   { "queue", bench_queue },
  { "config", bench_config },     { "fleet", bench_fleet },           { "flood", bench_flood },
};

static int
run_sections (const BenchConfig *config, const char *only)
{
  int status = 0;
  for (guint i = 0; i < G_N_ELEMENTS (sections); i++)
    {
      g_autoptr (GError) error = NULL;
      if (only && g_strcmp0 (only, sections[i].name) != 0)
        continue;
      if (!sections[i].run (config, &error))
        {
          g_printerr ("stm32-bench: %s: %s\n", sections[i].name, error->message);
          status = 1;
        }
    }
  return status;
}

int
main (int argc, char **argv)
{
  g_autofree char *opt_sim = NULL;
  g_autofree char *opt_daemon = NULL;
  g_autofree char *opt_ctl = NULL;
  g_autofree char *opt_only = NULL;
  g_autofree char *opt_flood_reader = NULL;
  g_autofree char *opt_flood_listener = NULL;
  gboolean opt_smoke = FALSE;
  gboolean opt_json = FALSE;
  int opt_board_cpu = -1;
  const GOptionEntry entries[] = {
    { "sim", 0, 0, G_OPTION_ARG_FILENAME, &opt_sim, "The stm32-sim binary", "PATH" },
    { "daemon", 0, 0, G_OPTION_ARG_FILENAME, &opt_daemon, "The stm32d binary", "PATH" },
    { "ctl", 0, 0, G_OPTION_ARG_FILENAME, &opt_ctl, "The stm32ctl binary (the fleet section)",
      "PATH" },
    { "smoke", 0, 0, G_OPTION_ARG_NONE, &opt_smoke, "Tiny sizes: does it all work", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "One JSON object per figure", NULL },
    { "only", 0, 0, G_OPTION_ARG_STRING, &opt_only,
      "One section: latency, throughput, cycle, recovery, footprint, queue, config, fleet, "
      "flood",
      "SECTION" },
    { "flood-reader", 0, 0, G_OPTION_ARG_FILENAME, &opt_flood_reader,
      "The flood section's direct client (stm32-bench-flood-reader)", "PATH" },
    { "flood-listener", 0, 0, G_OPTION_ARG_FILENAME, &opt_flood_listener,
      "The flood section's Received listener (tests/flood-listener)", "PATH" },
    { "board-cpu", 0, 0, G_OPTION_ARG_INT, &opt_board_cpu,
      "Run the simulator on CPU N alone, as a board is another machine (run.sh picks the last "
      "CPU and keeps everything else off it)",
      "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("— stm32d against a direct socket");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("stm32-bench: error: %s\n", error->message);
      return 2;
    }
  if (!opt_sim || !opt_daemon || !opt_ctl)
    {
      g_printerr ("stm32-bench: error: --sim, --daemon and --ctl are required\n");
      return 2;
    }
  if (opt_board_cpu < -1 || opt_board_cpu >= CPU_SETSIZE ||
      opt_board_cpu >= sysconf (_SC_NPROCESSORS_ONLN))
    {
      g_printerr ("stm32-bench: error: --board-cpu must be one of this machine's CPUs "
                  "(0-%ld), not %d\n",
                  sysconf (_SC_NPROCESSORS_ONLN) - 1, opt_board_cpu);
      return 2;
    }
  if (!g_getenv ("DBUS_SESSION_BUS_ADDRESS"))
    {
      g_printerr ("stm32-bench: error: needs a private session bus (run bench/run.sh)\n");
      return 2;
    }
  /* A simulator that already exited must not kill us when we write to its stdin. */
  signal (SIGPIPE, SIG_IGN);
  const BenchConfig config = { opt_sim,       opt_daemon,       opt_ctl,           opt_smoke,
                               opt_board_cpu, opt_flood_reader, opt_flood_listener };
  int status = run_sections (&config, opt_only);
  bench_report_print (opt_json);
  return status;
}
