/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the files of one Stm32Link share and nothing else may see: the
 * instance, one socket's life (LinkIo), and the calls between the link's
 * rooms — the state machine (stm32-link.c), the socket (stm32-link-io.c),
 * what goes out (stm32-link-send.c, over stm32-send-queue.c) and what comes
 * in (stm32-link-receive.c), transactions (stm32-link-transactions.c), the
 * watchdogs (stm32-link-watchdog.c) and raw mode (stm32-link-raw.c).
 */

#include "stm32-backoff.h"
#include "stm32-close-learner.h"
#include "stm32-deadline.h"
#include "stm32-defaults.h"
#include "stm32-framer.h"
#include "stm32-link.h"
#include "stm32-round-trip.h"
#include "stm32-send-queue.h"

G_BEGIN_DECLS

/*
 * Who frees an error, in every function of the link's files: a `GError *`
 * parameter is taken (the callee frees it or hands it on; the caller passes
 * a new error or g_steal_pointer()), a `const GError *` is borrowed (the
 * caller frees it; the callee copies what it keeps). Only what ends
 * something with the error takes it — stm32_link_end(), the answer to a
 * transaction or a send; whatever reports or classifies one borrows it. So a
 * call site shows whether the error changes hands, and g_steal_pointer()
 * into a `const GError *` is always a leak.
 */

