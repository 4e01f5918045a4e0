/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stm32SendQueue on its own, against a fake acknowledgement source: the
 * bound, the order, and that a Send is answered only once acknowledged. */
#include "stm32-defaults.h"
#include "stm32-send-queue.h"
#include "test-util.h"

#define WAIT_MS 2000

typedef struct
{
  Stm32SendQueue *queue;
  gboolean known;       /* whether the fake socket can say what was acknowledged */
  guint64 acknowledged; /* bytes the fake board acknowledged */
  GString *confirmed;   /* "bytes,frames;" per confirmation, in order */
  guint looks;          /* times the queue asked what was acknowledged */
  GPtrArray *requests;  /* enqueue()'s, held as their caller would hold them */
} Fixture;

/* What one request's caller got. */
typedef struct
{
  Fixture *fixture;
  gboolean done;
  gboolean ok;
  GError *error;
  guint confirmations_then; /* confirmations counted when this answer came */
} Answer;

static gboolean
fake_acknowledged (gpointer user_data, guint64 *acknowledged)
{
  Fixture *fixture = user_data;

  fixture->looks++;
  *acknowledged = fixture->acknowledged;
  return fixture->known;
}

static void
fake_confirmed (gpointer user_data, guint64 size, guint frames)
{
  Fixture *fixture = user_data;

  g_string_append_printf (fixture->confirmed, "%" G_GUINT64_FORMAT ",%u;", size, frames);
}

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  fixture->queue = stm32_send_queue_new (10, fake_acknowledged, fake_confirmed, fixture);
  fixture->known = TRUE;
  fixture->confirmed = g_string_new (NULL);
  fixture->requests = g_ptr_array_new_with_free_func ((GDestroyNotify) stm32_send_request_unref);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  g_ptr_array_unref (fixture->requests);
  stm32_send_queue_free (fixture->queue);
  g_string_free (fixture->confirmed, TRUE);
}

static guint
count_confirmations (Fixture *fixture)
{
  guint n = 0;

  for (const char *p = fixture->confirmed->str; *p; p++)
    n += *p == ';';
  return n;
}

static void
on_answered (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Answer *answer = user_data;

  answer->ok = g_task_propagate_boolean (G_TASK (result), &answer->error);
  answer->confirmations_then = count_confirmations (answer->fixture);
  answer->done = TRUE;
}

static Stm32SendRequest *
reserve (Fixture *fixture, const char *text, gboolean raw, GCancellable *cancellable,
         Answer *answer)
{
  g_autoptr (GBytes) wire = g_bytes_new (text, strlen (text));
  g_autoptr (GTask) task = NULL;

  if (answer != NULL)
    {
      answer->fixture = fixture;
      task = g_task_new (NULL, cancellable, on_answered, answer);
    }
  return stm32_send_queue_reserve (fixture->queue, wire, task, raw);
}

/* Reserved and queued at once, as the link does unless a test looks in
 * between. The fixture keeps the reference, so the request may be looked at
 * after the queue let go of it. */
static Stm32SendRequest *
enqueue (Fixture *fixture, const char *text, gboolean raw, GCancellable *cancellable,
         Answer *answer)
{
  Stm32SendRequest *request = reserve (fixture, text, raw, cancellable, answer);

  g_ptr_array_add (fixture->requests, request);
  stm32_send_queue_push (fixture->queue, request);
  return request;
}

static void
assert_next (Fixture *fixture, const char *text)
{
  GBytes *next = stm32_send_queue_start_next (fixture->queue);
  gsize size = 0;
  const char *data;

  g_assert_nonnull (next);
  data = g_bytes_get_data (next, &size);
  g_assert_cmpmem (data, size, text, strlen (text));
  g_assert_true (stm32_send_queue_is_writing (fixture->queue));
}

/* Room is reserved when a request is made and given back once it is written
 * or withdrawn; requests go out one at a time, in order. */
