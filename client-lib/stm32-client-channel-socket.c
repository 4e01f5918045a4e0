/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What stm32d's end of a channel's SEQPACKET socket said when a receive gave
 * no packet: nothing waits yet, or stm32d closed the channel. Both channel
 * kinds read their socket the same way. */
#include <errno.h>

#include "stm32-client-private.h"

void
stm32_client_set_channel_closed (GError **error, const char *channel, const char *detail)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
               "stm32d closed the %s (the link was removed or stm32d stopped)%s%s", channel,
               detail ? ": " : "", detail ? detail : "");
}

gboolean
stm32_client_channel_received (ssize_t n, const char *channel, GError **error)
{
  int saved_errno = errno;

  if (n < 0 && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == EINTR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "No packet waits on the %s", channel);
      return FALSE;
    }
  if (n < 0)
    {
      stm32_client_set_channel_closed (error, channel, g_strerror (saved_errno));
      return FALSE;
    }
  /* stm32d never sends an empty packet: this is its end closing. */
  if (n == 0)
    {
      stm32_client_set_channel_closed (error, channel, NULL);
      return FALSE;
    }
  return TRUE;
}
