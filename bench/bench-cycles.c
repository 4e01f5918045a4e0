/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cycle section: Connect, one Transact, Disconnect, over and over,
 * against a direct socket doing the same (each side closes first and waits
 * for the board's EOF). */
#include "bench.h"

#include <errno.h>
#include <sys/socket.h>

/* connect → request/reply → shutdown(WR) → EOF → close, as the daemon does. */
static gboolean
direct_cycle (guint16 port, GError **error)
{
  char reply[64];
  g_autoptr (GSocket) sock = bench_direct_connect (port, error);
  if (!sock || !bench_send_all (sock, "cycle\n", 6, error) ||
      !bench_recv_line (sock, reply, sizeof reply, error))
    return FALSE;
  if (!g_socket_shutdown (sock, FALSE, TRUE, error))
    return FALSE;
  for (;;)
    {
      gssize n = g_socket_receive (sock, reply, sizeof reply, NULL, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        break;
    }
  return g_socket_close (sock, error);
}

static gboolean
link_cycle (Stm32ClientLink *link, GBytes *req, GError **error)
{
  if (!stm32_client_link_connect_sync (link, NULL, error))
    return FALSE;
  g_autoptr (GBytes) reply = stm32_client_link_transact_sync (link, req, 5000, NULL, error);
  return reply && stm32_client_link_disconnect_sync (link, NULL, error);
}

/* ---- a board whose firmware ignores EOF -------------------------------------- */

/* Frames each cycle writes after its request, then closes at once. */
#define EOF_BURST 5

/* TIME_WAIT sockets of this PC towards 127.0.0.1:@port (/proc/net/tcp,
 * state 06): what a close that ended with both FINs leaves for 60 s. */
static guint
count_time_wait (guint16 port)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  g_autofree char *remote = g_strdup_printf ("0100007F:%04X", port);
  guint count = 0;

  if (!g_file_get_contents ("/proc/net/tcp", &text, NULL, NULL))
    return 0;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto (GStrv) fields = g_strsplit_set (g_strstrip (lines[i]), " ", -1);
      guint n = 0;
      const char *column[4] = { NULL };

      for (guint j = 0; fields[j] != NULL && n < 4; j++)
        if (*fields[j] != '\0')
          column[n++] = fields[j];
      if (n == 4 && g_str_equal (column[2], remote) && g_str_equal (column[3], "06"))
        count++;
    }
  return count;
}

/* The only close of a plain client that keeps such a board alive (Qt's
 * abort() with SO_LINGER {1, 0}): request/reply, EOF_BURST frames written,
 * then a RST at once, whatever the kernel had not delivered yet. */
static gboolean
direct_abort_cycle (guint16 port, GError **error)
{
  const struct linger abortive = { .l_onoff = 1, .l_linger = 0 };
  char reply[64];
  g_autoptr (GSocket) sock = bench_direct_connect (port, error);

  if (!sock || !bench_send_all (sock, "cycle\n", 6, error) ||
      !bench_recv_line (sock, reply, sizeof reply, error))
    return FALSE;
  for (guint i = 0; i < EOF_BURST; i++)
    if (!bench_send_all (sock, "burst\n", 6, error))
      return FALSE;
  if (setsockopt (g_socket_get_fd (sock), SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "SO_LINGER: %s",
                   g_strerror (errno));
      return FALSE;
    }
  return g_socket_close (sock, error);
}

static void
on_burst_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  guint *answered = user_data;

  /* A Send that failed is counted lost by the board's own count. */
  stm32_client_link_send_finish (STM32_CLIENT_LINK (source), result, NULL);
  (*answered)++;
}

/* The same through stm32d: EOF_BURST Sends not waited for, Disconnect at once. */
static gboolean
link_burst_cycle (Stm32ClientLink *link, GBytes *req, GArray *disconnect_ns, GError **error)
{
  g_autoptr (GBytes) burst = g_bytes_new_static ("burst", 5);
  g_autoptr (GBytes) reply = NULL;
  guint answered = 0;
  gboolean all_answered = FALSE;
  gint64 t0;

  if (!stm32_client_link_connect_sync (link, NULL, error))
    return FALSE;
  reply = stm32_client_link_transact_sync (link, req, 5000, NULL, error);
  if (reply == NULL)
    return FALSE;
  for (guint i = 0; i < EOF_BURST; i++)
    stm32_client_link_send (link, burst, NULL, on_burst_sent, &answered);
  t0 = bench_now_ns ();
  if (!stm32_client_link_disconnect_sync (link, NULL, error))
    return FALSE;
  g_array_append_val (disconnect_ns, (gint64){ bench_now_ns () - t0 });
  while (!all_answered)
    {
      all_answered = answered == EOF_BURST;
      if (!all_answered && !bench_wait_until (&all_answered, 10))
        all_answered = answered == EOF_BURST;
    }
  return TRUE;
}

/* Frames the board received on the last @connections connections, from its
 * "released" events. */
static guint64
board_frames_received (Stm32Sim *sim, guint connections)
{
  guint64 frames = 0;

  for (guint i = 0; i < connections; i++)
    {
      g_autoptr (JsonObject) released = stm32_sim_wait_event (sim, "released", BENCH_WAIT_MS);

      frames += (guint64) json_object_get_int_member (released, "frames");
    }
  return frames;
}