static void
test_bound_and_order (Fixture *fixture, gconstpointer data)
{
  g_autoptr (Stm32SendRequest) a = reserve (fixture, "aaaa", FALSE, NULL, NULL);
  g_autoptr (Stm32SendRequest) b = reserve (fixture, "bbbb", FALSE, NULL, NULL);
  g_autoptr (Stm32SendRequest) c = NULL;

  g_assert_cmpuint (stm32_send_queue_get_reserved (fixture->queue), ==, 8);
  g_assert_true (stm32_send_queue_has_room (fixture->queue, 2));
  g_assert_false (stm32_send_queue_has_room (fixture->queue, 3));
  g_assert_null (stm32_send_queue_start_next (fixture->queue));

  stm32_send_queue_push (fixture->queue, a);
  stm32_send_queue_push (fixture->queue, b);
  g_assert_cmpint (stm32_send_request_get_phase (b), ==, STM32_SEND_QUEUED);
  assert_next (fixture, "aaaa");
  g_assert_cmpint (stm32_send_request_get_phase (a), ==, STM32_SEND_WRITING);
  /* One write at a time. */
  g_assert_null (stm32_send_queue_start_next (fixture->queue));

  stm32_send_queue_written (fixture->queue, 4);
  g_assert_cmpint (stm32_send_request_get_phase (a), ==, STM32_SEND_WRITTEN);
  g_assert_cmpuint (stm32_send_queue_get_reserved (fixture->queue), ==, 4);

  /* Withdrawn before it started: gone, and its room given back. */
  stm32_send_queue_withdraw (fixture->queue, b);
  g_assert_cmpint (stm32_send_request_get_phase (b), ==, STM32_SEND_UNSENT);
  g_assert_cmpuint (stm32_send_queue_get_reserved (fixture->queue), ==, 0);
  g_assert_true (stm32_send_queue_is_empty (fixture->queue));

  /* Being written: finished, never withdrawn (half a frame would corrupt the stream). */
  c = reserve (fixture, "cc", FALSE, NULL, NULL);
  stm32_send_queue_push (fixture->queue, c);
  assert_next (fixture, "cc");
  stm32_send_queue_withdraw (fixture->queue, c);
  g_assert_cmpint (stm32_send_request_get_phase (c), ==, STM32_SEND_WRITING);
  stm32_send_queue_written (fixture->queue, 6);
  /* Both acknowledged at one look: counted once, together. */
  fixture->acknowledged = 6;
  stm32_send_queue_confirm (fixture->queue);
  g_assert_cmpstr (fixture->confirmed->str, ==, "6,2;");
}

/* Written is not sent: the caller hears only once the board acknowledged the
 * last byte, counted first, whether a reply brought the news or the queue's
 * own polling found it. */
static void
test_answered_on_acknowledgement (Fixture *fixture, gconstpointer data)
{
  Answer first = { 0 }, second = { 0 };
  enqueue (fixture, "abc", FALSE, NULL, &first);
  enqueue (fixture, "de", FALSE, NULL, &second);

  assert_next (fixture, "abc");
  stm32_send_queue_written (fixture->queue, 3);
  assert_next (fixture, "de");
  stm32_send_queue_written (fixture->queue, 5);

  /* Nothing acknowledged, or no way to know: nobody is answered. */
  fixture->known = FALSE;
  fixture->acknowledged = 5;
  stm32_send_queue_confirm (fixture->queue);
  fixture->known = TRUE;
  fixture->acknowledged = 2;
  stm32_send_queue_confirm (fixture->queue);
  g_assert_cmpstr (fixture->confirmed->str, ==, "");

  /* The first frame's last byte: the first caller only, after its count. */
  fixture->acknowledged = 3;
  stm32_send_queue_confirm (fixture->queue);
  stm32_test_wait_until (first.done, WAIT_MS);
  g_assert_true (first.ok);
  g_assert_cmpuint (first.confirmations_then, ==, 1);
  g_assert_false (second.done);

  /* No call this time: the queue's polling finds the ACK. */
  fixture->acknowledged = 5;
  stm32_test_wait_until (second.done, WAIT_MS);
  g_assert_true (second.ok);
  g_assert_cmpstr (fixture->confirmed->str, ==, "3,1;2,1;");
}

static void
on_answered_look_again (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Answer *answer = user_data;

  on_answered (source, result, user_data);
  /* As a caller that sends again at once would make the link look. */
  stm32_send_queue_confirm (answer->fixture->queue);
}

/* Acknowledged together, answered one by one: a caller that makes the queue
 * look again from its callback does not get the others counted twice, nor
 * answered twice. */
static void
test_confirm_reentered (Fixture *fixture, gconstpointer data)
{
  Answer first = { .fixture = fixture }, second = { 0 };
  g_autoptr (GTask) task = g_task_new (NULL, NULL, on_answered_look_again, &first);
  g_autoptr (GBytes) wire = g_bytes_new ("ab", 2);
  g_autoptr (Stm32SendRequest) a = stm32_send_queue_reserve (fixture->queue, wire, task, FALSE);

  g_clear_object (&task);
  stm32_send_queue_push (fixture->queue, a);
  enqueue (fixture, "c", FALSE, NULL, &second);
  assert_next (fixture, "ab");
  stm32_send_queue_written (fixture->queue, 2);
  assert_next (fixture, "c");
  stm32_send_queue_written (fixture->queue, 3);
  /* Answered from a later turn of the main loop than the tasks were made in,
   * as the board's ACK always is, so the callbacks run at once. */
  fixture->acknowledged = 3;
  stm32_test_wait_until (first.done && second.done, WAIT_MS);
  g_assert_true (first.ok && second.ok);
  g_assert_cmpstr (fixture->confirmed->str, ==, "3,2;");
}

