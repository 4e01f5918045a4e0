/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the library's files share and applications do not see. */
#pragma once

#include "stm32-client-channel.h"
#include "stm32-client-link.h"
#include "stm32-dbus-generated.h"

G_BEGIN_DECLS

/* Wraps @proxy, one of @objects' interfaces; @objects also says afterwards
 * whether the daemon still runs when a call finds the link gone. */
Stm32ClientLink *stm32_client_link_new (Stm32DbusLink1 *proxy, GDBusObjectManager *objects);
/* The object manager replaced the link's interface proxy: follow the new one
 * (properties notify, as their values may differ). */
void stm32_client_link_set_proxy (Stm32ClientLink *self, Stm32DbusLink1 *proxy);
/* The daemon dropped the link (or stopped): from now on calls fail at once. */
void stm32_client_link_mark_removed (Stm32ClientLink *self);

/* For the link's calls (stm32-client-link-calls.c): the proxy it follows now. */
Stm32DbusLink1 *stm32_client_link_get_proxy (Stm32ClientLink *self);
/* Whether a call may go out; once the link was removed, FALSE with the error
 * saying why it is gone. */
gboolean stm32_client_link_may_call (Stm32ClientLink *self, GError **error);
/* stm32_client_call_error() for a call on the link. */
GError *stm32_client_link_call_error (Stm32ClientLink *self, GError *error);

/* A channel on @socket (taken), stm32d's end of OpenTransactChannel. */
Stm32ClientChannel *stm32_client_channel_new (GSocket *socket);

void stm32_client_set_not_running_error (GError **error);
/* Lets calls through @proxy (including those of generated wrappers) wait for
 * the daemon's answer however long it takes. */
void stm32_client_proxy_disable_timeout (GDBusProxy *proxy);

/* Sets the error for a call that went to a daemon that is gone. */
typedef void (*Stm32ClientGoneFunc) (gpointer user_data, GError **error);
/* Takes @error, a failed call's, and returns it as callers see it: the
 * daemon's code without the "GDBus.Error:org.stm32d.Error.Name: " prefix on
 * the message, or, when nobody owns the name the call went to (any more),
 * what @set_gone_error sets instead. */
GError *stm32_client_call_error (GError *error, Stm32ClientGoneFunc set_gone_error,
                                 gpointer user_data);

G_END_DECLS
