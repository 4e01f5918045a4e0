/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the library's files share and applications do not see. */
#pragma once

#include "stm32-client-channel.h"
#include "stm32-client-link.h"
#include "stm32-client-send-channel.h"
#include "stm32-dbus-generated.h"

G_BEGIN_DECLS

/* Wraps @proxy, one of @objects' interfaces; @objects also says afterwards
 * whether the daemon still runs when a call finds the link gone. Its calls
 * wait @call_timeout ms for stm32d's answer. */
Stm32ClientLink *stm32_client_link_new (Stm32DbusLink1 *proxy, GDBusObjectManager *objects,
                                        guint call_timeout);
/* The client's call-timeout changed. */
void stm32_client_link_set_call_timeout (Stm32ClientLink *self, guint call_timeout);
guint stm32_client_link_get_call_timeout (Stm32ClientLink *self);
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
/* stm32_client_call_error() for a call on the link that waited @timeout_ms. */
GError *stm32_client_link_call_error (Stm32ClientLink *self, GError *error, guint timeout_ms);

/* A channel on @socket (taken), stm32d's end of OpenTransactChannel. */
Stm32ClientChannel *stm32_client_channel_new (GSocket *socket);
/* A send channel on @socket (taken), stm32d's end of OpenSendChannel; a
 * _sync send waits at most @call_timeout ms. */
Stm32ClientSendChannel *stm32_client_send_channel_new (GSocket *socket, guint call_timeout);

/* G_IO_ERROR_CONNECTION_CLOSED: stm32d closed @channel ("send channel"),
 * with @detail if any. */
void stm32_client_set_channel_closed (GError **error, const char *channel, const char *detail);
/* Whether @n, what recv() just returned on @channel's socket (errno intact),
 * is a packet; if not, @error is G_IO_ERROR_WOULD_BLOCK when none waits yet,
 * else why the channel cannot be used any more. */
gboolean stm32_client_channel_received (ssize_t n, const char *channel, GError **error);

void stm32_client_set_not_running_error (GError **error);
/* STM32_CLIENT_ERROR_NO_ANSWER for a call that waited @timeout_ms. */
GError *stm32_client_no_answer_error (guint timeout_ms);
/* Makes calls through @proxy (including those of generated wrappers) wait
 * @timeout_ms for the daemon's answer. */
void stm32_client_proxy_set_call_timeout (GDBusProxy *proxy, guint timeout_ms);
/* Saturating @call_timeout + @extra_ms, as a GDBus timeout. */
guint stm32_client_call_timeout_plus (guint call_timeout, guint extra_ms);

/* Cancels @cancellable when @timeout_ms have passed, from a thread of its
 * own: a _sync call blocks its caller's thread inside GDBus, where no timer of
 * ours could run. */
typedef struct _Stm32ClientAlarm Stm32ClientAlarm;
Stm32ClientAlarm *stm32_client_alarm_start (GCancellable *cancellable, guint timeout_ms);
/* Stops and frees @alarm; returns whether it went off. */
gboolean stm32_client_alarm_stop (Stm32ClientAlarm *alarm);

/* Sets the error for a call that went to a daemon that is gone. */
typedef void (*Stm32ClientGoneFunc) (gpointer user_data, GError **error);
/* Takes @error, a failed call's that waited @timeout_ms, and returns it as
 * callers see it: the daemon's code without the
 * "GDBus.Error:org.stm32d.Error.Name: " prefix on the message;
 * STM32_CLIENT_ERROR_NO_ANSWER when it timed out; or, when nobody owns the
 * name the call went to (any more), what @set_gone_error sets instead. */
GError *stm32_client_call_error (GError *error, guint timeout_ms,
                                 Stm32ClientGoneFunc set_gone_error, gpointer user_data);

G_END_DECLS
