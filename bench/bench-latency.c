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

/* One path's samples, gathered over the rounds, with what stm32d spent on them. */
typedef struct
{
  GArray *ns;
  guint64 ctxt_switches;
  double cpu_s;
} Samples;

static void
samples_clear (Samples *s)
{
  g_clear_pointer (&s->ns, g_array_unref);
}

/* Appends @n round trips of @round_trip to @into, with stm32d's cost (@daemon_pid > 0). */
static gboolean
sample (Samples *into, RoundTrip round_trip, gpointer path, guint n, GPid daemon_pid,
        GError **error)
{
  Stm32ProcessStat before = { 0 }, after = { 0 };
  if (daemon_pid > 0 && !stm32_test_read_process_stat (daemon_pid, &before, error))
    return FALSE;
  g_autoptr (GArray) ns = time_round_trips (round_trip, path, n, error);
  if (!ns || (daemon_pid > 0 && !stm32_test_read_process_stat (daemon_pid, &after, error)))
    return FALSE;
  if (!into->ns)
    into->ns = g_array_sized_new (FALSE, FALSE, sizeof (gint64), n);
  g_array_append_vals (into->ns, ns->data, ns->len);
  into->ctxt_switches += after.ctxt_switches - before.ctxt_switches;
  into->cpu_s += after.cpu_s - before.cpu_s;
  return TRUE;
}

/* Where the time goes that is not CPU work: thread hand-offs. @what is the
 * call measured, "Transact 16 B" say. */
static void
report_daemon_cost (const char *what, const Samples *s)
{
  g_autofree char *cs = g_strdup_printf ("stm32d per %s: ctxt switches", what);
  g_autofree char *cpu = g_strdup_printf ("stm32d per %s: CPU", what);
  bench_report ("latency", cs, (double) s->ctxt_switches / s->ns->len, NAN, "1", "all threads");
  bench_report ("latency", cpu, s->cpu_s * 1e6 / s->ns->len, NAN, "us",
                "user + system, 10 ms ticks");
}

/* The baselines of one size: a direct socket, and the socat relay (ns NULL
 * without one). */
typedef struct
{
  Samples direct;
  Samples relay;
} Baselines;

static double
percentile_or_nan (const Samples *s, double p)
{
  return s->ns ? bench_percentile_us (s->ns, p) : NAN;
}

static void
report_latency (const char *what, gsize size, const Samples *via, const Baselines *base)
{
  double v50 = bench_percentile_us (via->ns, 0.5), v99 = bench_percentile_us (via->ns, 0.99);
  g_autofree char *n50 = g_strdup_printf ("%s %zu B p50", what, size);
  g_autofree char *n99 = g_strdup_printf ("%s %zu B p99", what, size);
  g_autofree char *note = g_strdup_printf ("p99/p50 %.1f (n=%u)", v99 / v50, via->ns->len);
  bench_report_with_relay ("latency", n50, v50, bench_percentile_us (base->direct.ns, 0.5),
                           percentile_or_nan (&base->relay, 0.5), "us", NULL);
  bench_report_with_relay ("latency", n99, v99, bench_percentile_us (base->direct.ns, 0.99),
                           percentile_or_nan (&base->relay, 0.99), "us", note);
}

static void
report_size (gsize size, const Baselines *base, const Samples *via_method,
             const Samples *via_channel)
{
  if (base->relay.ns)
    {
      g_autofree char *n50 = g_strdup_printf ("socat relay %zu B p50", size);
      g_autofree char *n99 = g_strdup_printf ("socat relay %zu B p99", size);
      bench_report ("latency", n50, bench_percentile_us (base->relay.ns, 0.5),
                    bench_percentile_us (base->direct.ns, 0.5), "us",
                    "socat TCP4-LISTEN:0,fork,nodelay TCP4:board,nodelay");
      bench_report ("latency", n99, bench_percentile_us (base->relay.ns, 0.99),
                    bench_percentile_us (base->direct.ns, 0.99), "us", NULL);
    }
  g_autofree char *method_what = g_strdup_printf ("Transact %zu B", size);
  g_autofree char *channel_what = g_strdup_printf ("Transact channel %zu B", size);
  report_latency ("Transact", size, via_method, base);
  report_daemon_cost (method_what, via_method);
  report_latency ("Transact channel", size, via_channel, base);
  report_daemon_cost (channel_what, via_channel);
}


/* The request/reply paths to one board, measured in turns. */
typedef struct
{
  BenchDaemon *daemon;
  GSocket *direct;
  GSocket *relay; /* NULL without socat */
  Stm32ClientChannel *channel;
} Paths;

/* The machine is shared and its load drifts: each path's samples are taken in
 * ROUNDS turns, one path after the other, so that every path sees the same
 * moments and the ratios of one run hold. Each path is warmed up first (the
 * first connection's page faults, the bus's first round trips). */
