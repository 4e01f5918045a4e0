/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The throughput section's bulk transfer: 1 KiB lines to an echoing board
 * and their echo back, both ways at once, through an AcquireStream socket
 * beside a direct socket. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <sys/socket.h>

#include "bench.h"

/* Writes @total bytes of 1 KiB lines while reading their echo, on one
 * non-blocking socket, until the whole echo is back: the board's view of a
 * bulk transfer, for a direct socket and an AcquireStream alike. At most
 * WINDOW bytes are out unechoed, as a holder that reads what it provokes
 * would: stm32d closes a stream whose holder lets more than 1 MiB from the
 * board wait (STM32_STREAM_BUFFER_MAX). */
static double
bulk_echo (GSocket *sock, guint64 total, GError **error)
{
  enum
  {
    LINE = 1024,
    CHUNK = 64 * LINE,
    WINDOW = 256 * LINE
  };
  g_autofree char *out = g_malloc (CHUNK);
  g_autofree char *in = g_malloc (CHUNK);
  for (guint i = 0; i < CHUNK; i++)
    out[i] = (i % LINE == LINE - 1) ? '\n' : 'b';
  total -= total % LINE;
  int fd = g_socket_get_fd (sock);
  guint64 sent = 0, received = 0;
  gint64 t0 = bench_now_ns ();
  while (received < total)
    {
      gboolean may_send = sent < total && sent - received < WINDOW;
      struct pollfd pfd = { fd, POLLIN | (may_send ? POLLOUT : 0), 0 };
      int r = poll (&pfd, 1, BENCH_IO_TIMEOUT_S * 1000);
      if (r <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "bulk transfer stalled at %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                       " bytes",
                       received, total);
          return -1;
        }
      if (pfd.revents & POLLIN)
        {
          ssize_t n = recv (fd, in, CHUNK, MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                           "bulk transfer: the stream ended");
              return -1;
            }
          if (n > 0)
            received += (guint64) n;
        }
      if (may_send && (pfd.revents & POLLOUT))
        {
          gsize off = sent % CHUNK;
          gsize len = MIN ((guint64) (CHUNK - off), MIN (total - sent, WINDOW - (sent - received)));
          ssize_t n = send (fd, out + off, len, MSG_DONTWAIT | MSG_NOSIGNAL);
          if (n < 0 && errno != EAGAIN && errno != EINTR)
            {
              g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "bulk send: %s",
                           g_strerror (errno));
              return -1;
            }
          if (n > 0)
            sent += (guint64) n;
        }
    }
  return (bench_now_ns () - t0) / 1e9;
}

gboolean
bench_stream_bulk (const BenchConfig *config, GError **error)
{
  guint64 bulk = (config->smoke ? 2 : 64) * G_GUINT64_CONSTANT (1048576);
  g_autoptr (Stm32Sim) echo = bench_sim_start (config, NULL);
  g_autoptr (BenchDaemon) d =
      bench_daemon_start (config, stm32_sim_get_port (echo), NULL, TRUE, error);
  if (!d)
    return FALSE;
  g_autoptr (GSocket) direct = bench_direct_connect (stm32_sim_get_port (echo), error);
  if (!direct)
    return FALSE;
  double bd = bulk_echo (direct, bulk, error);
  if (bd < 0)
    return FALSE;
  double br = NAN;
  {
    g_autoptr (GError) relay_error = NULL;
    g_autoptr (BenchRelay) relay =
        bench_relay_start_or_skip (stm32_sim_get_port (echo), &relay_error);
    if (relay_error)
      {
        g_propagate_error (error, g_steal_pointer (&relay_error));
        return FALSE;
      }
    g_autoptr (GSocket) via_relay =
        relay ? bench_direct_connect (bench_relay_get_port (relay), error) : NULL;
    if (relay && (!via_relay || (br = bulk_echo (via_relay, bulk, error)) < 0))
      return FALSE;
  }
  g_autoptr (GSocket) stream = stm32_client_link_acquire_stream_sync (d->link, NULL, error);
  if (!stream)
    return FALSE;
  double bv = bulk_echo (stream, bulk, error);
  if (bv < 0)
    return FALSE;
  g_autofree char *note =
      g_strdup_printf ("%" G_GUINT64_FORMAT " MiB out and echoed back", bulk / 1048576);
  bench_report_with_relay ("throughput", "AcquireStream bulk echo", bulk / bv / 1e6,
                           bulk / bd / 1e6, bulk / br / 1e6, "MB/s", note);
  return TRUE;
}