#define LINK_LOG(self, level, fmt, ...)                                                            \
  g_log_structured (G_LOG_DOMAIN, level, "STM32D_LINK", (self)->name, "MESSAGE", "%s: " fmt,       \
                    (self)->name, ##__VA_ARGS__)

/* Where one socket is in its life. Every phase but CLOSED may have
 * operations pending; the fd is closed only once none is. */
typedef enum
{
  LINK_IO_CONNECTING, /* resolving, and trying the addresses one at a time */
  LINK_IO_OPEN,       /* connected: reading, and writing what the queue holds */
  LINK_IO_FIN_SENT,   /* our FIN is out, reads go on until the board's EOF */
  LINK_IO_ENDING,     /* no new operation starts; closes once none is pending */
  LINK_IO_CLOSED,     /* the fd is gone */
} LinkIoPhase;

typedef struct _LinkTransactions LinkTransactions;

/*
 * One socket's life, from the first connect attempt to its fd being closed.
 * GIO always calls back, even after cancellation, so every callback holds a
 * reference on this (not on the link); @link is cleared when the link goes away.
 */
typedef struct
{
  Stm32Link *link;
  LinkIoPhase phase;
  GCancellable *cancellable;       /* connect and read: cancelled when the connection ends */
  GCancellable *write_cancellable; /* cancelled only when the link itself goes away */
  GSocketAddressEnumerator *addresses;
  GSocketConnection *connection;
  GError *connect_error; /* why the last address failed, reported if none works */
  guint pending;
  Stm32Deadline connect_deadline; /* ConnectTimeout, for every address tried in all */
  gboolean fin_sent;
  gint64 fin_sent_mono;
  gboolean abortive; /* close with SO_LINGER {1, 0}: a RST, so the board keeps no PCB */
  /* Raw mode (AcquireStream) belongs to one connection and dies with it. @raw
   * sends received bytes past the decoder until released, to the end of the
   * connection if the hold ended with it: those bytes are no frames. */
  gboolean raw;
  guint raw_hold;      /* the holder's token; 0 once released or no longer connected */
  GBytes *writing;     /* the kernel may read this until the write calls back */
  gsize write_offset;  /* how much of @writing the kernel took */
  guint64 written;     /* bytes the kernel took from us, counted when the write calls back */
  GSource *read_watch; /* the socket, while reading: see stm32_link_io_read() */
} LinkIo;

struct _Stm32Link
{
  GObject parent_instance;

  char *name;
  Stm32LinkConfig *config;
  Stm32Backoff backoff;
  Stm32History *history;

  Stm32LinkState state;
  gboolean wanted;     /* someone wants the link up: Autoconnect, or Connect() until Disconnect() */
  guint holds;         /* stm32_link_hold() calls not yet released */
  gboolean start_held; /* an attempt waits for the last release */
  Stm32LinkAdmitFunc admit; /* until the first attempt */
  gpointer admit_data;
  LinkIo *io;
  Stm32Decoder *decoder;
  Stm32HistoryEntry *attempt;
  gint64 connected_mono;
  gint64 last_rx_mono;

  /* How the current attempt ends; the first reason given wins. */
  Stm32EndReason end_reason;
  Stm32ClosedBy end_closed_by;
  Stm32Detector end_detector;
  GError *end_error;

  Stm32EndReason last_error;
  char *last_error_message;
  guint retry_in;
  char *local_address;
  char *remote_address;
  gint64 connected_since;

  /* The close on request under way (stm32-link-close.c). */
  Stm32CloseLearner close_learner;
  Stm32CloseKind close_kind; /* NONE unless closing on request */
  guint close_wait;          /* ms: the FIN wait, or the bound of the whole close */
  guint close_armed;         /* ms: what close_timer was last armed with */
  gint64 close_started_mono;
  gint64 fin_delay; /* µs from our FIN to the board's; -1 if none came */
  guint close_timer;
  guint close_poll_timer;
  guint retry_timer;
  guint idle_timer;
  guint heartbeat_timer;

  Stm32SendQueue *send_queue;
  LinkTransactions *transactions;
  GPtrArray *connect_waiters;
  GPtrArray *disconnect_waiters;
  guint raw_serial;    /* the last raw-mode token handed out */
  guint receive_holds; /* stm32_link_hold_receiving() not yet released */
  guint counter_holds;   /* stm32_link_hold_counters() not yet released */
  gboolean counters_changed_held; /* and a counter changed meanwhile */

  guint64 bytes_sent;
  guint64 bytes_received;
  guint64 frames_sent;
  guint64 frames_received;
  guint64 connects;
  guint64 disconnects;
  guint64 connect_failures;
  guint64 late_replies;
  guint64 resets_sent;
  guint64 transact_timeouts;
  guint64 failures[STM32_END_REASON_N_REASONS];
  guint64 round_trips[STM32_ROUND_TRIP_N_BUCKETS]; /* per bucket; cumulated when read */
  guint64 round_trip_sum;                          /* µs */
};

enum
{
  PROP_0,
  PROP_NAME,
  PROP_CONFIG,
  PROP_HOST,
  PROP_PORT,
  PROP_FRAMING,
  PROP_STATE,
  PROP_AUTOCONNECT,
  PROP_LOCAL_ADDRESS,
  PROP_REMOTE_ADDRESS,
  PROP_CONNECTED_SINCE,
  PROP_RETRY_IN,
  PROP_LAST_ERROR,
  PROP_LAST_ERROR_MESSAGE,
  PROP_BYTES_SENT,
  PROP_BYTES_RECEIVED,
  PROP_FRAMES_SENT,
  PROP_FRAMES_RECEIVED,
  PROP_CONNECTS,
  PROP_DISCONNECTS,
  PROP_CONNECT_FAILURES,
  PROP_RAW,
  PROP_LATE_REPLIES,
  PROP_CLOSE_STRATEGY,
  PROP_CLOSE_STRATEGY_REASON,
  PROP_CLOSE_WAIT,
  PROP_RESETS_SENT,
  PROP_TRANSACT_TIMEOUTS,
  PROP_FAILURES,
  PROP_ROUND_TRIPS,
  PROP_ROUND_TRIP_SUM,
  N_LINK_PROPS
};

extern GParamSpec *stm32_link_props[N_LINK_PROPS];

enum
{
  SIGNAL_RECEIVED,
  SIGNAL_RECEIVED_RAW,
  SIGNAL_COUNTERS_CHANGED,
  N_LINK_SIGNALS
};

extern guint stm32_link_signals[N_LINK_SIGNALS];

/* ---- stm32-link.c: the state machine -------------------------------------- */

GError *stm32_link_error_new (Stm32Link *self, Stm32EndReason reason, const char *format, ...)
    G_GNUC_PRINTF (3, 4);
/* Counters emit no notify each ("counters-changed" once instead): what one
 * event changes between hold and release is announced once. */
void stm32_link_add_counter (Stm32Link *self, guint64 *counter, guint64 amount);
void stm32_link_hold_counters (Stm32Link *self);
void stm32_link_release_counters (Stm32Link *self);
/* A transaction's reply came @round_trip µs after its request started out. */
void stm32_link_count_round_trip (Stm32Link *self, gint64 round_trip);
/* Ends the current attempt or connection, whatever stage it is in. Takes
 * @error (NULL: "disconnected"). */
void stm32_link_end (Stm32Link *self, Stm32EndReason reason, Stm32ClosedBy closed_by,
                     gboolean abortive, GError *error);
/* The same, for an ending that @detector noticed (a timer, the kernel's
 * keepalive) rather than one the board or a caller made. */
void stm32_link_end_detected (Stm32Link *self, Stm32Detector detector, Stm32EndReason reason,
                              Stm32ClosedBy closed_by, gboolean abortive, GError *error);
gboolean stm32_link_check_connected (Stm32Link *self, GError **error);
gboolean stm32_link_check_queue_room (Stm32Link *self, gsize size, GError **error);
/* Checks that @frame may be queued now, and encodes it. */
GBytes *stm32_link_prepare_frame (Stm32Link *self, GBytes *frame, GError **error);
/* Queues @request and starts writing it if nothing is being written. */
void stm32_link_enqueue (Stm32Link *self, Stm32SendRequest *request);
/* The same for a transaction's request, given to the kernel before it
 * returns if nothing is being written: there is one on the wire at a time,
 * so no burst to measure against SendQueueMax together, and a write that
 * finished on the next turn of the main loop cost each transaction a turn. */
void stm32_link_enqueue_now (Stm32Link *self, Stm32SendRequest *request);
/* Starts writing the next queued frame, or our FIN once closing and nothing is left. */
void stm32_link_kick_writer (Stm32Link *self);

/* What the socket reports to the link (called by stm32-link-io.c). */
void stm32_link_on_connected (Stm32Link *self, GSocketConnection *connection);
void stm32_link_on_connect_failed (Stm32Link *self, const GError *error);
void stm32_link_on_connect_timeout (Stm32Link *self);
void stm32_link_on_data (Stm32Link *self, const guint8 *data, gsize len);
void stm32_link_on_eof (Stm32Link *self);
void stm32_link_on_io_error (Stm32Link *self, const GError *error);
/* The write of the queue's head ended: @complete if the kernel took it all;
 * @error if the socket failed. */
void stm32_link_on_written (Stm32Link *self, gboolean complete, const GError *error);
/* The fd is gone: record the attempt, then wait, retry or rest. */
void stm32_link_finish_attempt (Stm32Link *self);

/* ---- stm32-link-close.c: closing on request --------------------------------- */

/* Disconnect() on a connected link: picks the close, arms its bound, starts it. */
void stm32_link_close_begin (Stm32Link *self);
/* Everything queued was written: our FIN, or the RST once the board owes nothing. */
void stm32_link_close_drained (Stm32Link *self);
/* The board's EOF came while closing. */
void stm32_link_close_on_eof (Stm32Link *self);
void stm32_link_close_clear_timers (Stm32Link *self);
/* The attempt ended: records how it was closed in @entry and in the learner. */
void stm32_link_close_record (Stm32Link *self, Stm32HistoryEntry *entry);

/* ---- stm32-link-io.c: one socket's life ------------------------------------ */

LinkIo *stm32_link_io_new (Stm32Link *link);
LinkIo *stm32_link_io_ref (LinkIo *io);
void stm32_link_io_unref (LinkIo *io);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LinkIo, stm32_link_io_unref)
/* Resolves the board and tries its addresses one at a time, within
 * @timeout_ms in all; reports to stm32_link_on_connected() or
 * stm32_link_on_connect_failed()/_timeout(). */
