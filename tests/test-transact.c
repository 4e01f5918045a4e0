/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which reply answers which request, against boards that answer late, never,
 * or on their own: every caller gets its own request's reply or an error,
 * never another's. The board is the simulator with delay marks ("~MS " makes
 * it answer MS ms late, "~- " never), echoing every frame.
 */
#include "link-harness.h"
#include "sim-harness.h"
#include "stm32-defaults.h"
#include "stm32-error.h"
#include "test-util.h"

#define WAIT_MS STM32_TEST_LINK_WAIT_MS

typedef struct
{
  Stm32Sim *sim;
  Stm32LinkConfig *config;
  Stm32Link *link;
  GPtrArray *received; /* frames the link emitted as "received", as strings */
} Fixture;

static void
on_received (Stm32Link *link, GBytes *frame, Fixture *fixture)
{
  gsize size;
  const char *data = g_bytes_get_data (frame, &size);

  g_ptr_array_add (fixture->received, g_strndup (data, size));
}

static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->config = stm32_link_config_new ("127.0.0.1", stm32_sim_get_port (fixture->sim));
  fixture->config->autoconnect = FALSE;
  fixture->config->close_timeout = 200;
  fixture->config->retry_min = 50;
  fixture->config->retry_max = 200;
  fixture->received = g_ptr_array_new_with_free_func (g_free);
}

/* The link, made from the config the test tuned, connected. */
static Stm32Link *
fixture_connect (Fixture *fixture)
{
  fixture->link = stm32_link_new ("transact", fixture->config);
  g_signal_connect (fixture->link, "received", G_CALLBACK (on_received), fixture);
  g_assert_true (stm32_test_link_connect (fixture->link, NULL));
  return fixture->link;
}

static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  if (fixture->link != NULL)
    {
      stm32_test_link_disconnect (fixture->link);
      g_object_unref (fixture->link);
    }
  stm32_sim_stop (fixture->sim);
  stm32_link_config_free (fixture->config);
  g_ptr_array_unref (fixture->received);
}

/* One transaction in flight, its result kept for the test to look at. */
typedef struct
{
  GAsyncResult *result;
  char *request;
} Call;

static void
call_start (Stm32Link *link, Call *call, const char *request, guint timeout_ms,
            GCancellable *cancellable)
{
  g_autoptr (GBytes) bytes = g_bytes_new (request, strlen (request));

  call->request = g_strdup (request);
  stm32_link_transact_async (link, bytes, timeout_ms, cancellable, stm32_test_store_result,
                             &call->result);
}

/* Waits for the call's answer: the reply as a string, or NULL with @error. */
static char *
call_finish (Stm32Link *link, Call *call, GError **error)
{
  g_autoptr (GBytes) reply = NULL;
  gsize size;
  const char *data;

  stm32_test_wait_until (call->result != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, call->result, error);
  g_clear_object (&call->result);
  g_clear_pointer (&call->request, g_free);
  if (reply == NULL)
    return NULL;
  data = g_bytes_get_data (reply, &size);
  return g_strndup (data, size);
}

static gboolean
received_contains (Fixture *fixture, const char *frame)
{
  for (guint i = 0; i < fixture->received->len; i++)
    if (g_str_equal (fixture->received->pdata[i], frame))
      return TRUE;
  return FALSE;
}

/* Counts answers in the guint @user_data points to. */
static void
on_answer_counted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  guint *count = user_data;

  (*count)++;
}

static guint64
late_replies (Stm32Link *link)
{
  guint64 n = 0;

  g_object_get (link, "late-replies", &n, NULL);
  return n;
}

/* The first report: a reply slower than its caller's timeout went to
 * the next caller. It is the late request's, and no one else's. */
static void
test_slow_reply (Fixture *fixture, gconstpointer options)
{
  Stm32Link *link = fixture_connect (fixture);
  g_autoptr (GError) error = NULL;
  g_autofree char *slow = NULL, *fast = NULL;
  g_autoptr (Stm32HistoryEntry) entry = NULL;

  slow = stm32_test_link_transact (link, "~500 slow-1", 200, &error);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_assert_null (slow);
  g_clear_error (&error);
  fast = stm32_test_link_transact (link, "fast-0", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fast, ==, "fast-0");

  /* The late reply was nobody's: received, and counted. */
  g_assert_cmpuint (fixture->received->len, ==, 1);
  g_assert_cmpstr (fixture->received->pdata[0], ==, "~500 slow-1");
  g_assert_cmpuint (late_replies (link), ==, 1);
  stm32_test_link_disconnect (link);
  entry = stm32_test_link_last_history_entry (link);
  g_assert_cmpuint (entry->late_replies, ==, 1);
}

/* A request whose caller ran out of time while it waited behind another is
 * withdrawn: the board never sees it, and so never answers it. */
