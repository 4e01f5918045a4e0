/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "sim-config.h"

G_BEGIN_DECLS

/* How a connection gave its slot back ("released" event, "how" member). */
typedef enum
{
  SIM_RELEASE_CLOSED_AFTER_EOF, /* the PC closed first, the firmware closed after */
  SIM_RELEASE_PEER_RESET,       /* a RST from the PC freed it */
  SIM_RELEASE_BOARD_CLOSED,     /* the board closed first and the PC answered (or time ran out) */
  SIM_RELEASE_BOARD_RESET,      /* the board aborted it */
  SIM_RELEASE_RESTART,          /* the board rebooted */
  SIM_RELEASE_N,
} SimRelease;

const char *sim_release_to_string (SimRelease how);

/* One accepted connection, as the firmware handles it. Holds a slot from
 * creation until @released is called, which happens once and always from the
 * main loop or from one of the sim_conn_* calls below. */
typedef struct _SimConn SimConn;

typedef void (*SimConnReleasedFunc) (SimConn *conn, SimRelease how, const char *detail,
                                     gpointer user_data);

SimConn *sim_conn_new (guint64 id, GSocket *socket, const SimConfig *config,
                       SimConnReleasedFunc released, gpointer user_data);
/* Starts reading; may release at once (e.g. --rst-after 0). */
void sim_conn_start (SimConn *self);
SimConn *sim_conn_ref (SimConn *self);
void sim_conn_unref (SimConn *self);

guint64 sim_conn_get_id (SimConn *self);
const char *sim_conn_get_peer (SimConn *self);
guint64 sim_conn_get_frames (SimConn *self);
guint64 sim_conn_get_bytes (SimConn *self);
/* "open", "silent", "draining", "leaked" (EOF ignored), "fin-wait" or "released". */
const char *sim_conn_get_state (SimConn *self);
/* Whether the firmware still uses it (not leaked, not closing). */
gboolean sim_conn_is_active (SimConn *self);
gboolean sim_conn_is_leaked (SimConn *self);

/* A hung firmware: stops reading and answering; the stack still handles a RST. */
void sim_conn_set_silent (SimConn *self, gboolean silent);
/* The smallest flood frame: "[SEQ,\"\"]" with any 64-bit SEQ. */
#define SIM_FLOOD_FRAME_MIN 24
/* The firmware sends @bytes of frames of @frame_size payload bytes each (the
 * last one whole, so at least @bytes), as fast as the socket takes them,
 * beside its replies, and emits "flood-done". Frame payloads are
 * [SEQ,"xxx…"], SEQ counting from 1 per connection across floods; a flood
 * under way is replaced. FALSE if the connection is not open. */
gboolean sim_conn_flood (SimConn *self, guint64 bytes, gsize frame_size);

/* The firmware closes: FIN, then waits for the PC's FIN or RST (bounded). */
void sim_conn_close (SimConn *self);
/* Releases a connection that only waits for the PC's RST (leaked, silent)
 * if the RST has arrived, without waiting for the main loop to report it. */
void sim_conn_settle (SimConn *self);
/* The firmware aborts: RST, released as @how at once. */
void sim_conn_abort (SimConn *self, SimRelease how);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SimConn, sim_conn_unref)

G_END_DECLS