void stm32_link_io_connect (LinkIo *io, const char *host, guint16 port, guint timeout_ms);
gboolean stm32_link_io_is_ending (LinkIo *io);
/* Whether the board's bytes (or its EOF) wait on the socket, not yet read. */
gboolean stm32_link_io_has_unread (LinkIo *io);
/* Marks the socket ending and cancels what may be cancelled. FALSE if it was
 * ending already. */
gboolean stm32_link_io_begin_end (LinkIo *io, gboolean abortive);
/* Starts the next read, unless one is in flight, the socket is ending or
 * receiving is held. */
void stm32_link_io_read (LinkIo *io);
/* Writes @bytes from @offset on; stm32_link_on_written() reports the end,
 * on a later turn of the main loop. */
void stm32_link_io_write (LinkIo *io, GBytes *bytes, gsize offset);
/* Gives the kernel what it takes of @vectors at once, in one system call;
 * returns how many bytes (0 if none, or on an error, which the next write
 * meets again). */
gsize stm32_link_io_write_now (LinkIo *io, const GOutputVector *vectors, gsize n_vectors);
/* Our FIN; the board's EOF (or CloseTimeout) ends the close. */
void stm32_link_io_shutdown_write (LinkIo *io);
/* How many of the bytes written on this socket the board acknowledged. */
gboolean stm32_link_io_get_acknowledged (LinkIo *io, guint64 *acknowledged);
/* Closes the fd once no operation can touch it any more. */
void stm32_link_io_maybe_close (LinkIo *io);
/* The link is going away: reset what reached the board and cancel everything. */
void stm32_link_io_abandon (LinkIo *io);

