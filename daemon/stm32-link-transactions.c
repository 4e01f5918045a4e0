/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transactions of a Stm32Link, and every rule that decides which frame
 * answers which request.
 *
 * Frames carry no request id, so replies are paired by order alone: one
 * request at a time is on the wire, and the first frame after it started
 * being written is its reply. A request that went out keeps that place even
 * when its caller stops waiting (timeout, cancel): it is "orphaned", and the
 * requests behind it stay unwritten until its late reply came or ReplyGrace
 * ran out, so no caller ever receives another request's reply. Requests that
 * run out of time while still queued are withdrawn unwritten.
 *
 * Every queued transaction costs O(log n) at most: one timer serves all
 * deadlines (a GSequence ordered by deadline), and one signal handler each
 * cancellable, however many transactions share it.
 */
#include "stm32-link-private.h"

#include "stm32-error.h"

typedef enum
{
  TRANSACTION_QUEUED,   /* waiting its turn; its request is not in the send queue */
  TRANSACTION_ISSUED,   /* the current one: its request is queued, or went out */
  TRANSACTION_ORPHANED, /* the current one, its caller answered after the request went out */
} TransactionPhase;

typedef struct
{
  TransactionPhase phase;
  /* Its caller, until answered: a task, or a function; neither for heartbeats. */
  GTask *task;
  Stm32TransactFunc func;
  gpointer func_data;
  gboolean heartbeat;
  Stm32SendRequest *request;
  guint timeout_ms;
  gint64 deadline;           /* monotonic µs at which its caller's time runs out */
  guint64 serial;            /* orders equal deadlines by call order */
  GList place;               /* its link in queued, while QUEUED */
  GSequenceIter *timer;      /* in deadlines, while its caller waits */
  GCancellable *cancellable; /* watched, while its caller waits */
  guint grace_reads;         /* ReplyGrace ran out with bytes waiting unread this often */
} Transaction;

/* One handler per cancellable, whatever the number of transactions it cancels. */
typedef struct
{
  LinkTransactions *owner;
  GCancellable *cancellable;
  gulong handler;
  guint users;
} Watch;

struct _LinkTransactions
{
  Stm32Link *link;
  GMainContext *context;
  GQueue queued;        /* QUEUED, in call order */
  Transaction *current; /* ISSUED or ORPHANED: owes the next frame, or is about to */
  GSequence *deadlines; /* transactions whose callers wait, soonest first */
  guint deadline_timer; /* at the soonest deadline, or earlier */
  gint64 deadline_timer_at;
  guint current_timer;   /* ReplyGrace for an orphan, HeartbeatTimeout for a heartbeat */
  GHashTable *watches;   /* GCancellable → Watch */
  Watch *idle_watch;     /* in watches with no users, kept for the next transaction */
  GSource *cancel_check; /* a cancellable fired: look at the callers in the main loop */
  guint64 serial;
  guint unanswered_in_row; /* orphans whose reply never came, since the last reply */
};

static void transactions_issue (LinkTransactions *self);

/* ---- what a caller is told ------------------------------------------------------ */

GError *
stm32_link_not_sent_error_new (const GError *end_error)
{
  return g_error_new (end_error->domain, end_error->code, "Not sent, the connection ended: %s",
                      end_error->message);
}

/* What a transaction whose request went out, and may have reached the board,
 * is answered with when the connection ends before the reply. */
static GError *
no_reply_error_new (const GError *end_error)
{
  return g_error_new (end_error->domain, end_error->code, "No reply, the connection ended: %s",
                      end_error->message);
}

/* The request started being written: the next frame is the reply. */
static gboolean
transaction_went_out (const Transaction *transaction)
{
  Stm32SendPhase phase = stm32_send_request_get_phase (transaction->request);

  return phase == STM32_SEND_WRITING || phase == STM32_SEND_WRITTEN;
}

/* ---- cancellables ------------------------------------------------------------------ */

static gboolean on_cancel_check (gpointer user_data);

