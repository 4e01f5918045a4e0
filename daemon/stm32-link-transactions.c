/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transactions of a Stm32Link, and every rule that decides which frame
 * answers which request. Frames carry no request id, so replies are paired by
 * order alone: transactions go out one at a time, and the first frame after a
 * request started being written is its reply.
 */
#include "stm32-link-private.h"

#include "stm32-error.h"

typedef struct
{
  Stm32Link *link;
  GTask *task;               /* NULL once answered early: an orphan awaiting its reply */
  Stm32SendRequest *request; /* its phase is how far the request got */
  guint timeout_ms;
  guint timer;
  GSource *cancelled; /* dispatches the caller's cancellation from the main loop */
} Transaction;

/* The request started being written: the next frame is the reply. */
static gboolean
transaction_is_armed (const Transaction *transaction)
{
  Stm32SendPhase phase = stm32_send_request_get_phase (transaction->request);

  return phase == STM32_SEND_WRITING || phase == STM32_SEND_WRITTEN;
}

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

void
stm32_link_transactions_issue (Stm32Link *self)
{
  Transaction *head = g_queue_peek_head (&self->transactions);

  /* While a heartbeat waits for its answer, the next frame is that answer,
   * not a transaction's reply: the transaction goes out after it. */
  if (stm32_link_watchdog_awaits_heartbeat (self))
    return;
  if (head != NULL && stm32_send_request_get_phase (head->request) == STM32_SEND_RESERVED)
    stm32_link_enqueue (self, head->request);
}

/* Completes @transaction with @reply or @error (taken) and starts the next one. */
static void
transaction_finish (Stm32Link *self, Transaction *transaction, GBytes *reply, GError *error)
{
  gboolean was_head = g_queue_peek_head (&self->transactions) == transaction;

  g_queue_remove (&self->transactions, transaction);
  g_clear_handle_id (&transaction->timer, g_source_remove);
  if (transaction->cancelled)
    {
      g_source_destroy (transaction->cancelled);
      g_clear_pointer (&transaction->cancelled, g_source_unref);
    }
  /* A request not yet written is withdrawn; one being written is finished. */
  stm32_send_queue_withdraw (self->send_queue, transaction->request);
  g_clear_pointer (&transaction->request, stm32_send_request_unref);
  if (transaction->task == NULL)
    g_clear_error (&error);
  else if (reply)
    g_task_return_pointer (transaction->task, g_bytes_ref (reply), (GDestroyNotify) g_bytes_unref);
  else
    g_task_return_error (transaction->task, error);
  g_clear_object (&transaction->task);
  g_free (transaction);
  if (was_head)
    stm32_link_transactions_issue (self);
}

gboolean
stm32_link_transactions_take_reply (Stm32Link *self, GBytes *frame)
{
  Transaction *transaction = g_queue_peek_head (&self->transactions);
  gboolean abandoned;

  if (transaction == NULL || !transaction_is_armed (transaction))
    return FALSE;
  /* A reply is its caller's: broadcast, it would reach every client on the
   * bus, the caller too, mixed with what the board says on its own. One
   * whose caller gave up is nobody's, and is received like any other. */
  abandoned = transaction->task == NULL;
  transaction_finish (self, transaction, frame, NULL);
  return !abandoned;
}

gboolean
stm32_link_transactions_is_empty (Stm32Link *self)
{
  return g_queue_is_empty (&self->transactions);
}

void
stm32_link_transactions_fail_all (Stm32Link *self, const GError *end_error)
{
  g_autoptr (GError) not_sent = stm32_link_not_sent_error_new (end_error);
  Transaction *transaction;

  while ((transaction = g_queue_peek_head (&self->transactions)) != NULL)
    transaction_finish (self, transaction, NULL,
                        stm32_send_request_get_phase (transaction->request) == STM32_SEND_WRITTEN
                            ? no_reply_error_new (end_error)
                            : g_error_copy (not_sent));
}

void
stm32_link_transactions_fail_all_with (Stm32Link *self, const GError *error)
{
  Transaction *transaction;

  while ((transaction = g_queue_peek_tail (&self->transactions)) != NULL)
    transaction_finish (self, transaction, NULL, g_error_copy (error));
}

static gboolean
on_transaction_timeout (gpointer user_data)
{
  Transaction *transaction = user_data;
  Stm32Link *self = transaction->link;

  transaction->timer = 0;
  transaction_finish (self, transaction, NULL,
                      g_error_new (STM32_ERROR, STM32_ERROR_TIMEOUT,
                                   "No reply from link “%s” within %u ms", self->name,
                                   transaction->timeout_ms));
  return G_SOURCE_REMOVE;
}

/* The caller gave up (or left the bus). A request not yet written is
 * withdrawn; one already written will still be answered by the board, so the
 * transaction stays queued without its caller and takes that reply, keeping
 * later transactions matched to their own replies. */
static gboolean
on_transaction_cancelled (GCancellable *cancellable, gpointer user_data)
{
  Transaction *transaction = user_data;
  g_autoptr (GTask) task = g_steal_pointer (&transaction->task);

  g_clear_pointer (&transaction->cancelled, g_source_unref);
  g_task_return_error_if_cancelled (task);
  if (!transaction_is_armed (transaction))
    transaction_finish (transaction->link, transaction, NULL, NULL);
  return G_SOURCE_REMOVE;
}

void
stm32_link_transact_async (Stm32Link *self, GBytes *request, guint timeout_ms,
                           GCancellable *cancellable, GAsyncReadyCallback callback,
                           gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr (GBytes) wire = NULL;
  Transaction *transaction;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (request != NULL);
  g_task_set_source_tag (task, stm32_link_transact_async);
  if (timeout_ms == 0)
    {
      g_task_return_new_error (task, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                               "A transaction needs a timeout of at least 1 ms");
      return;
    }
  wire = stm32_link_prepare_frame (self, request, &error);
  if (wire == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  transaction = g_new0 (Transaction, 1);
  transaction->link = self;
  transaction->task = g_steal_pointer (&task);
  /* Queued bytes are reserved now, so waiting transactions respect SendQueueMax too. */
  transaction->request = stm32_send_queue_reserve (self->send_queue, wire, NULL, FALSE);
  transaction->timeout_ms = timeout_ms;
  transaction->timer = g_timeout_add (timeout_ms, on_transaction_timeout, transaction);
  if (cancellable != NULL)
    {
      transaction->cancelled = g_cancellable_source_new (cancellable);
      g_source_set_callback (transaction->cancelled, G_SOURCE_FUNC (on_transaction_cancelled),
                             transaction, NULL);
      g_source_attach (transaction->cancelled, g_main_context_get_thread_default ());
    }
  g_queue_push_tail (&self->transactions, transaction);
  stm32_link_transactions_issue (self);
}

GBytes *
stm32_link_transact_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
