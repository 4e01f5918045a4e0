/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The latency section: one request and its reply at a time, through each
 * path (Transact, a transaction channel, Peer.Ping, AcquireStream) beside
 * the same request on a direct socket, and what stm32d spends per call. */
#include <math.h>
#include <string.h>

#include "bench.h"
#include "stm32-names.h"
#include "test-util.h"

/* One request and its reply on the path being measured. */
typedef gboolean (*RoundTrip) (gpointer path, GError **error);

/* @n round trips, each timed on its own, in ns. */
static GArray *
time_round_trips (RoundTrip round_trip, gpointer path, guint n, GError **error)
{
  g_autoptr (GArray) ns = g_array_sized_new (FALSE, FALSE, sizeof (gint64), n);
  for (guint i = 0; i < n; i++)
    {
      gint64 t0 = bench_now_ns ();
      if (!round_trip (path, error))
        return NULL;
      gint64 dt = bench_now_ns () - t0;
      g_array_append_val (ns, dt);
    }
  return g_steal_pointer (&ns);
}

/* Request/reply on a socket: "payload\n" out, a line back. */
typedef struct
{
  GSocket *sock;
  char *req;
  char *reply;
  gsize size;
} SocketPath;

static gboolean
socket_round_trip (gpointer path, GError **error)
{
  SocketPath *p = path;
  return bench_send_all (p->sock, p->req, p->size + 1, error) &&
         bench_recv_line (p->sock, p->reply, p->size + 2, error);
}

static GArray *
latency_socket (GSocket *sock, gsize size, guint n, GError **error)
{
  g_autofree char *req = g_malloc (size + 1);
  g_autofree char *reply = g_malloc (size + 2);
  memset (req, 'r', size);
  req[size] = '\n';
  SocketPath path = { sock, req, reply, size };
  return time_round_trips (socket_round_trip, &path, n, error);
}

/* A transaction of @size bytes, as a D-Bus call (@channel NULL) or on a
 * transaction channel (one socket round trip to stm32d instead). */
typedef struct
{
  Stm32ClientLink *link;
  Stm32ClientChannel *channel;
  GBytes *request;
} TransactPath;

static gboolean
transact_round_trip (gpointer path, GError **error)
{
  TransactPath *p = path;
  g_autoptr (GBytes) reply =
      p->channel ? stm32_client_channel_transact_sync (p->channel, p->request, 5000, NULL, error)
                 : stm32_client_link_transact_sync (p->link, p->request, 5000, NULL, error);
  return reply != NULL;
}

static GArray *
latency_transact (Stm32ClientLink *link, Stm32ClientChannel *channel, gsize size, guint n,
                  GError **error)
{
  g_autofree char *req = g_malloc (size);
  memset (req, 'r', size);
  g_autoptr (GBytes) request = g_bytes_new (req, size);
  TransactPath path = { link, channel, request };
  return time_round_trips (transact_round_trip, &path, n, error);
}

/* org.freedesktop.DBus.Peer.Ping to stm32d: the bus round trip alone, the
 * floor under any method call. */
static gboolean
ping_round_trip (gpointer bus, GError **error)
{
  g_autoptr (GVariant) r = g_dbus_connection_call_sync (
      bus, STM32_DBUS_NAME, STM32_DBUS_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL, NULL,
      G_DBUS_CALL_FLAGS_NONE, 5000, NULL, error);
  return r != NULL;
}

static GArray *
latency_ping (guint n, GError **error)
{
  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (!bus)
    return NULL;
  return time_round_trips (ping_round_trip, bus, n, error);
}

/* Where the time goes that is not CPU work: thread hand-offs. @what is the
 * call measured, "Transact 16 B" say. */
static void
report_daemon_cost (const char *what, const Stm32ProcessStat *before, const Stm32ProcessStat *after,
                    guint n)
{
  g_autofree char *cs = g_strdup_printf ("stm32d per %s: ctxt switches", what);
  g_autofree char *cpu = g_strdup_printf ("stm32d per %s: CPU", what);
  bench_report ("latency", cs, (double) (after->ctxt_switches - before->ctxt_switches) / n, NAN,
                "1", "all threads");
  bench_report ("latency", cpu, (after->cpu_s - before->cpu_s) * 1e6 / n, NAN, "us",
                "user + system, 10 ms ticks");
}

static void
report_latency (const char *what, gsize size, GArray *via, GArray *direct)
{
  double d50 = bench_percentile_us (direct, 0.5), d99 = bench_percentile_us (direct, 0.99);
  double v50 = bench_percentile_us (via, 0.5), v99 = bench_percentile_us (via, 0.99);
  g_autofree char *n50 = g_strdup_printf ("%s %zu B p50", what, size);
  g_autofree char *n99 = g_strdup_printf ("%s %zu B p99", what, size);
  g_autofree char *note = g_strdup_printf ("p99/p50 %.1f (n=%u)", v99 / v50, via->len);
  bench_report ("latency", n50, v50, d50, "us", NULL);
  bench_report ("latency", n99, v99, d99, "us", note);
}

