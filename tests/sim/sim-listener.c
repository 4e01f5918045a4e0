/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-listener.h"

#include <errno.h>
#include <linux/filter.h>
#include <sys/socket.h>

struct _SimListener
{
  GSocket *socket;
  guint16 port;
  GSource *source;
  SimListenerReadyFunc ready;
  gpointer user_data;
  gboolean dropping;
};

SimListener *
sim_listener_new (GInetAddress *address, guint16 port, int backlog, SimListenerReadyFunc ready,
                  gpointer user_data, GError **error)
{
  g_autoptr (GSocketAddress) local = g_inet_socket_address_new (address, port);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (SimListener) self = g_new0 (SimListener, 1);

  self->ready = ready;
  self->user_data = user_data;
  self->socket = g_socket_new (g_inet_address_get_family (address), G_SOCKET_TYPE_STREAM,
                               G_SOCKET_PROTOCOL_TCP, error);
  if (self->socket == NULL)
    return NULL;
  g_socket_set_blocking (self->socket, FALSE);
  /* A small queue, like lwIP's: the board takes few connections at a time. */
  g_socket_set_listen_backlog (self->socket, backlog);
  if (!g_socket_bind (self->socket, local, TRUE, error) || !g_socket_listen (self->socket, error))
    return NULL;
  bound = g_socket_get_local_address (self->socket, error);
  if (bound == NULL)
    return NULL;
  self->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return g_steal_pointer (&self);
}

void
sim_listener_free (SimListener *self)
{
  if (self == NULL)
    return;
  sim_listener_set_watching (self, FALSE);
  /* Closing the listener resets every connection still in its accept queue. */
  if (self->socket != NULL)
    g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);
  g_free (self);
}

guint16
sim_listener_get_port (SimListener *self)
{
  return self->port;
}

static gboolean
on_listener_ready (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  SimListener *self = user_data;

  self->ready (self, self->user_data);
  return G_SOURCE_CONTINUE;
}

void
sim_listener_set_watching (SimListener *self, gboolean watching)
{
  if (watching == (self->source != NULL))
    return;
  if (!watching)
    {
      g_source_destroy (self->source);
      g_clear_pointer (&self->source, g_source_unref);
      return;
    }
  self->source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->source, G_SOURCE_FUNC (on_listener_ready), self, NULL);
  g_source_set_name (self->source, "stm32-sim listener");
  g_source_attach (self->source, NULL);
}

GSocket *
sim_listener_accept (SimListener *self, GError **error)
{
  return g_socket_accept (self->socket, NULL, error);
}

gboolean
sim_listener_set_dropping (SimListener *self, gboolean dropping, GError **error)
{
  /* One instruction: "accept 0 bytes", i.e. drop. Linux runs a listener's
   * filter on SYNs and handshake ACKs, and a child socket only inherits the
   * filter attached when it is created, i.e. never, since no handshake
   * completes while the filter is on. */
  struct sock_filter drop_all[] = { BPF_STMT (BPF_RET | BPF_K, 0) };
  struct sock_fprog program = { .len = G_N_ELEMENTS (drop_all), .filter = drop_all };
  int fd = g_socket_get_fd (self->socket);
  int unused = 0;
  int r;

  if (dropping == self->dropping)
    return TRUE;
  if (dropping)
    r = setsockopt (fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program);
  else
    r = setsockopt (fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused);
  if (r < 0)
    {
      int errsv = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv), "%s socket filter: %s",
                   dropping ? "attaching" : "detaching", g_strerror (errsv));
      return FALSE;
    }
  self->dropping = dropping;
  return TRUE;
}

gboolean
sim_listener_get_dropping (SimListener *self)
{
  return self->dropping;
}

void
sim_socket_set_abortive (GSocket *socket)
{
  struct linger abortive = { .l_onoff = 1, .l_linger = 0 };

  /* Linger {1, 0}: close() sends RST and discards unsent data. */
  if (setsockopt (g_socket_get_fd (socket), SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) < 0)
    g_warning ("SO_LINGER: %s", g_strerror (errno));
}

char *
sim_socket_describe_peer (GSocket *socket)
{
  g_autoptr (GSocketAddress) address = g_socket_get_remote_address (socket, NULL);
  g_autofree char *ip = NULL;
  GInetAddress *inet;
  guint16 port;

  if (!G_IS_INET_SOCKET_ADDRESS (address))
    return g_strdup ("unknown");
  inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
  ip = g_inet_address_to_string (inet);
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[%s]:%u", ip, port);
  return g_strdup_printf ("%s:%u", ip, port);
}