static gboolean
bench_cycles_eof_ignoring (const BenchConfig *config, GError **error)
{
  guint n = config->smoke ? 20 : 500, n_graceful = config->smoke ? 1 : 5;
  gint64 max_ns = (config->smoke ? 5 : 30) * G_GINT64_CONSTANT (1000000000);
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, "--mode", "leak", "--slots", "4", NULL);
  guint16 port = stm32_sim_get_port (sim);
  g_autoptr (BenchDaemon) d = bench_daemon_start (config, port, NULL, FALSE, error);
  g_autoptr (BenchDaemon) graceful = NULL;
  g_autoptr (GBytes) req = g_bytes_new_static ("cycle", 5);
  g_autoptr (GArray) auto_ns = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GArray) graceful_ns = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autofree char *note = NULL, *lost_note = NULL, *tw_note = NULL;
  guint nd = 0, nv = 0, tw_before, tw_direct, tw_link;
  guint64 direct_frames, link_frames;
  double sd, sv;
  gint64 t0;

  if (!d)
    return FALSE;
  /* CloseMode=auto learns the board first: three closes of CloseTimeout. */
  for (guint i = 0; i < 3; i++)
    if (!link_burst_cycle (d->link, req, graceful_ns, error))
      return FALSE;
  board_frames_received (sim, 3);
  g_array_set_size (graceful_ns, 0);

  tw_before = count_time_wait (port);
  t0 = bench_now_ns ();
  for (; nd < n && bench_now_ns () - t0 < max_ns; nd++)
    if (!direct_abort_cycle (port, error))
      return FALSE;
  sd = (bench_now_ns () - t0) / 1e9;
  direct_frames = board_frames_received (sim, nd);
  tw_direct = count_time_wait (port) - MIN (count_time_wait (port), tw_before);

  tw_before = count_time_wait (port);
  t0 = bench_now_ns ();
  for (; nv < n && bench_now_ns () - t0 < max_ns; nv++)
    if (!link_burst_cycle (d->link, req, auto_ns, error))
      return FALSE;
  sv = (bench_now_ns () - t0) / 1e9;
  link_frames = board_frames_received (sim, nv);
  tw_link = count_time_wait (port) - MIN (count_time_wait (port), tw_before);

  note = g_strdup_printf ("%u / %u cycles, %u frames each; direct: SO_LINGER {1,0}", nv, nd,
                          1 + EOF_BURST);
  bench_report ("cycle", "EOF-ignoring board: connect-transact-send-disconnect", nv / sv, nd / sd,
                "cycles/s", note);
  lost_note =
      g_strdup_printf ("of %u / %u frames sent", nv * (1 + EOF_BURST), nd * (1 + EOF_BURST));
  bench_report ("cycle", "EOF-ignoring board: frames lost",
                (double) (nv * (1 + EOF_BURST) - MIN (link_frames, nv * (1 + EOF_BURST))),
                (double) (nd * (1 + EOF_BURST) - MIN (direct_frames, nd * (1 + EOF_BURST))),
                "frames", lost_note);
  tw_note = g_strdup_printf ("after %u / %u cycles", nv, nd);
  bench_report ("cycle", "EOF-ignoring board: TIME_WAIT left on the PC", tw_link, tw_direct,
                "sockets", tw_note);

  /* What each close cost before: CloseMode=graceful waits CloseTimeout
   * (one stm32d at a time owns the bus name). */
  g_clear_pointer (&d, bench_daemon_free);
  graceful = bench_daemon_start (config, port, "CloseMode=graceful\n", FALSE, error);
  if (!graceful)
    return FALSE;
  for (guint i = 0; i < n_graceful; i++)
    if (!link_burst_cycle (graceful->link, req, graceful_ns, error))
      return FALSE;
  bench_report ("cycle", "EOF-ignoring board: Disconnect p50, auto vs graceful",
                bench_percentile_us (auto_ns, 0.5), bench_percentile_us (graceful_ns, 0.5), "us",
                "baseline: CloseMode=graceful (CloseTimeout 1 s)");
  return TRUE;
}

gboolean
bench_cycles (const BenchConfig *config, GError **error)
{
  guint n = config->smoke ? 20 : 500;
  gint64 max_ns = (config->smoke ? 5 : 30) * G_GINT64_CONSTANT (1000000000);
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, "--mode", "good", "--slots", "0", NULL);
  guint16 port = stm32_sim_get_port (sim);
  g_autoptr (BenchDaemon) d = bench_daemon_start (config, port, NULL, FALSE, error);
  if (!d)
    return FALSE;
  g_autoptr (GBytes) req = g_bytes_new_static ("cycle", 5);

  guint nd = 0, nv = 0;
  guint tw_before = count_time_wait (port);
  gint64 t0 = bench_now_ns ();
  for (; nd < n && bench_now_ns () - t0 < max_ns; nd++)
    if (!direct_cycle (port, error))
      return FALSE;
  double sd = (bench_now_ns () - t0) / 1e9;
  guint tw_direct = count_time_wait (port) - MIN (count_time_wait (port), tw_before);
  tw_before = count_time_wait (port);
  t0 = bench_now_ns ();
  for (; nv < n && bench_now_ns () - t0 < max_ns; nv++)
    if (!link_cycle (d->link, req, error))
      return FALSE;
  double sv = (bench_now_ns () - t0) / 1e9;
  guint tw_link = count_time_wait (port) - MIN (count_time_wait (port), tw_before);
  g_autofree char *note = g_strdup_printf ("%u / %u cycles", nv, nd);
  bench_report ("cycle", "connect-transact-disconnect", nv / sv, nd / sd, "cycles/s", note);
  /* Each graceful close the PC starts leaves one TIME_WAIT socket for 60 s. */
  bench_report ("cycle", "good board: TIME_WAIT left on the PC", tw_link, tw_direct, "sockets",
                note);
  /* One stm32d owns the bus name at a time. */
  g_clear_pointer (&d, bench_daemon_free);
  g_clear_pointer (&sim, stm32_sim_stop);
  return bench_cycles_eof_ignoring (config, error);
}
