/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-bus-callers.h"
#include "stm32-defaults.h"
#include "stm32-link.h"

G_BEGIN_DECLS

/*
 * Stm32LinkExport: one Stm32Link as an org.stm32d.Link1 object.
 *
 * Binds the link's properties to the generated skeleton (enums as their
 * nicks, counters published at most every STM32_COUNTER_PUBLISH_MS), answers
 * the methods with the link's async calls and re-emits Received, holding the
 * link's receiving while too many of those wait for the bus
 * (stm32-bus-backlog.h). It touches no socket; the link knows nothing of D-Bus.
 */
#define STM32_TYPE_LINK_EXPORT (stm32_link_export_get_type ())
G_DECLARE_FINAL_TYPE (Stm32LinkExport, stm32_link_export, STM32, LINK_EXPORT, GObject)

/* @callers tracks the bus clients whose calls wait; one for all links. */
Stm32LinkExport *stm32_link_export_new (Stm32Link *link, Stm32BusCallers *callers);
Stm32Link *stm32_link_export_get_link (Stm32LinkExport *self);
/* The object to add to the GDBusObjectManagerServer, at /org/stm32d/link/NAME. */
GDBusObjectSkeleton *stm32_link_export_get_object (Stm32LinkExport *self);
/* Its transaction and send channels read EOF: for a link that goes away. */
void stm32_link_export_close_channels (Stm32LinkExport *self);

G_END_DECLS
