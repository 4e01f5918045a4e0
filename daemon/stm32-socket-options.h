/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-link-config.h"

G_BEGIN_DECLS

/* Arms the kernel's dead-peer detection on a connected socket: keepalive
 * (idle/interval/count) and TCP_USER_TIMEOUT, which bounds how long written
 * data may stay unacknowledged — keepalive alone never fires while data is queued. */
gboolean stm32_socket_arm_liveness (GSocket *socket, const Stm32LinkConfig *config, GError **error);

/* Makes the next close() send RST instead of FIN (SO_LINGER {1, 0}). lwIP frees
 * a control block on RST in any state, so this is how a PC rescues a board whose
 * firmware never answers our FIN. */
gboolean stm32_socket_set_abortive_close (GSocket *socket, GError **error);

/* After read() returned 0: whether that end was really a reset. The kernel
 * reports a RST's ECONNRESET once, to whichever call asks first; when a
 * blocked write took it, the read sees only EOF. A FIN leaves the socket in
 * CLOSE_WAIT, a RST in CLOSE. */
gboolean stm32_socket_eof_was_reset (GSocket *socket);

/* Whether the board's FIN has reached the kernel, read or not. */
gboolean stm32_socket_peer_closed (GSocket *socket);
/* Whether our FIN is still waiting for the board's acknowledgement (FIN_WAIT_1). */
gboolean stm32_socket_fin_unacknowledged (GSocket *socket);

/* How many bytes written to @socket the peer has acknowledged, straight from
 * the kernel's count (TCP_INFO), a FIN counting as one once acknowledged; it
 * stays readable after a RST ended the connection. Not derived from what we
 * believe we wrote: a write the kernel took but whose callback has not run
 * yet would make that count short. */
gboolean stm32_socket_get_acknowledged (GSocket *socket, guint64 *acknowledged);

G_END_DECLS