/* @n transactions of @size bytes (on @channel, or as D-Bus calls), reported
 * against @direct_ns with what stm32d spent on them. */
static gboolean
measure_transact (BenchDaemon *d, Stm32ClientChannel *channel, gsize size, guint n,
                  GArray *direct_ns, GError **error)
{
  const char *what = channel ? "Transact channel" : "Transact";
  Stm32ProcessStat before, after;
  if (!stm32_test_read_process_stat (bench_daemon_get_pid (d), &before, error))
    return FALSE;
  g_autoptr (GArray) via = latency_transact (d->link, channel, size, n, error);
  if (!via || !stm32_test_read_process_stat (bench_daemon_get_pid (d), &after, error))
    return FALSE;
  report_latency (what, size, via, direct_ns);
  g_autofree char *call = g_strdup_printf ("%s %zu B", what, size);
  report_daemon_cost (call, &before, &after, n);
  return TRUE;
}

/* The direct figures for @size, the baseline for every path, after a short
 * warm-up of each path so the first connection's page faults and the bus's
 * first round trips are not counted; then Transact and the channel. */
static GArray *
measure_size (BenchDaemon *d, GSocket *direct, Stm32ClientChannel *channel, gsize size, guint n,
              GError **error)
{
  g_autoptr (GArray) w1 = latency_socket (direct, size, n / 10, error);
  g_autoptr (GArray) w2 = w1 ? latency_transact (d->link, NULL, size, n / 10, error) : NULL;
  g_autoptr (GArray) w3 = w2 ? latency_transact (d->link, channel, size, n / 10, error) : NULL;
  if (!w3)
    return NULL;
  g_autoptr (GArray) direct_ns = latency_socket (direct, size, n, error);
  if (!direct_ns || !measure_transact (d, NULL, size, n, direct_ns, error) ||
      !measure_transact (d, channel, size, n, direct_ns, error))
    return NULL;
  return g_steal_pointer (&direct_ns);
}

static gboolean
measure_ping (BenchDaemon *d, guint n, GArray *direct_16_ns, GError **error)
{
  Stm32ProcessStat before, after;
  if (!stm32_test_read_process_stat (bench_daemon_get_pid (d), &before, error))
    return FALSE;
  g_autoptr (GArray) ping = latency_ping (n, error);
  if (!ping || !stm32_test_read_process_stat (bench_daemon_get_pid (d), &after, error))
    return FALSE;
  report_daemon_cost ("Peer.Ping", &before, &after, n);
  bench_report ("latency", "D-Bus Peer.Ping p50 (bus floor)", bench_percentile_us (ping, 0.5),
                bench_percentile_us (direct_16_ns, 0.5), "us", "baseline: direct 16 B");
  return TRUE;
}

gboolean
bench_latency (const BenchConfig *config, GError **error)
{
  guint n = config->smoke ? 100 : 2000;
  const gsize sizes[] = { 16, 1024 };
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, NULL);
  g_autoptr (BenchDaemon) d =
      bench_daemon_start (config, stm32_sim_get_port (sim), NULL, TRUE, error);
  if (!d)
    return FALSE;
  g_autoptr (GSocket) direct = bench_direct_connect (stm32_sim_get_port (sim), error);
  if (!direct)
    return FALSE;
  g_autoptr (Stm32ClientChannel) channel =
      stm32_client_link_open_transact_channel_sync (d->link, NULL, error);
  if (!channel)
    return FALSE;

  /* Direct figures per size, the baseline for Transact, the channel and AcquireStream. */
  g_autoptr (GPtrArray) base = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      GArray *direct_ns = measure_size (d, direct, channel, sizes[i], n, error);
      if (!direct_ns)
        return FALSE;
      g_ptr_array_add (base, direct_ns);
    }
  /* AcquireStream takes the link: transactions, the channel's too, are Busy. */
  stm32_client_channel_close (channel);
  if (!measure_ping (d, n, base->pdata[0], error))
    return FALSE;

  g_autoptr (GSocket) stream = stm32_client_link_acquire_stream_sync (d->link, NULL, error);
  if (!stream)
    return FALSE;
  g_socket_set_timeout (stream, BENCH_IO_TIMEOUT_S);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr (GArray) w = latency_socket (stream, sizes[i], n / 10, error);
      g_autoptr (GArray) via = w ? latency_socket (stream, sizes[i], n, error) : NULL;
      if (!via)
        return FALSE;
      report_latency ("AcquireStream", sizes[i], via, base->pdata[i]);
    }
  return TRUE;
}
