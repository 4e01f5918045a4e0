/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-history.h"
#include "stm32-link-config.h"
#include "stm32-link-types.h"

G_BEGIN_DECLS

/*
 * Stm32Link: the one managed connection to one board.
 *
 * It owns at most one socket at a time and obeys the hygiene contract: every
 * operation is asynchronous; the PC closes first (FIN, then RST if the board
 * does not answer within CloseTimeout); an EOF or error from the board ends the
 * connection at once; while someone wants the link up (Autoconnect, or
 * Connect() until Disconnect()) it reconnects with jittered exponential backoff.
 * Every ending is classified (Stm32EndReason) and kept in a history ring.
 *
 * All async calls complete in a bounded time (ConnectTimeout, CloseTimeout, the
 * transaction timeout, or the send queue draining); cancelling their
 * GCancellable makes them finish with G_IO_ERROR_CANCELLED. A send already
 * being written is finished first, because half a frame would corrupt the stream.
 *
 * It knows nothing of D-Bus: the D-Bus layer binds to its properties and signals.
 */

#define STM32_TYPE_LINK (stm32_link_get_type ())
G_DECLARE_FINAL_TYPE (Stm32Link, stm32_link, STM32, LINK, GObject)

/* A link that starts connecting at once if @config says Autoconnect. */
Stm32Link *stm32_link_new (const char *name, const Stm32LinkConfig *config);
/* A link that does nothing until stm32_link_start() or a call: the daemon
 * exports its links before it may touch the boards (it must own its bus name). */
Stm32Link *stm32_link_new_idle (const char *name, const Stm32LinkConfig *config);
/* Starts keeping the link up if Autoconnect says so; does nothing otherwise,
 * or if it was started (or used) already. */
void stm32_link_start (Stm32Link *self);

const char *stm32_link_get_name (Stm32Link *self);
const Stm32LinkConfig *stm32_link_get_config (Stm32Link *self);
Stm32LinkState stm32_link_get_state (Stm32Link *self);
gboolean stm32_link_get_autoconnect (Stm32Link *self);
void stm32_link_set_autoconnect (Stm32Link *self, gboolean autoconnect);
Stm32EndReason stm32_link_get_last_error (Stm32Link *self);
const char *stm32_link_get_last_error_message (Stm32Link *self);
/* Delay chosen for the pending reconnect, in ms; 0 unless waiting. */
guint stm32_link_get_retry_in (Stm32Link *self);
/* Recent connection attempts, oldest first (GPtrArray of Stm32HistoryEntry). */
GPtrArray *stm32_link_dup_history (Stm32Link *self);

/* Connects, or joins the attempt under way; finishes when connected or with the
 * attempt's error. Afterwards the link stays wanted: it reconnects on its own
 * until stm32_link_disconnect_async(). */