/* Runs in whichever thread cancelled: only hands the news to the main loop. */
static void
on_cancelled (GCancellable *cancellable, Watch *watch)
{
  LinkTransactions *self = watch->owner;
  g_autoptr (GSource) source = g_idle_source_new ();

  g_source_set_callback (source, on_cancel_check, g_object_ref (self->link), g_object_unref);
  g_source_set_static_name (source, "[stm32d] transaction cancelled");
  g_source_attach (source, self->context);
}

static void
transactions_watch (LinkTransactions *self, GCancellable *cancellable)
{
  Watch *watch;

  /* Made on first use: most links of a fleet never see a Transact. */
  if (self->watches == NULL)
    self->watches = g_hash_table_new (NULL, NULL);
  watch = g_hash_table_lookup (self->watches, cancellable);
  if (watch == NULL)
    {
      watch = g_new0 (Watch, 1);
      watch->owner = self;
      watch->cancellable = g_object_ref (cancellable);
      g_hash_table_insert (self->watches, cancellable, watch);
      watch->handler = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled), watch, NULL);
    }
  if (watch == self->idle_watch)
    self->idle_watch = NULL;
  watch->users++;
}

static void
watch_free (LinkTransactions *self, Watch *watch)
{
  g_hash_table_remove (self->watches, watch->cancellable);
  g_cancellable_disconnect (watch->cancellable, watch->handler);
  g_object_unref (watch->cancellable);
  g_free (watch);
}

static void
transactions_unwatch (LinkTransactions *self, GCancellable *cancellable)
{
  Watch *watch = g_hash_table_lookup (self->watches, cancellable);

  if (--watch->users > 0)
    return;
  /* A transaction channel passes the same cancellable with each of its
   * transactions: its watch is kept for the next one, not disconnected and
   * connected again each time. One such watch at most; a cancel it sees
   * with no users finds nothing to do. */
  if (self->idle_watch != NULL)
    watch_free (self, self->idle_watch);
  self->idle_watch = watch;
}

/* ---- deadlines --------------------------------------------------------------------- */

static int
compare_deadlines (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const Transaction *x = a, *y = b;

  if (x->deadline != y->deadline)
    return x->deadline < y->deadline ? -1 : 1;
  return x->serial < y->serial ? -1 : x->serial > y->serial;
}

static gboolean on_deadline_timer (gpointer user_data);

/* The timer is moved only to an earlier deadline; firing early for a
 * transaction that finished meanwhile costs one wake-up, not a re-arm per call. */
static void
transactions_arm_deadline_timer (LinkTransactions *self)
{
  GSequenceIter *first = g_sequence_get_begin_iter (self->deadlines);
  Transaction *soonest;
  gint64 now;

  if (g_sequence_iter_is_end (first))
    return;
  soonest = g_sequence_get (first);
  if (self->deadline_timer != 0 && self->deadline_timer_at <= soonest->deadline)
    return;
  g_clear_handle_id (&self->deadline_timer, g_source_remove);
  now = g_get_monotonic_time ();
  self->deadline_timer_at = soonest->deadline;
  self->deadline_timer =
      g_timeout_add (soonest->deadline > now ? (guint) ((soonest->deadline - now + 999) / 1000) : 0,
                     on_deadline_timer, self);
}

static gboolean
transaction_has_caller (const Transaction *transaction)
{
  return transaction->task != NULL || transaction->func != NULL;
}

/* The caller stops waiting: no deadline, no cancellable, no task. */
static GTask *
transaction_release_caller (LinkTransactions *self, Transaction *transaction)
{
  transaction->func = NULL;
  if (transaction->timer != NULL)
    g_sequence_remove (g_steal_pointer (&transaction->timer));
  if (transaction->cancellable != NULL)
    {
      transactions_unwatch (self, transaction->cancellable);
      g_clear_object (&transaction->cancellable);
    }
  return g_steal_pointer (&transaction->task);
}

/* ---- the life of one transaction -------------------------------------------------- */

static void
transaction_free (LinkTransactions *self, Transaction *transaction)
{
  GTask *unanswered;

  /* Every caller is answered before its transaction goes. */
  g_warn_if_fail (!transaction_has_caller (transaction));
  unanswered = transaction_release_caller (self, transaction);
  g_clear_object (&unanswered);

  /* A request not yet written is withdrawn; one being written is finished. */
  stm32_send_queue_withdraw (self->link->send_queue, transaction->request);
  stm32_send_request_unref (transaction->request);
  g_free (transaction);
}