static void
test_queued_timeout_not_sent (Fixture *fixture, gconstpointer options)
{
  Stm32Link *link = fixture_connect (fixture);
  Call first = { 0 }, second = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL, *next = NULL;
  g_autoptr (JsonObject) frame = NULL;

  call_start (link, &first, "~300 first", 2000, NULL);
  call_start (link, &second, "second", 100, NULL);
  g_assert_null (call_finish (link, &second, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_assert_nonnull (strstr (error->message, "not sent"));
  g_clear_error (&error);
  reply = call_finish (link, &first, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "~300 first");

  next = stm32_test_link_transact (link, "third", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (next, ==, "third");
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "~300 first");
  g_clear_pointer (&frame, json_object_unref);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "third");
  g_assert_cmpuint (fixture->received->len, ==, 0);
}

/* A caller that asks for the longest timeout and then leaves holds the link
 * no longer than ReplyGrace; one that asks for more is refused. */
static void
test_abandoned_longest_timeout (Fixture *fixture, gconstpointer options)
{
  Stm32Link *link = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  Call abandoned = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;
  gint64 cancelled_at;

  fixture->config->reply_grace = 300;
  link = fixture_connect (fixture);
  reply = stm32_test_link_transact (link, "x", STM32_TRANSACT_TIMEOUT_MAX + 1, &error);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  call_start (link, &abandoned, "~- never", STM32_TRANSACT_TIMEOUT_MAX, cancellable);
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  g_cancellable_cancel (cancellable);
  cancelled_at = g_get_monotonic_time ();
  g_assert_null (call_finish (link, &abandoned, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  reply = stm32_test_link_transact (link, "after", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "after");
  /* It waited out the grace (its request was on the board); that it waited no
   * longer is the reply having come within its own 5000 ms, not the 10 minutes
   * of the abandoned one (no upper bound on wall time: ASan on 2 CPUs). */
  g_assert_cmpint (g_get_monotonic_time () - cancelled_at, >=, 300 * 1000);
}

/* Request after request that the board never answers: after the third, the
 * link no longer trusts the pairing and starts a clean connection. */
static void
test_out_of_step (Fixture *fixture, gconstpointer options)
{
  Stm32Link *link = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32HistoryEntry) entry = NULL;
  g_autofree char *reply = NULL;

  /* Each caller's timeout outlasts the grace of the one before it, so each
   * request goes out, and each caller gives up on it. */
  fixture->config->reply_grace = 20;
  link = fixture_connect (fixture);
  for (guint i = 0; i < STM32_OUT_OF_STEP_AFTER; i++)
    {
      g_autofree char *lost = stm32_test_link_transact (link, "~- lost", 100, &error);

      g_assert_null (lost);
      g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
      g_clear_error (&error);
    }
  stm32_test_wait_until (stm32_test_link_history_length (link) == 1, WAIT_MS);
  entry = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (entry->reason), ==, "out-of-step");
  g_assert_cmpint (entry->detector, ==, STM32_DETECTOR_REPLY_GRACE);
  g_assert_true (entry->aborted);
  /* Wanted since Connect(): it reconnects, and pairs again from a clean start. */
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  reply = stm32_test_link_transact (link, "clean", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "clean");
}

/* The queue is bounded by count as Send's is by bytes, and costs each
 * transaction O(log n): 100000 queue, end and are answered quickly. */
static void
test_queue_bound (Fixture *fixture, gconstpointer options)
{
  Stm32Link *link = fixture_connect (fixture);
  g_autoptr (GBytes) request = g_bytes_new_static ("q", 1);
  g_autoptr (GError) error = NULL;
  g_autofree char *refused = NULL;
  guint answered = 0, not_connected = 0;
  gint64 started = g_get_monotonic_time ();

  stm32_sim_command (fixture->sim, "blackhole on");
  /* One becomes the current transaction; the rest wait. */
  for (guint i = 0; i <= STM32_TRANSACT_QUEUE_MAX; i++)
    stm32_link_transact_async (link, request, 60000, NULL, on_answer_counted, &answered);
  refused = stm32_test_link_transact (link, "one too many", 1000, &error);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_QUEUE_FULL);
  g_clear_error (&error);
  g_test_message ("queued %u transactions in %" G_GINT64_FORMAT " ms", STM32_TRANSACT_QUEUE_MAX + 1,
                  (g_get_monotonic_time () - started) / 1000);

  stm32_link_disconnect_async (link, NULL, on_answer_counted, &not_connected);
  stm32_test_wait_until (answered == STM32_TRANSACT_QUEUE_MAX + 1 && not_connected == 1, WAIT_MS);
  g_test_message ("and all answered after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - started) / 1000);
  g_clear_object (&fixture->link);
}

/* With HeartbeatReply, a frame the board sends on its own while a heartbeat
 * waits for its answer is received as the board's, and the transaction
 * behind the heartbeat gets its own reply, not the heartbeat's. */
static void
test_heartbeat_and_unsolicited (Fixture *fixture, gconstpointer options)
{
  Stm32Link *link = NULL;
  Call mine = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  fixture->config->heartbeat = g_bytes_new_static ("~200 ping", 9);
  fixture->config->heartbeat_reply = g_bytes_new_static ("~200 ping", 9);
  fixture->config->heartbeat_interval = 100;
  fixture->config->heartbeat_timeout = 5000;
  link = fixture_connect (fixture);
  /* A frame of the board's own, in effect: the echo of a Send comes 150 ms
   * later, while the heartbeat (sent at 100 ms) waits for its answer. */
  g_assert_true (stm32_test_link_send (link, "~150 report", NULL));
  stm32_test_wait_until (received_contains (fixture, "~150 report"), WAIT_MS);
  call_start (link, &mine, "mine", 5000, NULL);
  reply = call_finish (link, &mine, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "mine");
}

static const char *const board_options[] = { "--delay-marks", NULL };

static void
add_test (const char *path, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, board_options, fixture_setup, test, fixture_teardown);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  add_test ("/transact/slow-reply", test_slow_reply);
  add_test ("/transact/queued-timeout-not-sent", test_queued_timeout_not_sent);
  add_test ("/transact/abandoned-longest-timeout", test_abandoned_longest_timeout);
  add_test ("/transact/out-of-step", test_out_of_step);
  add_test ("/transact/queue-bound", test_queue_bound);
  add_test ("/transact/heartbeat-and-unsolicited", test_heartbeat_and_unsolicited);
  return g_test_run ();
}