#define ROUNDS 8

static gboolean
measure_size (Paths *p, gsize size, guint n, Baselines *base, GError **error)
{
  g_autofree char *req = g_malloc (size + 1);
  g_autofree char *reply = g_malloc (size + 2);
  memset (req, 'r', size);
  req[size] = '\n';
  g_autoptr (GBytes) request = g_bytes_new (req, size);
  SocketPath direct = { p->direct, req, reply, size };
  SocketPath relay = { p->relay, req, reply, size };
  TransactPath method = { p->daemon->link, NULL, request };
  TransactPath channel = { p->daemon->link, p->channel, request };
  GPid pid = bench_daemon_get_pid (p->daemon);
  Samples warm = { 0 }, via_method = { 0 }, via_channel = { 0 };
  const struct
  {
    RoundTrip round_trip;
    gpointer path;
    GPid daemon_pid; /* whose cost is counted, or 0 */
    Samples *into;
  } turns[] = {
    { socket_round_trip, &direct, 0, &base->direct },
    { socket_round_trip, p->relay ? &relay : NULL, 0, &base->relay },
    { transact_round_trip, &method, pid, &via_method },
    { transact_round_trip, &channel, pid, &via_channel },
  };
  gboolean ok = TRUE;

  /* Round 0 is the warm-up. */
  for (guint r = 0; ok && r <= ROUNDS; r++)
    for (guint t = 0; ok && t < G_N_ELEMENTS (turns); t++)
      ok = !turns[t].path ||
           sample (r == 0 ? &warm : turns[t].into, turns[t].round_trip, turns[t].path,
                   r == 0 ? n / 10 : n / ROUNDS, turns[t].daemon_pid, error);
  if (ok)
    report_size (size, base, &via_method, &via_channel);
  samples_clear (&warm);
  samples_clear (&via_method);
  samples_clear (&via_channel);
  return ok;
}
static gboolean
measure_ping (BenchDaemon *d, guint n, const Baselines *base_16, GError **error)
{
  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (!bus)
    return FALSE;
  Samples ping = { 0 };
  if (!sample (&ping, ping_round_trip, bus, n, bench_daemon_get_pid (d), error))
    return FALSE;
  report_daemon_cost ("Peer.Ping", &ping);
  bench_report_with_relay ("latency", "D-Bus Peer.Ping p50 (bus floor)",
                           bench_percentile_us (ping.ns, 0.5),
                           bench_percentile_us (base_16->direct.ns, 0.5),
                           percentile_or_nan (&base_16->relay, 0.5), "us", "baseline: 16 B");
  samples_clear (&ping);
  return TRUE;
}

static void
baselines_free (Baselines *b)
{
  samples_clear (&b->direct);
  samples_clear (&b->relay);
  g_free (b);
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
  g_autoptr (GError) relay_error = NULL;
  g_autoptr (BenchRelay) relay = bench_relay_start_or_skip (stm32_sim_get_port (sim), &relay_error);
  if (relay_error)
    {
      g_propagate_error (error, g_steal_pointer (&relay_error));
      return FALSE;
    }
  g_autoptr (GSocket) direct = bench_direct_connect (stm32_sim_get_port (sim), error);
  if (!direct)
    return FALSE;
  /* Declared after @relay, so closed before socat is stopped. */
  g_autoptr (GSocket) via_relay =
      relay ? bench_direct_connect (bench_relay_get_port (relay), error) : NULL;
  if (relay && !via_relay)
    return FALSE;
  g_autoptr (Stm32ClientChannel) channel =
      stm32_client_link_open_transact_channel_sync (d->link, NULL, error);
  if (!channel)
    return FALSE;

  /* Per size: the baselines, Transact and the channel, in turns. */
  Paths paths = { d, direct, via_relay, channel };
  g_autoptr (GPtrArray) base = g_ptr_array_new_with_free_func ((GDestroyNotify) baselines_free);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      Baselines *b = g_new0 (Baselines, 1);
      g_ptr_array_add (base, b);
      if (!measure_size (&paths, sizes[i], n, b, error))
        return FALSE;
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
      g_autofree char *req = g_malloc (sizes[i] + 1);
      g_autofree char *reply = g_malloc (sizes[i] + 2);
      memset (req, 'r', sizes[i]);
      req[sizes[i]] = '\n';
      SocketPath path = { stream, req, reply, sizes[i] };
      Samples via = { 0 };
      gboolean ok = sample (&via, socket_round_trip, &path, n / 10, 0, error);
      samples_clear (&via);
      ok = ok && sample (&via, socket_round_trip, &path, n, 0, error);
      if (ok)
        report_latency ("AcquireStream", sizes[i], &via, base->pdata[i]);
      samples_clear (&via);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}
