/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-client-channel.h"
#include "stm32-client-send-channel.h"
#include "stm32-client-visibility.h"

G_BEGIN_DECLS

/**
 * Stm32ClientLink:
 *
 * One board's link as the daemon exports it (org.stm32d.Link1). Its GObject
 * properties mirror the D-Bus properties and emit notify when the daemon
 * changes them: "name", "host", "port", "state" (string: "disconnected",
 * "connecting", "connected", "closing", "waiting"), "autoconnect" (read-only
 * here: change it with stm32_client_link_set_autoconnect(), which reports
 * errors), "framing", "local-address", "remote-address", "connected-since" (µs since
 * the epoch, 0 when not connected), "retry-in" (ms), "last-error",
 * "last-error-message", and the counters "bytes-sent", "bytes-received",
 * "frames-sent", "frames-received", "connects", "disconnects",
 * "connect-failures" (guint64). Signal "received" (GBytes *frame).
 *
 * Every method has an async form (GCancellable + callback) and a _sync one.
 */
#define STM32_TYPE_CLIENT_LINK (stm32_client_link_get_type ())
STM32_CLIENT_PUBLIC
G_DECLARE_FINAL_TYPE (Stm32ClientLink, stm32_client_link, STM32, CLIENT_LINK, GObject)

STM32_CLIENT_PUBLIC const char *stm32_client_link_get_name (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_host (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint16 stm32_client_link_get_port (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_state (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_framing (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_get_autoconnect (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_local_address (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_remote_address (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_connected_since (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint stm32_client_link_get_retry_in (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_last_error (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_last_error_message (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_bytes_sent (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_bytes_received (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_frames_sent (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_frames_received (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_connects (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_disconnects (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_connect_failures (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_late_replies (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_resets_sent (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_transact_timeouts (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC GVariant *stm32_client_link_dup_failures (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC GVariant *stm32_client_link_dup_round_trips (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint64 stm32_client_link_get_round_trip_sum (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_close_strategy (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC const char *stm32_client_link_get_close_strategy_reason (Stm32ClientLink *self);
STM32_CLIENT_PUBLIC guint stm32_client_link_get_close_wait (Stm32ClientLink *self);

/* Sets Autoconnect on the daemon; the property follows once it changed there. */
STM32_CLIENT_PUBLIC void stm32_client_link_set_autoconnect (Stm32ClientLink *self,
                                                            gboolean autoconnect,
                                                            GCancellable *cancellable,
                                                            GAsyncReadyCallback callback,
                                                            gpointer user_data);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_set_autoconnect_finish (Stm32ClientLink *self,
                                                                       GAsyncResult *result,
                                                                       GError **error);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_set_autoconnect_sync (Stm32ClientLink *self,
                                                                     gboolean autoconnect,
                                                                     GCancellable *cancellable,
                                                                     GError **error);

STM32_CLIENT_PUBLIC void stm32_client_link_connect (Stm32ClientLink *self,
                                                    GCancellable *cancellable,
                                                    GAsyncReadyCallback callback,
                                                    gpointer user_data);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_connect_finish (Stm32ClientLink *self,
                                                               GAsyncResult *result,
                                                               GError **error);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_connect_sync (Stm32ClientLink *self,
                                                             GCancellable *cancellable,
                                                             GError **error);

STM32_CLIENT_PUBLIC void stm32_client_link_disconnect (Stm32ClientLink *self,
                                                       GCancellable *cancellable,
                                                       GAsyncReadyCallback callback,
                                                       gpointer user_data);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_disconnect_finish (Stm32ClientLink *self,
                                                                  GAsyncResult *result,
                                                                  GError **error);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_disconnect_sync (Stm32ClientLink *self,
                                                                GCancellable *cancellable,
                                                                GError **error);

STM32_CLIENT_PUBLIC void stm32_client_link_send (Stm32ClientLink *self, GBytes *frame,
                                                 GCancellable *cancellable,
                                                 GAsyncReadyCallback callback, gpointer user_data);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_send_finish (Stm32ClientLink *self,
                                                            GAsyncResult *result, GError **error);
STM32_CLIENT_PUBLIC gboolean stm32_client_link_send_sync (Stm32ClientLink *self, GBytes *frame,
                                                          GCancellable *cancellable,
                                                          GError **error);

STM32_CLIENT_PUBLIC void stm32_client_link_transact (Stm32ClientLink *self, GBytes *request,
                                                     guint timeout_ms, GCancellable *cancellable,
                                                     GAsyncReadyCallback callback,
                                                     gpointer user_data);
STM32_CLIENT_PUBLIC GBytes *
stm32_client_link_transact_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error);
STM32_CLIENT_PUBLIC GBytes *stm32_client_link_transact_sync (Stm32ClientLink *self, GBytes *request,
                                                             guint timeout_ms,
                                                             GCancellable *cancellable,
                                                             GError **error);

/* Recent connection attempts, oldest first: a GVariant of type aa{sv} (see
 * org.stm32d.Link1.GetHistory for the keys). */
STM32_CLIENT_PUBLIC void stm32_client_link_get_history (Stm32ClientLink *self,
                                                        GCancellable *cancellable,
                                                        GAsyncReadyCallback callback,
                                                        gpointer user_data);
STM32_CLIENT_PUBLIC GVariant *
stm32_client_link_get_history_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error);
STM32_CLIENT_PUBLIC GVariant *stm32_client_link_get_history_sync (Stm32ClientLink *self,
                                                                  GCancellable *cancellable,
                                                                  GError **error);

/* Diagnose(): what is wrong with the board's connection and what to change.
 * @options is an a{sv} ("probe" b, "probe-max" u), or NULL for a passive
 * diagnosis; the report is an a{sv} (see org.stm32d.Link1.Diagnose). */
STM32_CLIENT_PUBLIC void stm32_client_link_diagnose (Stm32ClientLink *self, GVariant *options,
                                                     GCancellable *cancellable,
                                                     GAsyncReadyCallback callback,
                                                     gpointer user_data);
STM32_CLIENT_PUBLIC GVariant *
stm32_client_link_diagnose_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error);
STM32_CLIENT_PUBLIC GVariant *stm32_client_link_diagnose_sync (Stm32ClientLink *self,
                                                               GVariant *options,
                                                               GCancellable *cancellable,
                                                               GError **error);

/* AcquireStream(): a connected stream socket bridged to the board (raw bytes,
 * no framing). Closing it releases the link. */
STM32_CLIENT_PUBLIC void stm32_client_link_acquire_stream (Stm32ClientLink *self,
                                                           GCancellable *cancellable,
                                                           GAsyncReadyCallback callback,
                                                           gpointer user_data);
STM32_CLIENT_PUBLIC GSocket *stm32_client_link_acquire_stream_finish (Stm32ClientLink *self,
                                                                      GAsyncResult *result,
                                                                      GError **error);
STM32_CLIENT_PUBLIC GSocket *stm32_client_link_acquire_stream_sync (Stm32ClientLink *self,
                                                                    GCancellable *cancellable,
                                                                    GError **error);

/* OpenTransactChannel(): transactions without a D-Bus round trip each (see
 * Stm32ClientChannel). */
STM32_CLIENT_PUBLIC void stm32_client_link_open_transact_channel (Stm32ClientLink *self,
                                                                  GCancellable *cancellable,
                                                                  GAsyncReadyCallback callback,
                                                                  gpointer user_data);
STM32_CLIENT_PUBLIC Stm32ClientChannel *
stm32_client_link_open_transact_channel_finish (Stm32ClientLink *self, GAsyncResult *result,
                                                GError **error);
STM32_CLIENT_PUBLIC Stm32ClientChannel *
stm32_client_link_open_transact_channel_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                              GError **error);

/* OpenSendChannel(): sends without a D-Bus call each (see
 * Stm32ClientSendChannel). */
STM32_CLIENT_PUBLIC void stm32_client_link_open_send_channel (Stm32ClientLink *self,
                                                              GCancellable *cancellable,
                                                              GAsyncReadyCallback callback,
                                                              gpointer user_data);
STM32_CLIENT_PUBLIC Stm32ClientSendChannel *
stm32_client_link_open_send_channel_finish (Stm32ClientLink *self, GAsyncResult *result,
                                            GError **error);
STM32_CLIENT_PUBLIC Stm32ClientSendChannel *
stm32_client_link_open_send_channel_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                          GError **error);

G_END_DECLS
