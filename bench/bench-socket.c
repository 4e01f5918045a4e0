/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The baseline's side: a direct TCP socket to the board, set up as stm32d
 * sets up its own, and blocking line request/reply on it. */
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "bench.h"

GSocket *
bench_direct_connect (guint16 port, GError **error)
{
  g_autoptr (GSocket) sock =
      g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (!sock)
    return NULL;
  /* Same as the daemon: small request frames must not wait for Nagle. */
  if (!g_socket_set_option (sock, IPPROTO_TCP, TCP_NODELAY, 1, error))
    return NULL;
  g_socket_set_timeout (sock, BENCH_IO_TIMEOUT_S);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (lo, port);
  if (!g_socket_connect (sock, addr, NULL, error))
    return NULL;
  return g_steal_pointer (&sock);
}

gboolean
bench_send_all (GSocket *sock, const char *buf, gsize len, GError **error)
{
  while (len > 0)
    {
      gssize n = g_socket_send (sock, buf, len, NULL, error);
      if (n < 0)
        return FALSE;
      buf += n;
      len -= (gsize) n;
    }
  return TRUE;
}

/* Reads until a "\n"; request/reply is strictly alternating, so nothing
 * beyond the newline can have arrived. */
gboolean
bench_recv_line (GSocket *sock, char *buf, gsize size, GError **error)
{
  gsize got = 0;
  while (got == 0 || buf[got - 1] != '\n')
    {
      if (got == size)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE, "reply too long");
          return FALSE;
        }
      gssize n = g_socket_receive (sock, buf + got, size - got, NULL, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "EOF");
          return FALSE;
        }
      got += (gsize) n;
    }
  return TRUE;
}
