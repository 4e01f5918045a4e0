/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-link.h"

G_BEGIN_DECLS

/*
 * Stm32EndpointGate: one socket per board, also while links replace each
 * other. A link about to touch its board for the first time waits until no
 * earlier socket to the same endpoint remains:
 *
 *  - one of this daemon's links that Reload removed or recreated and that is
 *    still closing (its Disconnect finishes once its fd is gone);
 *  - another stm32d's, seen by the socket census: the daemon that
 *    `--replace` took the bus name from, closing its links as it leaves.
 *
 * A board with one slot would otherwise refuse the newcomer, or a board that
 * ignores EOF keep both. The wait is bounded: once it runs out the link
 * connects anyway, and the log says what still held the board.
 */
#define STM32_TYPE_ENDPOINT_GATE (stm32_endpoint_gate_get_type ())
G_DECLARE_FINAL_TYPE (Stm32EndpointGate, stm32_endpoint_gate, STM32, ENDPOINT_GATE, GObject)

Stm32EndpointGate *stm32_endpoint_gate_new (void);

/* Closes @link gracefully and keeps it until its fd is gone; links waiting
 * for its endpoint go on then. */
void stm32_endpoint_gate_retire (Stm32EndpointGate *self, Stm32Link *link);

/* Holds @link (stm32_link_hold()) until nothing else holds a socket to its
 * endpoint, or for @bound_ms at most, then releases it. Call it before the
 * link may start. */
void stm32_endpoint_gate_admit (Stm32EndpointGate *self, Stm32Link *link, guint bound_ms);

/* The longest CloseTimeout among the links still closing, in ms. */
guint stm32_endpoint_gate_get_max_close_timeout (Stm32EndpointGate *self);

/* Finishes once no retired link is closing any more. */
void stm32_endpoint_gate_drain_async (Stm32EndpointGate *self, GCancellable *cancellable,
                                      GAsyncReadyCallback callback, gpointer user_data);
gboolean stm32_endpoint_gate_drain_finish (Stm32EndpointGate *self, GAsyncResult *result,
                                           GError **error);

G_END_DECLS