void stm32_link_connect_async (Stm32Link *self, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
gboolean stm32_link_connect_finish (Stm32Link *self, GAsyncResult *result, GError **error);

/* Closes gracefully (queued frames are written first) and finishes once the
 * socket's fd is gone. The link stays down until the next connect. */
void stm32_link_disconnect_async (Stm32Link *self, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data);
gboolean stm32_link_disconnect_finish (Stm32Link *self, GAsyncResult *result, GError **error);

/* Finishes once the board's TCP stack acknowledged the whole frame, or with
 * why not (then the frame may or may not have arrived; it is never resent). */
void stm32_link_send_async (Stm32Link *self, GBytes *frame, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data);
gboolean stm32_link_send_finish (Stm32Link *self, GAsyncResult *result, GError **error);
/* Whether the send queue has room now for a frame of @frame_size bytes
 * (its framing counted at most), or is empty: a send that would fail with
 * QueueFull only because others' frames wait may instead wait for room. */
gboolean stm32_link_has_send_room (Stm32Link *self, gsize frame_size);

/* Sends @request and returns the first frame received after it started being
 * written. Transactions run one at a time, in call order; @timeout_ms (1 to
 * STM32_TRANSACT_TIMEOUT_MAX) covers the whole call, including waiting for
 * earlier transactions. One that runs out of time unwritten is withdrawn; one
 * that was written keeps its place until its late reply came or ReplyGrace
 * ran out (stm32-link-transactions.c). */
void stm32_link_transact_async (Stm32Link *self, GBytes *request, guint timeout_ms,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data);
GBytes *stm32_link_transact_finish (Stm32Link *self, GAsyncResult *result, GError **error);
/* How a transaction started with stm32_link_transact_start() ends: @reply,
 * or @error (borrowed, as @reply is). Called exactly once, never from
 * within stm32_link_transact_start(). */
typedef void (*Stm32TransactFunc) (GBytes *reply, const GError *error, gpointer user_data);
/* The same transaction without a GTask, for a caller that answers on its
 * own socket at once (a transaction channel: a GTask and its thread-default
 * context switch per transaction were a cost a relay does not have). FALSE
 * with @error if it cannot start; @func is then never called. */
gboolean stm32_link_transact_start (Stm32Link *self, GBytes *request, guint timeout_ms,
                                    GCancellable *cancellable, Stm32TransactFunc func,
                                    gpointer user_data, GError **error);

/*
 * Raw mode, for bulk data (AcquireStream): one holder at a time takes the
 * current connection. While held, "received-raw" carries the board's bytes as
 * read (no "received", no transaction replies), stm32_link_write_raw_async()
 * queues bytes without framing, and send/transact fail with STM32_ERROR_BUSY.
 * Transactions under way when it is acquired fail with STM32_ERROR_BUSY.
 *
 * The hold ends when the holder releases it or when the state leaves
 * "connected", whatever the reason; "raw" turns FALSE (notify::raw) either way,
 * and a new connection never starts held.
 */

/* Returns the hold's token (never 0), or 0 with STM32_ERROR_NOT_CONNECTED
 * unless connected, STM32_ERROR_BUSY if already held. */
guint stm32_link_acquire_raw (Stm32Link *self, GError **error);
/* Back to frames. Does nothing if @hold has ended already (a later hold is
 * never ended by a stale token). */
void stm32_link_release_raw (Stm32Link *self, guint hold);
/* Whether someone holds the link in raw mode: the "raw" property. */
gboolean stm32_link_get_raw (Stm32Link *self);

/* Queues @bytes unframed through the send queue (SendQueueMax applies:
 * STM32_ERROR_QUEUE_FULL); finishes once all were written to the kernel. */
void stm32_link_write_raw_async (Stm32Link *self, GBytes *bytes, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data);
gboolean stm32_link_write_raw_finish (Stm32Link *self, GAsyncResult *result, GError **error);

/*
 * Back-pressure for what consumes the board's frames ("received"): while any
 * hold is in place the link stops reading from the board, and touches nothing
 * else. What the board sends waits in the kernel and then in the board (TCP
 * closes its window), so nothing is lost and no memory grows here. Holds nest
 * and outlive connections: a connection made while held starts held. While
 * held, the idle watchdog, the heartbeat and ReplyGrace do not count the
 * time: a board whose data waits to be read is alive, and its answers wait
 * with that data.
 */
void stm32_link_hold_receiving (Stm32Link *self);
void stm32_link_release_receiving (Stm32Link *self);
/* Whether a hold is in place. */
gboolean stm32_link_get_receiving_held (Stm32Link *self);

/* Keeps the link from opening a socket until as many stm32_link_release()
 * calls: another socket to the same board still exists (the link it replaces
 * is closing, or another stm32d's), and the board may have one slot only.
 * Meanwhile a link that wants to connect shows "connecting" and Connect()
 * waits; Disconnect() gives the start up. A socket already open is left alone. */
void stm32_link_hold (Stm32Link *self);
void stm32_link_release (Stm32Link *self);

/* Called once, just before the link would open its first socket (started
 * with Autoconnect, or asked to connect), and may stm32_link_hold() it: the
 * daemon's endpoint gate looks for an older socket to the board then, not
 * for links that never connect. */
typedef void (*Stm32LinkAdmitFunc) (Stm32Link *link, gpointer user_data);
/* @func NULL: no admission (the default); @user_data is not owned. */
void stm32_link_set_admit_func (Stm32Link *self, Stm32LinkAdmitFunc func, gpointer user_data);

/* The PC's network changed: retry at once with the shortest backoff. The
 * owner of the links watches GNetworkMonitor once for all of them: a
 * handler per link would cost every link a closure. */
void stm32_link_network_changed (Stm32Link *self);

G_END_DECLS