/* Answers the caller, if one still waits, with @reply or @error (taken). */
static void
transaction_answer (LinkTransactions *self, Transaction *transaction, GBytes *reply, GError *error)
{
  Stm32TransactFunc func = transaction->func;
  gpointer func_data = transaction->func_data;
  g_autoptr (GTask) task = transaction_release_caller (self, transaction);

  if (func != NULL)
    {
      func (reply, error, func_data);
      g_clear_error (&error);
    }
  else if (task == NULL)
    g_clear_error (&error);
  else if (reply != NULL)
    g_task_return_pointer (task, g_bytes_ref (reply), (GDestroyNotify) g_bytes_unref);
  else
    g_task_return_error (task, error);
}

/* The current transaction is done with: the next one may go. */
static void
transactions_end_current (LinkTransactions *self)
{
  Transaction *current = g_steal_pointer (&self->current);

  g_clear_handle_id (&self->current_timer, g_source_remove);
  transaction_free (self, current);
  transactions_issue (self);
}

static gboolean on_grace_over (gpointer user_data);
static gboolean on_heartbeat_unanswered (gpointer user_data);

/* ReplyGrace for an orphan, HeartbeatTimeout for a heartbeat, from now. */
static void
transactions_arm_current_timer (LinkTransactions *self)
{
  const Stm32LinkConfig *config = self->link->config;
  gboolean heartbeat = self->current->heartbeat;

  g_clear_handle_id (&self->current_timer, g_source_remove);
  self->current_timer =
      g_timeout_add (heartbeat ? config->heartbeat_timeout : config->reply_grace,
                     heartbeat ? on_heartbeat_unanswered : on_grace_over, self);
}

/* While receiving is held the answer may well be among what waits unread. */
static gboolean
transactions_current_timer_deferred (LinkTransactions *self)
{
  self->current_timer = 0;
  if (!stm32_link_get_receiving_held (self->link))
    return FALSE;
  transactions_arm_current_timer (self);
  return TRUE;
}

void
stm32_link_transactions_receiving_resumed (Stm32Link *link)
{
  LinkTransactions *self = link->transactions;

  if (self->current_timer != 0)
    transactions_arm_current_timer (self);
}

/* ReplyGrace (or a heartbeat's HeartbeatTimeout) ran out while the board's
 * bytes wait unread (the main loop was busy, or they came after it last
 * polled): the reply may be among them, and giving up now would hand it to
 * the next request (or call a board that answered dead). Like a held receive,
 * the read goes first and the grace starts again, a few times at most, so a
 * board that keeps sending what forms no frame cannot keep the place. */
static gboolean
transactions_read_unread_first (LinkTransactions *self)
{
  Transaction *current = self->current;

  if (current->grace_reads >= STM32_REPLY_GRACE_READS_MAX ||
      !stm32_link_io_has_unread (self->link->io))
    return FALSE;
  current->grace_reads++;
  transactions_arm_current_timer (self);
  return TRUE;
}

static gboolean
on_grace_over (gpointer user_data)
{
  LinkTransactions *self = user_data;
  Stm32Link *link = self->link;

  if (transactions_current_timer_deferred (self) || transactions_read_unread_first (self))
    return G_SOURCE_REMOVE;
  self->unanswered_in_row++;
  LINK_LOG (link, G_LOG_LEVEL_MESSAGE,
            "no reply to a transaction within ReplyGrace (%u ms) after its caller stopped "
            "waiting (%u in a row)",
            link->config->reply_grace, self->unanswered_in_row);
  /* Once is a request the board dropped; again and again, no one can tell
   * which reply answers what any more: only a new connection is clean. */
  if (self->unanswered_in_row >= STM32_OUT_OF_STEP_AFTER)
    {
      stm32_link_end_detected (
          link, STM32_DETECTOR_REPLY_GRACE, STM32_END_REASON_OUT_OF_STEP, STM32_CLOSED_BY_PC, TRUE,
          stm32_link_error_new (link, STM32_END_REASON_OUT_OF_STEP,
                                "%u transactions in a row got no reply, "
                                "even ReplyGrace (%u ms) after their "
                                "callers gave up: replies can no longer "
                                "be matched to requests",
                                self->unanswered_in_row, link->config->reply_grace));
      return G_SOURCE_REMOVE;
    }
  transactions_end_current (self);
  return G_SOURCE_REMOVE;
}

