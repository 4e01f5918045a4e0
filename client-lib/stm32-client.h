/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-client-visibility.h"

#include "stm32-client-channel.h"
#include "stm32-client-send-channel.h"
#include "stm32-client-link.h"
#include "stm32-error.h"

G_BEGIN_DECLS

/**
 * Stm32Client:
 *
 * The way into stm32d for GUIs and scripts: finds the daemon on the system or
 * session bus, lists its links and follows them appearing and disappearing
 * (also across daemon restarts). Errors from the daemon arrive as STM32_ERROR
 * codes; a daemon that is not running is STM32_CLIENT_ERROR_NOT_RUNNING
 * on the first call that needs it.
 *
 * Every call to stm32d, the ones construction makes included, waits at most
 * #Stm32Client:call-timeout for its answer (a transaction: that plus its
 * own timeout), then fails with STM32_CLIENT_ERROR_NO_ANSWER: a daemon that
 * stopped answering never blocks a caller for long.
 */
#define STM32_TYPE_CLIENT (stm32_client_get_type ())
STM32_CLIENT_PUBLIC
G_DECLARE_FINAL_TYPE (Stm32Client, stm32_client, STM32, CLIENT, GObject)

/**
 * STM32_CLIENT_CALL_TIMEOUT_DEFAULT:
 *
 * How long, in milliseconds, a call waits for stm32d's answer unless
 * #Stm32Client:call-timeout says otherwise: one minute. stm32d bounds every
 * call itself (ConnectTimeout, CloseTimeout, the bounded send queue), far
 * below this with its defaults, so only a daemon that stopped answering
 * (stopped, hung, swapped out) reaches it.
 */
#define STM32_CLIENT_CALL_TIMEOUT_DEFAULT 60000

/**
 * Stm32ClientError:
 * @STM32_CLIENT_ERROR_NOT_RUNNING: stm32d does not own its bus name
 * @STM32_CLIENT_ERROR_NO_SUCH_LINK: no link of that name
 * @STM32_CLIENT_ERROR_NO_ANSWER: stm32d (or the bus) did not answer a call
 *   within #Stm32Client:call-timeout; a call that reached it may still be
 *   carried out
 * @STM32_CLIENT_ERROR_NO_BUS: the bus stm32d would be on cannot be reached
 *   (on the system bus: dbus is not running)
 *
 * Errors of the client side itself (the daemon's are STM32_ERROR).
 */
typedef enum
{
  STM32_CLIENT_ERROR_NOT_RUNNING,
  STM32_CLIENT_ERROR_NO_SUCH_LINK,
  STM32_CLIENT_ERROR_NO_ANSWER,
  STM32_CLIENT_ERROR_NO_BUS,
} Stm32ClientError;

#define STM32_TYPE_CLIENT_ERROR (stm32_client_error_get_type ())
STM32_CLIENT_PUBLIC GType stm32_client_error_get_type (void);

#define STM32_CLIENT_ERROR (stm32_client_error_quark ())
STM32_CLIENT_PUBLIC GQuark stm32_client_error_quark (void);

/* Connects to @bus_type (G_BUS_TYPE_SYSTEM, or G_BUS_TYPE_SESSION for
 * development) and loads the daemon's links. Succeeds even when the daemon is
 * not running: see stm32_client_is_running(). */
STM32_CLIENT_PUBLIC void stm32_client_new (GBusType bus_type, GCancellable *cancellable,
                                           GAsyncReadyCallback callback, gpointer user_data);
STM32_CLIENT_PUBLIC Stm32Client *stm32_client_new_finish (GAsyncResult *result, GError **error);
STM32_CLIENT_PUBLIC Stm32Client *stm32_client_new_sync (GBusType bus_type,
                                                        GCancellable *cancellable, GError **error);

/* How long each call waits for stm32d's answer, in ms (property
 * "call-timeout"; STM32_CLIENT_CALL_TIMEOUT_DEFAULT unless set). Construct
 * with g_initable_new() or g_async_initable_new_async() and "call-timeout" to
 * bound construction too. */
STM32_CLIENT_PUBLIC guint stm32_client_get_call_timeout (Stm32Client *self);
STM32_CLIENT_PUBLIC void stm32_client_set_call_timeout (Stm32Client *self, guint timeout_ms);

/* Whether stm32d owns its name now (property "running", with notify). */
STM32_CLIENT_PUBLIC gboolean stm32_client_is_running (Stm32Client *self);
/* Manager1.Version, or 0 when not running. */
STM32_CLIENT_PUBLIC guint stm32_client_get_api_version (Stm32Client *self);

/* The links, sorted by name (transfer container: free the list, not the links). */
STM32_CLIENT_PUBLIC GList *stm32_client_get_links (Stm32Client *self);
/* The link called @name, or NULL (transfer none). */
STM32_CLIENT_PUBLIC Stm32ClientLink *stm32_client_get_link (Stm32Client *self, const char *name);
/* Like stm32_client_get_link(), but a missing link is a STM32_CLIENT_ERROR_NO_SUCH_LINK
 * (or NOT_RUNNING) error naming the links there are. */
STM32_CLIENT_PUBLIC Stm32ClientLink *stm32_client_find_link (Stm32Client *self, const char *name,
                                                             GError **error);

/* Manager1.Reload(). */
STM32_CLIENT_PUBLIC void stm32_client_reload (Stm32Client *self, GCancellable *cancellable,
                                              GAsyncReadyCallback callback, gpointer user_data);
STM32_CLIENT_PUBLIC gboolean stm32_client_reload_finish (Stm32Client *self, GAsyncResult *result,
                                                         GError **error);
STM32_CLIENT_PUBLIC gboolean stm32_client_reload_sync (Stm32Client *self, GCancellable *cancellable,
                                                       GError **error);

/* Signals: "link-added" (Stm32ClientLink *link), "link-removed" (Stm32ClientLink *link). */

G_END_DECLS