/* A raw stream has a socket's semantics: written is done for the caller,
 * while the byte counters still wait for the board. */
static void
test_raw_answered_on_write (Fixture *fixture, gconstpointer data)
{
  Answer answer = { 0 };

  enqueue (fixture, "raw", TRUE, NULL, &answer);
  assert_next (fixture, "raw");
  stm32_send_queue_written (fixture->queue, 3);
  stm32_test_wait_until (answer.done, WAIT_MS);
  g_assert_true (answer.ok);
  g_assert_cmpstr (fixture->confirmed->str, ==, "");
  fixture->acknowledged = 3;
  stm32_send_queue_confirm (fixture->queue);
  g_assert_cmpstr (fixture->confirmed->str, ==, "3,0;");
}

/* Cancelled before it started: dropped, its caller told so, its room back. */
static void
test_cancelled_before_start (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  Answer cancelled = { 0 };
  Stm32SendRequest *a = enqueue (fixture, "aa", FALSE, cancellable, &cancelled);
  enqueue (fixture, "bb", FALSE, NULL, NULL);

  g_cancellable_cancel (cancellable);
  stm32_send_queue_drop_cancelled (fixture->queue);
  stm32_test_wait_until (cancelled.done, WAIT_MS);
  g_assert_error (cancelled.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&cancelled.error);
  g_assert_cmpint (stm32_send_request_get_phase (a), ==, STM32_SEND_UNSENT);
  g_assert_cmpuint (stm32_send_queue_get_reserved (fixture->queue), ==, 2);
  assert_next (fixture, "bb");
}

/* The connection ended: what was acknowledged was sent; what was written but
 * not acknowledged, queued, or half written is answered with why not — the
 * one being written by its own write, unless the link is going away. */