/* Its caller stopped waiting (timeout, cancel, gone) and was told so. A
 * request that never went out is withdrawn; one that did keeps its place,
 * so its reply, when it comes, answers nobody else. */
static void
transaction_abandon (LinkTransactions *self, Transaction *transaction, GError *error)
{
  transaction_answer (self, transaction, NULL, error);
  if (transaction->phase == TRANSACTION_QUEUED)
    {
      g_queue_unlink (&self->queued, &transaction->place);
      transaction_free (self, transaction);
      return;
    }
  if (!transaction_went_out (transaction))
    {
      transactions_end_current (self);
      return;
    }
  transaction->phase = TRANSACTION_ORPHANED;
  transactions_arm_current_timer (self);
}

static gboolean
on_deadline_timer (gpointer user_data)
{
  LinkTransactions *self = user_data;
  gint64 now = g_get_monotonic_time ();
  GSequenceIter *first;

  self->deadline_timer = 0;
  g_object_ref (self->link);
  while (!g_sequence_iter_is_end (first = g_sequence_get_begin_iter (self->deadlines)) &&
         ((Transaction *) g_sequence_get (first))->deadline <= now)
    {
      Transaction *transaction = g_sequence_get (first);

      stm32_link_add_counter (self->link, &self->link->transact_timeouts, 1);
      transaction_abandon (self, transaction,
                           g_error_new (STM32_ERROR, STM32_ERROR_TIMEOUT,
                                        "No reply from link “%s” within %u ms%s", self->link->name,
                                        transaction->timeout_ms,
                                        transaction->phase == TRANSACTION_QUEUED
                                            ? " (not sent: it waited behind earlier transactions)"
                                            : ""));
    }
  transactions_arm_deadline_timer (self);
  g_object_unref (self->link);
  return G_SOURCE_REMOVE;
}

static gboolean
on_cancel_check (gpointer user_data)
{
  Stm32Link *link = user_data;
  LinkTransactions *self = link->transactions;
  g_autoptr (GPtrArray) cancelled = NULL;

  if (self == NULL)
    return G_SOURCE_REMOVE;
  cancelled = g_ptr_array_new ();
  if (self->current != NULL && transaction_has_caller (self->current) &&
      g_cancellable_is_cancelled (self->current->cancellable))
    g_ptr_array_add (cancelled, self->current);
  for (GList *l = self->queued.head; l != NULL; l = l->next)
    {
      Transaction *transaction = l->data;

      if (g_cancellable_is_cancelled (transaction->cancellable))
        g_ptr_array_add (cancelled, transaction);
    }
  /* Queued ones first (tail first): abandoning the current one may issue the next. */
  for (guint i = cancelled->len; i > 0; i--)
    {
      Transaction *transaction = g_ptr_array_index (cancelled, i - 1);
      GError *error = NULL;

      g_cancellable_set_error_if_cancelled (transaction->cancellable, &error);
      transaction_abandon (self, transaction, error);
    }
  return G_SOURCE_REMOVE;
}

/* ---- the queue ---------------------------------------------------------------- */

static void
transactions_issue (LinkTransactions *self)
{
  Transaction *next;

  if (self->current != NULL || g_queue_is_empty (&self->queued))
    return;
  next = g_queue_peek_head (&self->queued);
  g_queue_unlink (&self->queued, &next->place);
  next->phase = TRANSACTION_ISSUED;
  self->current = next;
  stm32_link_enqueue_now (self->link, next->request);
}

void
stm32_link_transactions_issue (Stm32Link *link)
{
  transactions_issue (link->transactions);
}

