/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-link-config.h"

G_BEGIN_DECLS

/*
 * Stm32Manager: the daemon's links, exported at /org/stm32d.
 *
 * Owns one Stm32Link (and its Link1 object) per configured board, publishes
 * them through org.freedesktop.DBus.ObjectManager, and implements
 * org.stm32d.Manager1 (Version, Reload).
 */
#define STM32_TYPE_MANAGER (stm32_manager_get_type ())
G_DECLARE_FINAL_TYPE (Stm32Manager, stm32_manager, STM32, MANAGER, GObject)

/* @config_path: the file Reload() re-reads, or NULL if links came from the
 * command line (Reload() then fails with InvalidArgs). */
Stm32Manager *stm32_manager_new (const char *config_path);

/* Starts serving on @connection (NULL to stop). */
void stm32_manager_export (Stm32Manager *self, GDBusConnection *connection);

/* Makes the set of links match @links (Stm32ConfigLink): adds new links,
 * closes and removes links no longer named, recreates links whose config
 * changed, and leaves the others — and their connections — alone. */
void stm32_manager_apply (Stm32Manager *self, GPtrArray *links);

/* Lets the links touch their boards: until then they are exported but idle
 * (the daemon exports its objects before it owns its bus name, and connects
 * only once it does, so that a second stm32d never takes a board's slots). */
void stm32_manager_start (Stm32Manager *self);

/* Re-reads the config file and applies it; on a bad file nothing changes. */
gboolean stm32_manager_reload (Stm32Manager *self, GError **error);

guint stm32_manager_get_n_links (Stm32Manager *self);
/* The longest CloseTimeout of any link, those still closing included, in ms:
 * what a graceful shutdown may take. */
guint stm32_manager_get_max_close_timeout (Stm32Manager *self);

/* Closes every link gracefully; finishes once all sockets are closed, those
 * of links Reload removed included. Bounded by the links' CloseTimeout. */
void stm32_manager_shutdown_async (Stm32Manager *self, GCancellable *cancellable,
                                   GAsyncReadyCallback callback, gpointer user_data);
gboolean stm32_manager_shutdown_finish (Stm32Manager *self, GAsyncResult *result, GError **error);

G_END_DECLS
