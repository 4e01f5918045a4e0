/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * Stm32SendQueue: what a link has to write to its board, and what it wrote
 * that the board has not acknowledged yet.
 *
 * Requests reserve their bytes against a bound when they are made, wait in
 * order, are written one at a time by whoever owns the socket, and are
 * answered only once the board's TCP stack acknowledged their last byte: a
 * frame in our kernel is not on the board (it may just have rebooted). The
 * queue knows nothing of sockets: it asks its acknowledged-bytes source, which
 * a test can fake.
 */
typedef struct _Stm32SendQueue Stm32SendQueue;
typedef struct _Stm32SendRequest Stm32SendRequest;

typedef enum
{
  STM32_SEND_RESERVED, /* its bytes count against the bound; not in line yet */
  STM32_SEND_QUEUED,   /* in line to be written */
  STM32_SEND_WRITING,  /* being written: the board may get some or all of it */
  STM32_SEND_WRITTEN,  /* the kernel took all of it */
  STM32_SEND_UNSENT,   /* left without being written whole */
} Stm32SendPhase;

/* How many of the bytes written so far the board has acknowledged; FALSE if
 * that cannot be known now (no socket). */
typedef gboolean (*Stm32AcknowledgedFunc) (gpointer user_data, guint64 *acknowledged);
/* Requests of @size bytes in all were acknowledged, @frames of them frames
 * (the rest raw bytes); called once for those one look at the socket
 * found, before any of their tasks is answered. */
typedef void (*Stm32ConfirmedFunc) (gpointer user_data, guint64 size, guint frames);

Stm32SendQueue *stm32_send_queue_new (gsize max_bytes, Stm32AcknowledgedFunc acknowledged,
                                      Stm32ConfirmedFunc confirmed, gpointer user_data);
/* Requests still in it are dropped without an answer: fail them first. */
void stm32_send_queue_free (Stm32SendQueue *self);

/* Bytes reserved by requests not yet written, and whether @size more fit. */
gsize stm32_send_queue_get_reserved (Stm32SendQueue *self);
gboolean stm32_send_queue_has_room (Stm32SendQueue *self, gsize size);

/* Reserves room for @wire. @task, if any, is answered with TRUE once the
 * board acknowledged it (raw requests: once written), or with why not. A
 * request without a task (a heartbeat, a transaction's request) is answered
 * to no one. Returns a reference for the caller. */
Stm32SendRequest *stm32_send_queue_reserve (Stm32SendQueue *self, GBytes *wire, GTask *task,
                                            gboolean raw);
void stm32_send_queue_push (Stm32SendQueue *self, Stm32SendRequest *request);
/* Takes back a request that has not started being written; one being written
 * is finished, since half a frame would corrupt the stream. */
void stm32_send_queue_withdraw (Stm32SendQueue *self, Stm32SendRequest *request);

/* Answers and drops the requests at the head whose callers cancelled them
 * before they started; their callbacks may run from here. */
void stm32_send_queue_drop_cancelled (Stm32SendQueue *self);
/* The next bytes to write, whose request is now WRITING; NULL if nothing
 * waits or something is being written already. Calls back no one. */
GBytes *stm32_send_queue_start_next (Stm32SendQueue *self);
/* Starts writing the requests at the head together: as many as fit in
 * @max_vectors and @max_bytes (always the first), stopping before one whose
 * caller cancelled. Each is WRITING, its bytes in @vectors; returns how many
 * (0 if nothing waits or something is being written already). */
guint stm32_send_queue_start_batch (Stm32SendQueue *self, GOutputVector *vectors,
                                    guint max_vectors, gsize max_bytes);
/* The kernel took the first @taken bytes of the batch started last, which
 * brought the bytes given to it on this connection to @written_total: the
 * requests it took whole are written, the rest wait again but the one it
 * stopped in, which stays WRITING and is returned with how much of it went
 * in *@offset (NULL if there is none). */
GBytes *stm32_send_queue_batch_taken (Stm32SendQueue *self, gsize taken, guint64 written_total,
                                      gsize *offset);
gboolean stm32_send_queue_is_writing (Stm32SendQueue *self);
gboolean stm32_send_queue_is_empty (Stm32SendQueue *self);
/* The request being written was taken whole by the kernel, which by then had
 * been given @written_total bytes on this connection. */
void stm32_send_queue_written (Stm32SendQueue *self, guint64 written_total);
/* The request being written was not taken whole: its task gets @error (taken). */
void stm32_send_queue_unsent (Stm32SendQueue *self, GError *error);

/* Answers every request the board has acknowledged; if some still wait,
 * looks again later, backing off. */
void stm32_send_queue_confirm (Stm32SendQueue *self);
/* Whether a caller waits for the acknowledgement of something written
 * (what no one waits for, a transaction's request, is looked at later). */
gboolean stm32_send_queue_awaits_acknowledgement (Stm32SendQueue *self);
/* The connection ended: what the board acknowledged was sent, the rest was
 * not, and its tasks learn why (@end_error). */
void stm32_send_queue_fail_unconfirmed (Stm32SendQueue *self, const GError *end_error);
/* Answers every queued request with @error; the one being written stays
 * (its write answers it) unless @including_writing. */
void stm32_send_queue_fail_queued (Stm32SendQueue *self, const GError *error,
                                   gboolean including_writing);

Stm32SendRequest *stm32_send_request_ref (Stm32SendRequest *request);
void stm32_send_request_unref (Stm32SendRequest *request);
Stm32SendPhase stm32_send_request_get_phase (const Stm32SendRequest *request);
/* Monotonic µs at which it started being written; 0 if it has not. */
gint64 stm32_send_request_get_started (const Stm32SendRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32SendRequest, stm32_send_request_unref)

G_END_DECLS
