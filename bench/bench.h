/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the bench's sections share: the run's settings, the board and stm32d
 * each section starts (bench-fixture.c), direct sockets to the board
 * (bench-socket.c), the figures (bench-report.c) and the sections themselves. */

#include <gio/gio.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-client.h"
#include "stm32-client-link.h"

#define BENCH_LINK_NAME "bench"
#define BENCH_WAIT_MS 10000
#define BENCH_IO_TIMEOUT_S 10
/* Sends kept outstanding at once, as a GUI using the async API would. */
#define BENCH_SEND_IN_FLIGHT 64

typedef struct
{
  const char *sim;    /* the stm32-sim binary */
  const char *daemon; /* the stm32d binary */
  const char *ctl;    /* the stm32ctl binary */
  gboolean smoke;     /* tiny sizes: does it all work */
  int board_cpu;      /* the simulator's CPU of its own, or -1 */
  const char *flood_reader;   /* stm32-bench-flood-reader, the flood's direct client */
  const char *flood_listener; /* tests/flood-listener, a Received listener */
} BenchConfig;

/* One section: measures, reports its figures, fails with @error. */
typedef gboolean (*BenchSection) (const BenchConfig *config, GError **error);

gboolean bench_latency (const BenchConfig *config, GError **error);
gboolean bench_throughput (const BenchConfig *config, GError **error);
gboolean bench_stream_bulk (const BenchConfig *config, GError **error);
gboolean bench_cycles (const BenchConfig *config, GError **error);
gboolean bench_recovery (const BenchConfig *config, GError **error);
gboolean bench_footprint (const BenchConfig *config, GError **error);
gboolean bench_queue (const BenchConfig *config, GError **error);
gboolean bench_config (const BenchConfig *config, GError **error);
gboolean bench_fleet (const BenchConfig *config, GError **error);
gboolean bench_flood (const BenchConfig *config, GError **error);

/* bench-report.c */
/* One figure beside its baseline (NAN: nothing to compare with). */
void bench_report (const char *section, const char *name, double value, double baseline,
                   const char *unit, const char *note);
/* The same, with the socat relay's figure for the same measure beside it
 * (NAN: no relay in this run). */
void bench_report_with_relay (const char *section, const char *name, double value,
                              double baseline, double relay, const char *unit, const char *note);
/* Every figure so far, as an aligned table or one JSON object each, on stdout. */
void bench_report_print (gboolean json);
/* The @p quantile of @ns (sorted in place), in µs. */
double bench_percentile_us (GArray *ns, double p);

/* bench-fixture.c */
gint64 bench_now_ns (void);
/* Runs the default main context until *@done or @timeout_ms passed. */
gboolean bench_wait_until (const gboolean *done, guint timeout_ms);
/* Lets time pass while the main context runs. */
void bench_run_for (guint ms);

/* Starts stm32-sim with --port 0 --quiet and the given options (NULL-terminated). */
Stm32Sim *bench_sim_start (const BenchConfig *config, ...) G_GNUC_NULL_TERMINATED;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32Sim, stm32_sim_stop)

typedef struct
{
  Stm32Daemon *process;
  char *conf;
  Stm32Client *client;
  Stm32ClientLink *link;
} BenchDaemon;

/* Starts stm32d with one link "bench" to 127.0.0.1:@port and @extra_conf
 * lines, waits for its bus name, and (with @autoconnect) for "connected". */
BenchDaemon *bench_daemon_start (const BenchConfig *config, guint16 port, const char *extra_conf,
                                 gboolean autoconnect, GError **error);
/* Only stm32d, link "bench" autoconnecting, with no client: libstm32client
 * would receive every signal stm32d sends (Received too). */
BenchDaemon *bench_daemon_spawn (const BenchConfig *config, guint16 port, const char *extra_conf,
                                 GError **error);
GPid bench_daemon_get_pid (BenchDaemon *daemon);
void bench_daemon_free (BenchDaemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchDaemon, bench_daemon_free)

/* Waits until the link's State is @want ("!x": anything but x); returns
 * bench_now_ns() when it was seen, or 0 on timeout. */
gint64 bench_link_wait_state (Stm32ClientLink *link, const char *want, guint timeout_ms);

/* bench-socket.c */
GSocket *bench_direct_connect (guint16 port, GError **error);
gboolean bench_send_all (GSocket *sock, const char *buf, gsize len, GError **error);
gboolean bench_recv_line (GSocket *sock, char *buf, gsize size, GError **error);

/* bench-relay.c: socat relaying a port of its own on 127.0.0.1 to the board. */
typedef struct _BenchRelay BenchRelay;
/* Fails with G_IO_ERROR_NOT_FOUND when socat is not installed. */
BenchRelay *bench_relay_start (guint16 board_port, GError **error);
guint16 bench_relay_get_port (BenchRelay *relay);
void bench_relay_stop (BenchRelay *relay);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchRelay, bench_relay_stop)
/* A relay, or NULL: with @error set when it failed, with only a line on
 * stderr when socat is missing (the relay rows are left out). */
BenchRelay *bench_relay_start_or_skip (guint16 board_port, GError **error);

/* bench-throughput.c: @n pipelined Sends of @size bytes, at most @max_s
 * seconds; returns the seconds taken and the frames done, or -1. */
double bench_send_pipelined (Stm32ClientLink *link, gsize size, guint n, guint max_s, guint *frames,
                             GError **error);
