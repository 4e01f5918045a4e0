/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-link.h"

G_BEGIN_DECLS

/*
 * Stm32BusBacklog: back-pressure from the bus to a link's board.
 *
 * GDBus queues every emitted signal in memory until its worker thread has
 * written it to the bus, and a board can send faster than the bus takes
 * frames: a 1,000-byte-line flood grew stm32d by 100 MB/s. This counts what
 * was emitted for the link (each signal's payload plus
 * STM32_RECEIVED_SIGNAL_COST) and not yet known written, learning what was
 * written by flushing the connection (g_dbus_connection_flush(), one flush at
 * a time, from half of @max on). At @max it holds the link's receiving
 * (stm32_link_hold_receiving) until a flush brings it back under: the board
 * waits in TCP, nothing is dropped.
 */
#define STM32_TYPE_BUS_BACKLOG (stm32_bus_backlog_get_type ())
G_DECLARE_FINAL_TYPE (Stm32BusBacklog, stm32_bus_backlog, STM32, BUS_BACKLOG, GObject)

/* For signals that @skeleton emits on @link's behalf. */
Stm32BusBacklog *stm32_bus_backlog_new (Stm32Link *link, GDBusInterfaceSkeleton *skeleton,
                                        gsize max);
/* A signal carrying @payload_size bytes was just emitted. */
void stm32_bus_backlog_add (Stm32BusBacklog *self, gsize payload_size);
/* What was emitted and may still wait in GDBus, as counted. */
gsize stm32_bus_backlog_get_waiting (Stm32BusBacklog *self);

G_END_DECLS