gboolean
stm32_link_transactions_take_reply (Stm32Link *link, GBytes *frame)
{
  LinkTransactions *self = link->transactions;
  Transaction *current = self->current;

  if (current == NULL || !transaction_went_out (current))
    return FALSE;
  self->unanswered_in_row = 0;
  if (current->heartbeat)
    {
      /* Without HeartbeatReply, whatever comes next answers the heartbeat: a
       * frame the board sends on its own just then cannot be told apart. */
      if (link->config->heartbeat_reply == NULL ||
          g_bytes_equal (frame, link->config->heartbeat_reply))
        transactions_end_current (self);
      /* The board is alive; its answer is received like any frame of its own. */
      return FALSE;
    }
  if (current->phase == TRANSACTION_ORPHANED)
    {
      /* Nobody's reply any more: counted, received like any other, and the
       * request behind it is now free to go. */
      link->attempt->late_replies++;
      stm32_link_add_counter (link, &link->late_replies, 1);
      LINK_LOG (link, G_LOG_LEVEL_DEBUG, "a late reply, after its caller stopped waiting");
      transactions_end_current (self);
      return FALSE;
    }
  stm32_link_count_round_trip (link, g_get_monotonic_time () -
                                          stm32_send_request_get_started (current->request));
  transaction_answer (self, current, frame, NULL);
  transactions_end_current (self);
  return TRUE;
}

gboolean
stm32_link_transactions_is_empty (Stm32Link *link)
{
  return link->transactions->current == NULL && g_queue_is_empty (&link->transactions->queued);
}

/* Every transaction ends with @error_for (a new error each); the queued ones
 * tail first, so that ending one never issues the next. */
static void
transactions_fail_all (LinkTransactions *self, const GError *end_error, const GError *error)
{
  Transaction *transaction;

  while ((transaction = g_queue_peek_tail (&self->queued)) != NULL)
    {
      g_queue_unlink (&self->queued, &transaction->place);
      transaction_answer (self, transaction, NULL,
                          error ? g_error_copy (error) : stm32_link_not_sent_error_new (end_error));
      transaction_free (self, transaction);
    }
  if (self->current != NULL)
    {
      transaction = g_steal_pointer (&self->current);
      g_clear_handle_id (&self->current_timer, g_source_remove);
      if (error != NULL)
        transaction_answer (self, transaction, NULL, g_error_copy (error));
      else
        transaction_answer (self, transaction, NULL,
                            stm32_send_request_get_phase (transaction->request) ==
                                    STM32_SEND_WRITTEN
                                ? no_reply_error_new (end_error)
                                : stm32_link_not_sent_error_new (end_error));
      transaction_free (self, transaction);
    }
  self->unanswered_in_row = 0;
}

void
stm32_link_transactions_fail_all (Stm32Link *link, const GError *end_error)
{
  transactions_fail_all (link->transactions, end_error, NULL);
}

void
stm32_link_transactions_fail_all_with (Stm32Link *link, const GError *error)
{
  transactions_fail_all (link->transactions, NULL, error);
}

static gboolean
on_heartbeat_unanswered (gpointer user_data)
{
  LinkTransactions *self = user_data;
  Stm32Link *link = self->link;

  /* The board's answer may wait unread: a board that answered is alive. */
  if (transactions_current_timer_deferred (self) || transactions_read_unread_first (self))
    return G_SOURCE_REMOVE;
  stm32_link_end_detected (link, STM32_DETECTOR_HEARTBEAT, STM32_END_REASON_DEAD_PEER,
                           STM32_CLOSED_BY_PC, TRUE,
                           stm32_link_error_new (link, STM32_END_REASON_DEAD_PEER,
                                                 "no reply to the heartbeat within %u ms "
                                                 "(HeartbeatTimeout)",
                                                 link->config->heartbeat_timeout));
  return G_SOURCE_REMOVE;
}

void
stm32_link_transactions_heartbeat (Stm32Link *link, GBytes *wire)
{
  LinkTransactions *self = link->transactions;
  Transaction *heartbeat = g_new0 (Transaction, 1);

  g_return_if_fail (self->current == NULL);
  heartbeat->heartbeat = TRUE;
  heartbeat->phase = TRANSACTION_ISSUED;
  heartbeat->request = stm32_send_queue_reserve (link->send_queue, wire, NULL, FALSE);
  self->current = heartbeat;
  transactions_arm_current_timer (self);
  stm32_link_enqueue (link, heartbeat->request);
}