/* ---- stm32-link-transactions.c: which frame answers which request ---------- */

LinkTransactions *stm32_link_transactions_new (Stm32Link *link);
void stm32_link_transactions_free (LinkTransactions *transactions);
/* Gives @frame to the caller whose request it answers; FALSE if no caller
 * waits for it (a frame of the board's own, a heartbeat's answer, a late
 * reply): then it is received. */
gboolean stm32_link_transactions_take_reply (Stm32Link *self, GBytes *frame);
/* Sends the next transaction's request if none owes a reply. */
void stm32_link_transactions_issue (Stm32Link *self);
gboolean stm32_link_transactions_is_empty (Stm32Link *self);
/* Every transaction ends with @end_error: "not sent" or "no reply", by how
 * far its request got. */
void stm32_link_transactions_fail_all (Stm32Link *self, const GError *end_error);
/* Every transaction ends with a copy of @error. */
void stm32_link_transactions_fail_all_with (Stm32Link *self, const GError *error);
/* Receiving resumed after a hold: the answer awaited (heartbeat, late reply)
 * gets its whole time again, from now. */
void stm32_link_transactions_receiving_resumed (Stm32Link *self);
/* Sends a heartbeat (@wire), which owes a reply like a transaction's request
 * but answers no caller; no transaction may be under way. */
void stm32_link_transactions_heartbeat (Stm32Link *self, GBytes *wire);
/* What a frame that never went out whole is answered with. */
GError *stm32_link_not_sent_error_new (const GError *end_error);

/* ---- stm32-link-watchdog.c: idle check and heartbeat ----------------------- */

void stm32_link_watchdog_arm (Stm32Link *self);
void stm32_link_watchdog_disarm (Stm32Link *self);
/* Data came: the board is alive. */
void stm32_link_watchdog_feed (Stm32Link *self);

/* ---- stm32-link-raw.c: raw mode (AcquireStream) ---------------------------- */

/* A raw hold ends with the connected state, so that its holder learns at once
 * (notify::raw) and a later connection never starts out held. */
void stm32_link_raw_end_hold (Stm32Link *self);

G_END_DECLS