static void
test_connection_ends (Fixture *fixture, gconstpointer data)
{
  Answer acked = { 0 }, unacked = { 0 }, writing = { 0 }, queued = { 0 };
  g_autoptr (GError) end = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "reset");

  enqueue (fixture, "a", FALSE, NULL, &acked);
  enqueue (fixture, "b", FALSE, NULL, &unacked);
  enqueue (fixture, "c", FALSE, NULL, &writing);
  enqueue (fixture, "d", FALSE, NULL, &queued);
  assert_next (fixture, "a");
  stm32_send_queue_written (fixture->queue, 1);
  assert_next (fixture, "b");
  stm32_send_queue_written (fixture->queue, 2);
  assert_next (fixture, "c");
  fixture->acknowledged = 1;

  stm32_send_queue_fail_unconfirmed (fixture->queue, end);
  stm32_send_queue_fail_queued (fixture->queue, end, FALSE);
  stm32_test_wait_until (acked.done && unacked.done && queued.done, WAIT_MS);
  g_assert_true (acked.ok);
  g_assert_error (unacked.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_true (g_str_has_prefix (unacked.error->message, "Not delivered"));
  g_assert_error (queued.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_false (writing.done);
  g_assert_true (stm32_send_queue_is_writing (fixture->queue));

  stm32_send_queue_unsent (fixture->queue, g_error_copy (end));
  stm32_test_wait_until (writing.done, WAIT_MS);
  g_assert_error (writing.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_cmpuint (stm32_send_queue_get_reserved (fixture->queue), ==, 0);
  g_assert_cmpstr (fixture->confirmed->str, ==, "1,1;");
  g_clear_error (&unacked.error);
  g_clear_error (&queued.error);
  g_clear_error (&writing.error);
}

static void
assert_vector (const GOutputVector *vector, const char *text)
{
  g_assert_cmpmem (vector->buffer, vector->size, text, strlen (text));
}

/* Requests written together with one system call: each whole one counts as
 * written at its own last byte, so each is answered only once the board
 * acknowledged that byte; where the kernel stopped in the middle of one, it
 * alone stays being written, and those after it wait their turn again. */
static void
test_batch_partly_taken (Fixture *fixture, gconstpointer data)
{
  Answer first = { 0 }, second = { 0 }, third = { 0 };
  Stm32SendRequest *a = enqueue (fixture, "aaa", FALSE, NULL, &first);
  Stm32SendRequest *b = enqueue (fixture, "bb", FALSE, NULL, &second);
  Stm32SendRequest *c = enqueue (fixture, "ccc", FALSE, NULL, &third);
  GOutputVector vectors[4];
  gsize offset = 0;
  GBytes *partial;

  /* The byte bound keeps the third out; the first always goes. */
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 4, 5), ==, 2);
  assert_vector (&vectors[0], "aaa");
  assert_vector (&vectors[1], "bb");
  g_assert_cmpint (stm32_send_request_get_phase (b), ==, STM32_SEND_WRITING);
  g_assert_cmpint (stm32_send_request_get_phase (c), ==, STM32_SEND_QUEUED);
  /* Something is being written: no second batch. */
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 4, 100), ==, 0);

  /* The kernel took the first and one byte of the second: 7 bytes on the
   * connection before this batch, 11 after. */
  fixture->acknowledged = 10;
  partial = stm32_send_queue_batch_taken (fixture->queue, 4, 11, &offset);
  g_assert_nonnull (partial);
  g_assert_cmpmem (g_bytes_get_data (partial, NULL), g_bytes_get_size (partial), "bb", 2);
  g_assert_cmpuint (offset, ==, 1);
  g_assert_cmpint (stm32_send_request_get_phase (a), ==, STM32_SEND_WRITTEN);
  g_assert_cmpint (stm32_send_request_get_phase (b), ==, STM32_SEND_WRITING);
  g_assert_cmpuint (stm32_send_queue_get_reserved (fixture->queue), ==, 5);
  stm32_test_wait_until (first.done, WAIT_MS);
  g_assert_true (first.ok);
  g_assert_cmpstr (fixture->confirmed->str, ==, "3,1;");

  /* Its last byte follows; the next batch starts after it. */
  stm32_send_queue_written (fixture->queue, 12);
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 4, 100), ==, 1);
  assert_vector (&vectors[0], "ccc");
  g_assert_null (stm32_send_queue_batch_taken (fixture->queue, 3, 15, &offset));
  g_assert_false (second.done);
  g_assert_false (third.done);
  fixture->acknowledged = 12;
  stm32_test_wait_until (second.done, WAIT_MS);
  g_assert_false (third.done);
  fixture->acknowledged = 15;
  stm32_test_wait_until (third.done, WAIT_MS);
  g_assert_true (second.ok && third.ok);
  g_assert_cmpstr (fixture->confirmed->str, ==, "3,1;2,1;3,1;");
  g_assert_cmpuint (stm32_send_queue_get_reserved (fixture->queue), ==, 0);
}

/* Nothing taken at once: the head alone goes on being written, and a request
 * whose caller cancelled is not written with the others. */
static void
test_batch_none_taken (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  Answer cancelled = { 0 };
  Stm32SendRequest *a = enqueue (fixture, "a", FALSE, NULL, NULL);
  Stm32SendRequest *b = enqueue (fixture, "b", FALSE, NULL, NULL);
  enqueue (fixture, "c", FALSE, cancellable, &cancelled);
  enqueue (fixture, "d", FALSE, NULL, NULL);
  GOutputVector vectors[4];
  gsize offset = 99;
  GBytes *partial;

  g_cancellable_cancel (cancellable);
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 4, 100), ==, 2);
  partial = stm32_send_queue_batch_taken (fixture->queue, 0, 0, &offset);
  g_assert_nonnull (partial);
  g_assert_cmpmem (g_bytes_get_data (partial, NULL), g_bytes_get_size (partial), "a", 1);
  g_assert_cmpuint (offset, ==, 0);
  g_assert_cmpint (stm32_send_request_get_phase (a), ==, STM32_SEND_WRITING);
  g_assert_cmpint (stm32_send_request_get_phase (b), ==, STM32_SEND_QUEUED);
  g_assert_cmpstr (fixture->confirmed->str, ==, "");

  stm32_send_queue_written (fixture->queue, 1);
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 4, 100), ==, 1);
  assert_vector (&vectors[0], "b");
  g_assert_null (stm32_send_queue_batch_taken (fixture->queue, 1, 2, &offset));
  stm32_send_queue_drop_cancelled (fixture->queue);
  stm32_test_wait_until (cancelled.done, WAIT_MS);
  g_assert_error (cancelled.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&cancelled.error);
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 4, 100), ==, 1);
  assert_vector (&vectors[0], "d");
}