/* ---- the queue's own life -------------------------------------------------------- */

LinkTransactions *
stm32_link_transactions_new (Stm32Link *link)
{
  LinkTransactions *self = g_new0 (LinkTransactions, 1);

  self->link = link;
  self->context = g_main_context_ref_thread_default ();
  self->deadlines = g_sequence_new (NULL);
  g_queue_init (&self->queued);
  return self;
}

/* Every transaction must have ended first (stm32_link_transactions_fail_all). */
void
stm32_link_transactions_free (LinkTransactions *self)
{
  g_warn_if_fail (self->current == NULL && g_queue_is_empty (&self->queued));
  g_clear_handle_id (&self->deadline_timer, g_source_remove);
  g_clear_handle_id (&self->current_timer, g_source_remove);
  g_sequence_free (self->deadlines);
  if (self->idle_watch != NULL)
    watch_free (self, self->idle_watch);
  g_clear_pointer (&self->watches, g_hash_table_unref);
  g_main_context_unref (self->context);
  g_free (self);
}

/* ---- Transact ------------------------------------------------------------------- */

/* Queues a transaction for @task or @func. */
static gboolean
transactions_add (Stm32Link *link, GBytes *request, guint timeout_ms, GCancellable *cancellable,
                  GTask *task, Stm32TransactFunc func, gpointer func_data, GError **error)
{
  LinkTransactions *self = link->transactions;
  g_autoptr (GBytes) wire = NULL;
  Transaction *transaction;

  if (timeout_ms == 0 || timeout_ms > STM32_TRANSACT_TIMEOUT_MAX)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "A transaction's timeout must be 1 to %u ms, not %u", STM32_TRANSACT_TIMEOUT_MAX,
                   timeout_ms);
      return FALSE;
    }
  if (g_queue_get_length (&self->queued) >= STM32_TRANSACT_QUEUE_MAX)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_QUEUE_FULL,
                   "%u transactions already wait on link “%s”; wait for earlier "
                   "ones to finish",
                   STM32_TRANSACT_QUEUE_MAX, link->name);
      return FALSE;
    }
  wire = stm32_link_prepare_frame (link, request, error);
  if (wire == NULL)
    return FALSE;
  transaction = g_new0 (Transaction, 1);
  transaction->phase = TRANSACTION_QUEUED;
  transaction->task = task ? g_object_ref (task) : NULL;
  transaction->func = func;
  transaction->func_data = func_data;
  /* Queued bytes are reserved now, so waiting transactions respect SendQueueMax too. */
  transaction->request = stm32_send_queue_reserve (link->send_queue, wire, NULL, FALSE);
  transaction->timeout_ms = timeout_ms;
  transaction->deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  transaction->serial = ++self->serial;
  transaction->place.data = transaction;
  transaction->timer =
      g_sequence_insert_sorted (self->deadlines, transaction, compare_deadlines, NULL);
  transactions_arm_deadline_timer (self);
  if (cancellable != NULL)
    {
      transaction->cancellable = g_object_ref (cancellable);
      transactions_watch (self, cancellable);
    }
  g_queue_push_tail_link (&self->queued, &transaction->place);
  transactions_issue (self);
  return TRUE;
}

void
stm32_link_transact_async (Stm32Link *link, GBytes *request, guint timeout_ms,
                           GCancellable *cancellable, GAsyncReadyCallback callback,
                           gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_LINK (link));
  g_return_if_fail (request != NULL);
  task = g_task_new (link, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_link_transact_async);
  if (!transactions_add (link, request, timeout_ms, cancellable, task, NULL, NULL, &error))
    g_task_return_error (task, error);
}

gboolean
stm32_link_transact_start (Stm32Link *link, GBytes *request, guint timeout_ms,
                           GCancellable *cancellable, Stm32TransactFunc func, gpointer user_data,
                           GError **error)
{
  g_return_val_if_fail (STM32_IS_LINK (link), FALSE);
  g_return_val_if_fail (request != NULL, FALSE);
  g_return_val_if_fail (func != NULL, FALSE);
  return transactions_add (link, request, timeout_ms, cancellable, NULL, func, user_data, error);
}

GBytes *
stm32_link_transact_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
