/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The queue section: many Transacts queued on one link at once, answered one
 * at a time by an echo board. What each costs, in wall time and in stm32d's
 * CPU, at a large queue against a queue a tenth of its size in the same run:
 * a ratio near 1 means the cost per transaction does not grow with the queue. */
#include "bench.h"
#include "stm32-names.h"
#include "test-util.h"

/* dbus-daemon's session config allows 50000 calls awaiting replies per
 * connection: the calls are spread over several connections. */
#define QUEUE_CONNECTIONS 4

typedef struct
{
  guint answered;
  guint failed;
  gboolean done;
  guint total;
} QueueRun;

static void
on_answered (GObject *source, GAsyncResult *result, gpointer user_data)
{
  QueueRun *run = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply =
      g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);

  run->failed += reply == NULL;
  run->done = ++run->answered == run->total;
}

/* Queues @n Transacts at once and waits for every answer; the wall time and
 * stm32d's CPU per transaction, in µs. */
static gboolean
queue_transacts (BenchDaemon *d, GDBusConnection **connections, guint n, double *wall_us,
                 double *cpu_us, GError **error)
{
  QueueRun run = { .total = n };
  Stm32ProcessStat before, after;
  gint64 t0;

  if (!stm32_test_read_process_stat (bench_daemon_get_pid (d), &before, error))
    return FALSE;
  t0 = bench_now_ns ();
  for (guint i = 0; i < n; i++)
    g_dbus_connection_call (
        connections[i % QUEUE_CONNECTIONS], STM32_DBUS_NAME,
        STM32_DBUS_LINK_PATH_PREFIX BENCH_LINK_NAME, STM32_DBUS_LINK_INTERFACE, "Transact",
        g_variant_new ("(@ayu)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, "queued", 6, 1),
                       (guint32) 600000),
        G_VARIANT_TYPE ("(ay)"), G_DBUS_CALL_FLAGS_NONE, G_MAXINT, NULL, on_answered, &run);
  if (!bench_wait_until (&run.done, 600000))
    {
      /* The calls in flight point at @run: nothing may return before they do. */
      g_error ("%u of %u queued transactions were still unanswered after 10 minutes",
               n - run.answered, n);
    }
  *wall_us = (bench_now_ns () - t0) / 1e3 / n;
  if (run.failed > 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%u of %u queued transactions failed",
                   run.failed, n);
      return FALSE;
    }
  if (!stm32_test_read_process_stat (bench_daemon_get_pid (d), &after, error))
    return FALSE;
  *cpu_us = (after.cpu_s - before.cpu_s) * 1e6 / n;
  return TRUE;
}

gboolean
bench_queue (const BenchConfig *config, GError **error)
{
  guint large = config->smoke ? 2000 : 100000, small = large / 10;
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, NULL);
  g_autoptr (BenchDaemon) d =
      bench_daemon_start (config, stm32_sim_get_port (sim), NULL, TRUE, error);
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, error);
  GDBusConnection *connections[QUEUE_CONNECTIONS] = { NULL };
  double wall_small, cpu_small, wall_large, cpu_large;
  gboolean ok = FALSE;

  if (!d || !address)
    return FALSE;
  for (guint i = 0; i < QUEUE_CONNECTIONS; i++)
    if ((connections[i] = g_dbus_connection_new_for_address_sync (
             address,
             G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                 G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
             NULL, NULL, error)) == NULL)
      goto out;
  if (!queue_transacts (d, connections, small, &wall_small, &cpu_small, error) ||
      !queue_transacts (d, connections, large, &wall_large, &cpu_large, error))
    goto out;
  {
    g_autofree char *name = g_strdup_printf ("Transact, %u queued, per transaction", large);
    g_autofree char *cpu = g_strdup_printf ("stm32d CPU, %u queued, per transaction", large);
    g_autofree char *note = g_strdup_printf ("baseline: %u queued", small);

    bench_report ("queue", name, wall_large, wall_small, "us", note);
    bench_report ("queue", cpu, cpu_large, cpu_small, "us", note);
  }
  ok = TRUE;
out:
  for (guint i = 0; i < QUEUE_CONNECTIONS; i++)
    g_clear_object (&connections[i]);
  return ok;
}
