/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-sd-notify.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <unistd.h>

static GSocketAddress *
notify_address (void)
{
  const char *path = g_getenv ("NOTIFY_SOCKET");

  if (path == NULL || path[0] == '\0')
    return NULL;
  /* "@name" is a socket in the abstract namespace. */
  if (path[0] == '@')
    return g_unix_socket_address_new_with_type (path + 1, -1, G_UNIX_SOCKET_ADDRESS_ABSTRACT);
  return g_unix_socket_address_new (path);
}

void
stm32_sd_notify (const char *state)
{
  g_autoptr (GSocketAddress) address = notify_address ();
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GError) error = NULL;

  if (address == NULL)
    return;
  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_DEFAULT,
                         &error);
  if (socket != NULL)
    {
      g_socket_set_blocking (socket, FALSE);
      g_socket_send_to (socket, address, state, strlen (state), NULL, &error);
    }
  if (error != NULL)
    g_debug ("sd_notify(%s): %s", state, error->message);
}

static gboolean
on_watchdog (gpointer user_data)
{
  stm32_sd_notify ("WATCHDOG=1");
  return G_SOURCE_CONTINUE;
}

guint
stm32_sd_watchdog_start (void)
{
  const char *usec_text = g_getenv ("WATCHDOG_USEC");
  const char *pid_text = g_getenv ("WATCHDOG_PID");
  guint64 usec = 0, pid = 0;

  if (usec_text == NULL || !g_ascii_string_to_unsigned (usec_text, 10, 1, G_MAXUINT64, &usec, NULL))
    return 0;
  /* The variables are inherited by children; only the process they name pets. */
  if (pid_text != NULL && (!g_ascii_string_to_unsigned (pid_text, 10, 1, G_MAXUINT32, &pid, NULL) ||
                           pid != (guint64) getpid ()))
    return 0;
  return g_timeout_add ((guint) MIN (usec / 2000, G_MAXUINT), on_watchdog, NULL);
}
