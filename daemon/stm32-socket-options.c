/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-socket-options.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

gboolean
stm32_socket_arm_liveness (GSocket *socket, const Stm32LinkConfig *config, GError **error)
{
  g_socket_set_keepalive (socket, TRUE);
  /* Small request/reply frames must not wait for Nagle's timer. */
  return g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, error) &&
         g_socket_set_option (socket, IPPROTO_TCP, TCP_KEEPIDLE, (int) config->keepalive_idle_s,
                              error) &&
         g_socket_set_option (socket, IPPROTO_TCP, TCP_KEEPINTVL,
                              (int) config->keepalive_interval_s, error) &&
         g_socket_set_option (socket, IPPROTO_TCP, TCP_KEEPCNT, (int) config->keepalive_count,
                              error) &&
         g_socket_set_option (socket, IPPROTO_TCP, TCP_USER_TIMEOUT, (int) config->user_timeout,
                              error);
}

gboolean
stm32_socket_set_abortive_close (GSocket *socket, GError **error)
{
  const struct linger abortive = { .l_onoff = 1, .l_linger = 0 };

  if (setsockopt (g_socket_get_fd (socket), SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Could not arm reset-on-close: %s", g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

/* The kernel's TCP state of @socket (TCP_ESTABLISHED, …), or 0 when it
 * cannot be read, which no state equals. */
static guint8
socket_tcp_state (GSocket *socket)
{
  struct tcp_info info = { 0 };
  socklen_t len = sizeof info;

  if (getsockopt (g_socket_get_fd (socket), IPPROTO_TCP, TCP_INFO, &info, &len) < 0)
    return 0;
  return info.tcpi_state;
}

gboolean
stm32_socket_eof_was_reset (GSocket *socket)
{
  return socket_tcp_state (socket) == TCP_CLOSE;
}

gboolean
stm32_socket_peer_closed (GSocket *socket)
{
  guint8 state = socket_tcp_state (socket);

  /* The states a connection reaches only once the other side's FIN came. */
  return state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING ||
         state == TCP_TIME_WAIT;
}

gboolean
stm32_socket_fin_unacknowledged (GSocket *socket)
{
  return socket_tcp_state (socket) == TCP_FIN_WAIT1;
}

/* glibc's struct tcp_info stops at tcpi_total_retrans; the kernel's goes on
 * (Linux 4.1) as <linux/tcp.h> lays it out, which cannot be included beside
 * <netinet/tcp.h>. */
typedef struct
{
  struct tcp_info info;
  guint64 pacing_rate;
  guint64 max_pacing_rate;
  guint64 bytes_acked; /* RFC 4898 tcpEStatsAppHCThruOctetsAcked: every ACKed sequence number */
} SocketTcpInfo;

G_STATIC_ASSERT (G_STRUCT_OFFSET (SocketTcpInfo, bytes_acked) == 120);

gboolean
stm32_socket_get_acknowledged (GSocket *socket, guint64 *acknowledged)
{
  SocketTcpInfo info = { 0 };
  socklen_t len = sizeof info;

  if (getsockopt (g_socket_get_fd (socket), IPPROTO_TCP, TCP_INFO, &info, &len) < 0 ||
      len < sizeof info || info.bytes_acked == 0)
    return FALSE;
  /* Our SYN took the first sequence number. */
  *acknowledged = info.bytes_acked - 1;
  return TRUE;
}
