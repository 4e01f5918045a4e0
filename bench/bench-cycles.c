/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cycle section: Connect, one Transact, Disconnect, over and over,
 * against a direct socket doing the same (each side closes first and waits
 * for the board's EOF). */
#include "bench.h"

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
  gint64 t0 = bench_now_ns ();
  for (; nd < n && bench_now_ns () - t0 < max_ns; nd++)
    if (!direct_cycle (port, error))
      return FALSE;
  double sd = (bench_now_ns () - t0) / 1e9;
  t0 = bench_now_ns ();
  for (; nv < n && bench_now_ns () - t0 < max_ns; nv++)
    if (!link_cycle (d->link, req, error))
      return FALSE;
  double sv = (bench_now_ns () - t0) / 1e9;
  g_autofree char *note = g_strdup_printf ("%u / %u cycles", nv, nd);
  bench_report ("cycle", "connect-transact-disconnect", nv / sv, nd / sd, "cycles/s", note);
  return TRUE;
}
