/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * Stm32BusCallers: which bus clients have requests waiting in the daemon, and
 * whether they are still on the bus.
 *
 * One NameOwnerChanged subscription serves every caller, so the daemon's
 * match rules do not grow with the number of callers (a bus limits them per
 * connection: 512 on the system bus), and it is held only while some caller
 * is. A caller is held while it has requests; after its last one it lingers
 * STM32_CALLER_WATCH_LINGER_MS, so a client making call after call is not
 * looked up on the bus again each time.
 */
#define STM32_TYPE_BUS_CALLERS (stm32_bus_callers_get_type ())
G_DECLARE_FINAL_TYPE (Stm32BusCallers, stm32_bus_callers, STM32, BUS_CALLERS, GObject)

Stm32BusCallers *stm32_bus_callers_new (void);

/* Holds @invocation's sender for one request and returns a cancellable
 * (a new reference) that is cancelled when the sender leaves the bus —
 * also if it left before its call was read. NULL for a peer-to-peer caller,
 * which has no name; otherwise pair with stm32_bus_callers_release(). */
GCancellable *stm32_bus_callers_hold (Stm32BusCallers *self, GDBusMethodInvocation *invocation);
/* The request of @sender held above has ended. */
void stm32_bus_callers_release (Stm32BusCallers *self, const char *sender);

G_END_DECLS