/* A request no caller waits on (a transaction's, whose caller waits for
 * the reply) is not looked at for every write, nor by a 1 ms timer, nor is
 * a look wanted for it when data comes: it is counted by a timer at the
 * slowest pace, which many transactions share, or by the look for a Send. */
static void
test_unawaited_counted_later (Fixture *fixture, gconstpointer data)
{
  Answer sent = { 0 };
  GOutputVector vectors[2];
  gint64 quiet_until;
  gsize offset = 0;

  enqueue (fixture, "aa", FALSE, NULL, NULL);
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 2, 100), ==, 1);
  g_assert_null (stm32_send_queue_batch_taken (fixture->queue, 2, 2, &offset));
  fixture->acknowledged = 2;
  g_assert_false (stm32_send_queue_awaits_acknowledgement (fixture->queue));
  /* Half the slowest pace: a timer never fires early, however loaded the machine. */
  quiet_until = g_get_monotonic_time () + STM32_CONFIRM_POLL_MAX_MS / 2 * 1000;
  while (g_get_monotonic_time () < quiet_until)
    stm32_test_iterate (quiet_until);
  g_assert_cmpuint (fixture->looks, ==, 0);
  stm32_test_wait_until (fixture->looks > 0, WAIT_MS);
  g_assert_cmpstr (fixture->confirmed->str, ==, "2,1;");

  /* Behind a Send: counted by the look its caller waits for. */
  enqueue (fixture, "bbb", FALSE, NULL, NULL);
  enqueue (fixture, "c", FALSE, NULL, &sent);
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 1, 100), ==, 1);
  g_assert_null (stm32_send_queue_batch_taken (fixture->queue, 3, 5, &offset));
  g_assert_false (stm32_send_queue_awaits_acknowledgement (fixture->queue));
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 1, 100), ==, 1);
  fixture->acknowledged = 6;
  g_assert_null (stm32_send_queue_batch_taken (fixture->queue, 1, 6, &offset));
  g_assert_cmpstr (fixture->confirmed->str, ==, "2,1;4,2;");
  g_assert_false (stm32_send_queue_awaits_acknowledgement (fixture->queue));
  stm32_test_wait_until (sent.done, WAIT_MS);
  g_assert_true (sent.ok);
}

/* A Send behind transactions' requests: the queue knows a caller waits from
 * then on (so the link looks when data comes), and the look that answers it
 * counts the requests before it too. */
static void
test_awaited_behind_unawaited (Fixture *fixture, gconstpointer data)
{
  Answer sent = { 0 };
  GOutputVector vectors[1];
  gsize offset = 0;

  enqueue (fixture, "aa", FALSE, NULL, NULL);
  enqueue (fixture, "b", FALSE, NULL, &sent);
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 1, 100), ==, 1);
  g_assert_null (stm32_send_queue_batch_taken (fixture->queue, 2, 2, &offset));
  g_assert_cmpuint (stm32_send_queue_start_batch (fixture->queue, vectors, 1, 100), ==, 1);
  g_assert_null (stm32_send_queue_batch_taken (fixture->queue, 1, 3, &offset));
  g_assert_true (stm32_send_queue_awaits_acknowledgement (fixture->queue));
  g_assert_cmpuint (fixture->looks, ==, 1);
  /* Not acknowledged yet: looked at again. */
  fixture->acknowledged = 3;
  stm32_test_wait_until (sent.done, WAIT_MS);
  g_assert_true (sent.ok);
  g_assert_cmpstr (fixture->confirmed->str, ==, "3,2;");
  g_assert_false (stm32_send_queue_awaits_acknowledgement (fixture->queue));
}

static void
add_test (const char *path, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, NULL, fixture_set_up, test, fixture_tear_down);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  add_test ("/send-queue/bound-and-order", test_bound_and_order);
  add_test ("/send-queue/answered-on-acknowledgement", test_answered_on_acknowledgement);
  add_test ("/send-queue/confirm-reentered", test_confirm_reentered);
  add_test ("/send-queue/raw-answered-on-write", test_raw_answered_on_write);
  add_test ("/send-queue/cancelled-before-start", test_cancelled_before_start);
  add_test ("/send-queue/batch-partly-taken", test_batch_partly_taken);
  add_test ("/send-queue/batch-none-taken", test_batch_none_taken);
  add_test ("/send-queue/unawaited-counted-later", test_unawaited_counted_later);
  add_test ("/send-queue/awaited-behind-unawaited", test_awaited_behind_unawaited);
  add_test ("/send-queue/connection-ends", test_connection_ends);
  return g_test_run ();
}
