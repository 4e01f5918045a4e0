/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The board's listening socket. It never blocks: accept is non-blocking and
 * readiness is reported through a callback while watching is on. */
typedef struct _SimListener SimListener;

typedef void (*SimListenerReadyFunc) (SimListener *listener, gpointer user_data);

/* Binds @address:@port (0 = ephemeral) with SO_REUSEADDR, so the same port can be
 * bound again while connections accepted from an earlier listener still exist. */
SimListener *sim_listener_new (GInetAddress *address, guint16 port, int backlog,
                               SimListenerReadyFunc ready, gpointer user_data, GError **error);
void sim_listener_free (SimListener *self);

guint16 sim_listener_get_port (SimListener *self);

/* Whether @ready is called when a connection waits in the accept queue. */
void sim_listener_set_watching (SimListener *self, gboolean watching);

/* Next connection from the accept queue, non-blocking; NULL with
 * G_IO_ERROR_WOULD_BLOCK when there is none. */
GSocket *sim_listener_accept (SimListener *self, GError **error);

/* While dropping, a socket filter discards every packet that reaches the
 * listener, so SYNs go unanswered and connects time out, as when lwIP has no
 * free PCB. Established connections are separate sockets and keep working. */
gboolean sim_listener_set_dropping (SimListener *self, gboolean dropping, GError **error);
gboolean sim_listener_get_dropping (SimListener *self);

/* Makes closing @socket abortive (RST), as lwIP's tcp_abort(). */
void sim_socket_set_abortive (GSocket *socket);

/* "address:port" of the other end, for events. */
char *sim_socket_describe_peer (GSocket *socket);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SimListener, sim_listener_free)

G_END_DECLS
