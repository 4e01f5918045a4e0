/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The board simulator's own tests: each failure mode, seen from the PC's side
 * through plain GIO sockets, and from the board's side through its events. */

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "sim-harness.h"
#include "test-util.h"

#define WAIT_MS 3000
/* How long "nothing happens" is watched for: a board that answers at all
 * answers on loopback within a millisecond. */
#define QUIET_MS 300

/* --- a PC-side client ------------------------------------------------------ */

/* Runs the main context until @result is set or @timeout_ms passed; on timeout
 * cancels and waits for the (cancelled) result, since GIO always completes. */
static gboolean
wait_result (GAsyncResult **result, GCancellable *cancellable, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (*result == NULL && g_get_monotonic_time () < deadline)
    stm32_test_iterate (deadline);
  if (*result != NULL)
    return TRUE;
  g_cancellable_cancel (cancellable);
  stm32_test_wait_until (*result != NULL, WAIT_MS);
  return FALSE;
}

static GSocketConnection *
try_connect (guint16 port, guint timeout_ms, GError **error)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) local_error = NULL;
  GSocketConnection *connection;
  gboolean in_time;

  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (address), cancellable,
                                 stm32_test_store_result, &result);
  in_time = wait_result (&result, cancellable, timeout_ms);
  connection = g_socket_client_connect_finish (client, result, &local_error);
  if (!in_time && connection == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "connect did not complete in %u ms",
                   timeout_ms);
      return NULL;
    }
  if (connection == NULL)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return connection;
}

static GSocketConnection *
connect_ok (guint16 port)
{
  g_autoptr (GError) error = NULL;
  GSocketConnection *connection = try_connect (port, WAIT_MS, &error);

  g_assert_no_error (error);
  return connection;
}

/* What one read returns within @timeout_ms: data, an empty GBytes for EOF, or
 * NULL with the error (G_IO_ERROR_TIMED_OUT if nothing came). */
static GBytes *
try_read (GSocketConnection *connection, guint timeout_ms, GError **error)
{
  GInputStream *input = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) local_error = NULL;
  GBytes *bytes;
  gboolean in_time;

  g_input_stream_read_bytes_async (input, 4096, G_PRIORITY_DEFAULT, cancellable,
                                   stm32_test_store_result, &result);
  in_time = wait_result (&result, cancellable, timeout_ms);
  bytes = g_input_stream_read_bytes_finish (input, result, &local_error);
  if (!in_time && bytes == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "nothing to read in %u ms", timeout_ms);
      return NULL;
    }
  if (bytes == NULL)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return bytes;
}

static void
send_data (GSocketConnection *connection, const char *data, gsize len)
{
  GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  g_autoptr (GError) error = NULL;

  /* A few bytes into an empty socket buffer: a synchronous write cannot stall. */
  g_output_stream_write_all (output, data, len, NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
send_text (GSocketConnection *connection, const char *text)
{
  send_data (connection, text, strlen (text));
}

/* Reads until @len bytes have arrived, whatever the segmentation. */
static void
expect_data (GSocketConnection *connection, const char *expected, gsize len)
{
  g_autoptr (GString) got = g_string_new (NULL);

  while (got->len < len)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GBytes) bytes = try_read (connection, WAIT_MS, &error);
      gsize size;
      const char *data;

      g_assert_no_error (error);
      data = g_bytes_get_data (bytes, &size);
      g_assert_cmpuint (size, >, 0);
      g_string_append_len (got, data, (gssize) size);
    }
  g_assert_cmpmem (got->str, got->len, expected, len);
}

static void
expect_text (GSocketConnection *connection, const char *expected)
{
  expect_data (connection, expected, strlen (expected));
}

static void
expect_echo (GSocketConnection *connection, const char *text)
{
  send_text (connection, text);
  expect_text (connection, text);
}

static void
expect_eof (GSocketConnection *connection)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = try_read (connection, WAIT_MS, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (bytes), ==, 0);
}

static void
expect_reset (GSocketConnection *connection)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = try_read (connection, WAIT_MS, &error);

  /* GIO reports ECONNRESET as CONNECTION_CLOSED; EOF would be an empty read. */
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_null (bytes);
}

/* A board with a full table completes the handshake, then resets. A client
 * that looks at once sees the connect succeed and its first read fail; on
 * loopback the RST can beat the client's wake-up, and then the connect itself
 * reports the reset (SO_ERROR). Either way a reset, never a refusal. */
static void
expect_accept_then_reset (guint16 port)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketConnection) connection = try_connect (port, WAIT_MS, &error);

  if (connection == NULL)
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  else
    expect_reset (connection);
}

static void
expect_silence (GSocketConnection *connection)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = try_read (connection, QUIET_MS, &error);

  g_assert_null (bytes);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
}

static GSocket *
socket_of (GSocketConnection *connection)
{
  return g_socket_connection_get_socket (connection);
}

/* The PC closes first: FIN, then close (no wait for the board). */
static void
close_graceful (GSocketConnection *connection)
{
  g_autoptr (GError) error = NULL;

  g_socket_shutdown (socket_of (connection), FALSE, TRUE, &error);
  g_assert_no_error (error);
  g_io_stream_close (G_IO_STREAM (connection), NULL, &error);
  g_assert_no_error (error);
}

/* The PC aborts: linger {1, 0} makes close() send RST. */
static void
close_reset (GSocketConnection *connection)
{
  struct linger abortive = { .l_onoff = 1, .l_linger = 0 };
  g_autoptr (GError) error = NULL;

  g_assert_cmpint (setsockopt (g_socket_get_fd (socket_of (connection)), SOL_SOCKET, SO_LINGER,
                               &abortive, sizeof abortive),
                   ==, 0);
  g_io_stream_close (G_IO_STREAM (connection), NULL, &error);
  g_assert_no_error (error);
}

static guint16
local_port (GSocketConnection *connection)
{
  g_autoptr (GSocketAddress) address = g_socket_connection_get_local_address (connection, NULL);

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}

/* --- the board's side ------------------------------------------------------ */

static gboolean
status_bool (Stm32Sim *sim, const char *member)
{
  g_autoptr (JsonObject) status = stm32_sim_status (sim);

  return json_object_get_boolean_member (status, member);
}

static void
expect_released (Stm32Sim *sim, const char *how, gint64 slots_in_use)
{
  g_autoptr (JsonObject) released = stm32_sim_wait_event (sim, "released", WAIT_MS);

  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, how);
  g_assert_cmpint (json_object_get_int_member (released, "slots_in_use"), ==, slots_in_use);
}

/* --- tests ----------------------------------------------------------------- */

/* Each test's board: the simulator, started with the options the test was
 * registered with (its fixture data). */
typedef struct
{
  Stm32Sim *sim;
  guint16 port;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->port = stm32_sim_get_port (fixture->sim);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  stm32_sim_stop (fixture->sim);
}

static void
add_test (const char *path, const char *const *options, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, options, fixture_setup, test, fixture_teardown);
}

static void
test_echo_line (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  g_autoptr (JsonObject) accepted = stm32_sim_wait_event (fixture->sim, "accepted", WAIT_MS);
  g_autoptr (JsonObject) frame = NULL;
  g_autofree char *peer = g_strdup_printf ("127.0.0.1:%u", local_port (client));

  g_assert_cmpstr (json_object_get_string_member (accepted, "peer"), ==, peer);
  g_assert_cmpint (json_object_get_int_member (accepted, "slots_in_use"), ==, 1);
  expect_echo (client, "hello\nworld\n");
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpint (json_object_get_int_member (frame, "id"), ==,
                   json_object_get_int_member (accepted, "id"));
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "hello");
  g_assert_cmpint (json_object_get_int_member (frame, "bytes"), ==, 5);
  g_clear_pointer (&frame, json_object_unref);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "world");
}

static void
test_u16be_echo (Fixture *fixture, gconstpointer options)
{
  static const char wire[] = "\x00\x03"
                             "abc\x00\x01"
                             "z\x00\x02\x00\xff";
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  g_autoptr (JsonObject) frame = NULL;

  send_data (client, wire, sizeof wire - 1);
  expect_data (client, wire, sizeof wire - 1);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "abc");
  g_clear_pointer (&frame, json_object_unref);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "z");
  g_clear_pointer (&frame, json_object_unref);
  /* Binary frames are reported in hex. */
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "hex"), ==, "00ff");
}

static void
test_good_close_frees_slot (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) first = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) second = NULL;
  g_autoptr (GError) error = NULL;

  expect_echo (first, "one\n");
  g_socket_shutdown (socket_of (first), FALSE, TRUE, &error);
  g_assert_no_error (error);
  /* The good firmware answers the PC's FIN with its own. */
  expect_eof (first);
  expect_released (fixture->sim, "closed-after-eof", 0);
  g_io_stream_close (G_IO_STREAM (first), NULL, NULL);
  second = connect_ok (fixture->port);
  expect_echo (second, "two\n");
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "rejected"), ==, 0);
}

static void
test_full_rst (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) holder = connect_ok (fixture->port);
  g_autoptr (JsonObject) rejected = NULL;

  expect_echo (holder, "mine\n");
  /* lwIP's netconn pool exhaustion: the handshake completes, then RST. */
  expect_accept_then_reset (fixture->port);
  rejected = stm32_sim_wait_event (fixture->sim, "rejected", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (rejected, "reason"), ==, "table-full");
  g_assert_cmpstr (json_object_get_string_member (rejected, "action"), ==, "rst");
  g_assert_true (g_str_has_prefix (json_object_get_string_member (rejected, "peer"), "127.0.0.1:"));
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "rejected"), ==, 1);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use"), ==, 1);
  expect_echo (holder, "still mine\n");
}

static void
test_full_drop (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) holder = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) late = NULL;
  g_autoptr (GSocketConnection) later = NULL;
  g_autoptr (JsonObject) status = NULL;
  g_autoptr (GError) error = NULL;

  stm32_sim_expect (fixture->sim, "drop-on", WAIT_MS);
  expect_echo (holder, "mine\n");
  /* lwIP's PCB pool exhaustion: the SYN goes unanswered. */
  late = try_connect (fixture->port, 500, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_null (late);
  /* The filter is on the listener only: the established connection is untouched. */
  expect_echo (holder, "still mine\n");
  status = stm32_sim_status (fixture->sim);
  g_assert_true (json_object_get_boolean_member (status, "dropping"));
  g_assert_cmpint (json_object_get_int_member (status, "rejected"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (status, "accepted"), ==, 1);
  close_graceful (holder);
  expect_released (fixture->sim, "closed-after-eof", 0);
  stm32_sim_expect (fixture->sim, "drop-off", WAIT_MS);
  later = connect_ok (fixture->port);
  expect_echo (later, "yours\n");
}

static void
test_leak_fin_keeps_slot (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) first = connect_ok (fixture->port);
  g_autoptr (JsonObject) eof = NULL;
  g_autoptr (JsonObject) status = NULL;

  expect_echo (first, "one\n");
  /* What a Qt client that close()s does: FIN, and the firmware ignores it. */
  close_graceful (first);
  eof = stm32_sim_wait_event (fixture->sim, "eof", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (eof, "action"), ==, "ignore");
  status = stm32_sim_status (fixture->sim);
  g_assert_cmpint (json_object_get_int_member (status, "slots_in_use"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (status, "leaked"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (status, "released"), ==, 0);
  /* ... so the next connection finds the table full. */
  expect_accept_then_reset (fixture->port);
  g_clear_pointer (&status, json_object_unref);
  status = stm32_sim_status (fixture->sim);
  g_assert_cmpint (json_object_get_int_member (status, "rejected"), ==, 1);
  g_assert_cmpint (stm32_sim_count_events (fixture->sim, "released"), ==, 0);
}

static void
test_leak_rst_frees_slot (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) first = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) second = NULL;
  g_autoptr (GError) error = NULL;

  expect_echo (first, "one\n");
  /* DESIGN.md rule 3: FIN, wait for the board's EOF, and RST when none comes. */
  g_socket_shutdown (socket_of (first), FALSE, TRUE, &error);
  g_assert_no_error (error);
  stm32_sim_expect (fixture->sim, "eof", WAIT_MS);
  expect_silence (first);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "leaked"), ==, 1);
  close_reset (first);
  expect_released (fixture->sim, "peer-reset", 0);
  second = connect_ok (fixture->port);
  expect_echo (second, "two\n");
}

/* The PC resets a leaked connection and connects again at once, while the
 * board is not scheduled: when it runs, the RST and the new connection are
 * both waiting. Like lwIP, which handles segments in order, it frees the slot
 * first and admits the newcomer, and it never held two at once. */
static void
test_leak_rst_then_connect (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) first = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) second = NULL;
  g_autoptr (GError) error = NULL;

  expect_echo (first, "one\n");
  g_socket_shutdown (socket_of (first), FALSE, TRUE, &error);
  g_assert_no_error (error);
  stm32_sim_expect (fixture->sim, "eof", WAIT_MS);
  expect_silence (first);
  stm32_sim_send_signal (fixture->sim, SIGSTOP);
  close_reset (first);
  /* The kernel completes the handshake from the listen queue, without the board. */
  second = connect_ok (fixture->port);
  stm32_sim_send_signal (fixture->sim, SIGCONT);
  expect_echo (second, "two\n");
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "rejected"), ==, 0);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use"), ==, 1);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use_max"), ==, 1);
}

/* The status keeps the most slots ever taken at once, after they are freed:
 * a test's proof that a client never held two connections together. */
static void
test_slots_in_use_max (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) a = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) b = connect_ok (fixture->port);

  expect_echo (a, "a\n");
  expect_echo (b, "b\n");
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use_max"), ==, 2);
  close_reset (a);
  close_reset (b);
  expect_released (fixture->sim, "peer-reset", 1);
  expect_released (fixture->sim, "peer-reset", 0);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use_max"), ==, 2);
  g_clear_object (&a);
  a = connect_ok (fixture->port);
  expect_echo (a, "again\n");
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use_max"), ==, 2);
}

static void
test_idle_timeout (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  gint64 start = g_get_monotonic_time ();
  g_autoptr (JsonObject) idle = NULL;

  expect_eof (client);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 190 * 1000);
  idle = stm32_sim_wait_event (fixture->sim, "idle-timeout", WAIT_MS);
  g_assert_cmpint (json_object_get_int_member (idle, "ms"), ==, 200);
  /* Like lwIP in FIN_WAIT, the board holds the slot until the PC answers. */
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use"), ==, 1);
  close_graceful (client);
  expect_released (fixture->sim, "board-closed", 0);
}

static void
test_idle_timeout_traffic (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  gint64 start = g_get_monotonic_time ();

  /* Traffic restarts the timer: gaps shorter than the timeout outlast it. */
  for (guint i = 0; i < 4; i++)
    {
      expect_echo (client, "tick\n");
      expect_silence (client);
    }
  g_assert_cmpint (g_get_monotonic_time () - start, >, 1100 * 1000);
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "idle-timeout"), ==, 0);
  expect_eof (client);
}

static void
test_blackhole_after (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  g_autoptr (JsonObject) blackhole = NULL;
  g_autoptr (JsonObject) status = NULL;
  JsonObject *entry;

  expect_echo (client, "a\n");
  expect_echo (client, "b\n");
  blackhole = stm32_sim_wait_event (fixture->sim, "blackhole", WAIT_MS);
  g_assert_cmpint (json_object_get_int_member (blackhole, "frames"), ==, 2);
  send_text (client, "c\n");
  /* No answer, and no FIN or RST either: only a watchdog can tell. */
  expect_silence (client);
  status = stm32_sim_status (fixture->sim);
  entry = json_array_get_object_element (json_object_get_array_member (status, "list"), 0);
  g_assert_cmpstr (json_object_get_string_member (entry, "state"), ==, "silent");
  g_assert_cmpint (json_object_get_int_member (entry, "frames"), ==, 2);
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "frame"), ==, 2);
  /* The stack still frees the PCB on RST even though the firmware hangs. */
  close_reset (client);
  expect_released (fixture->sim, "peer-reset", 0);
}

static void
test_rst_after (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);

  expect_echo (client, "last words\n");
  expect_reset (client);
  expect_released (fixture->sim, "board-reset", 0);
}

static void
test_close_after (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  g_autoptr (JsonObject) status = NULL;
  JsonObject *entry;

  expect_echo (client, "last words\n");
  expect_eof (client);
  status = stm32_sim_status (fixture->sim);
  entry = json_array_get_object_element (json_object_get_array_member (status, "list"), 0);
  g_assert_cmpstr (json_object_get_string_member (entry, "state"), ==, "fin-wait");
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "released"), ==, 0);
  close_graceful (client);
  expect_released (fixture->sim, "board-closed", 0);
}

static void
test_fin_wait_bound (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  g_autoptr (JsonObject) released = NULL;

  expect_eof (client);
  /* A PC that never closes does not hold the board's slot forever. */
  released = stm32_sim_wait_event (fixture->sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "board-closed");
  g_assert_nonnull (json_object_get_string_member_with_default (released, "detail", NULL));
}

static void
test_refuse_for (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) refused = NULL;
  g_autoptr (GSocketConnection) client = NULL;
  g_autoptr (GError) error = NULL;

  refused = try_connect (fixture->port, WAIT_MS, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  g_assert_false (status_bool (fixture->sim, "listening"));
  stm32_sim_expect (fixture->sim, "listener-open", WAIT_MS);
  client = connect_ok (fixture->port);
  expect_echo (client, "up\n");
}

static void
test_refuse_command (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) established = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) refused = NULL;
  g_autoptr (GSocketConnection) client = NULL;
  g_autoptr (GError) error = NULL;

  expect_echo (established, "before\n");
  stm32_sim_command (fixture->sim, "refuse 1000");
  refused = try_connect (fixture->port, WAIT_MS, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  /* Closing the listener leaves established connections alone. */
  expect_echo (established, "during\n");
  stm32_sim_expect (fixture->sim, "listener-open", WAIT_MS);
  client = connect_ok (fixture->port);
  expect_echo (client, "after\n");
}

static void
test_restart (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) a = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) b = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) c = NULL;
  g_autoptr (JsonObject) status = NULL;

  expect_echo (a, "a\n");
  expect_echo (b, "b\n");
  stm32_sim_command (fixture->sim, "restart");
  expect_reset (a);
  expect_reset (b);
  expect_released (fixture->sim, "restart", 1);
  expect_released (fixture->sim, "restart", 0);
  status = stm32_sim_status (fixture->sim);
  g_assert_cmpint (json_object_get_int_member (status, "slots_in_use"), ==, 0);
  g_assert_true (json_object_get_boolean_member (status, "listening"));
  g_assert_cmpint (json_object_get_int_member (status, "port"), ==, fixture->port);
  c = connect_ok (fixture->port);
  expect_echo (c, "c\n");
}

static void
test_malformed_close (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  g_autoptr (JsonObject) malformed = NULL;

  expect_echo (client, "short\n");
  send_text (client, "far too long for the board\n");
  malformed = stm32_sim_wait_event (fixture->sim, "malformed", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (malformed, "action"), ==, "close");
  expect_eof (client);
  close_graceful (client);
  expect_released (fixture->sim, "board-closed", 0);
}

static void
test_malformed_rst (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);

  expect_echo (client, "{\"ok\":true}\n");
  send_text (client, "{not json\n");
  stm32_sim_expect (fixture->sim, "malformed", WAIT_MS);
  expect_reset (client);
  expect_released (fixture->sim, "board-reset", 0);
}

static void
test_malformed_ignore (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);

  send_text (client, "far too long for the board\n");
  stm32_sim_expect (fixture->sim, "malformed", WAIT_MS);
  expect_echo (client, "fine\n");
}

static void
test_script (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp ("stm32-sim-script-XXXXXX", &path, &error);
  Stm32Sim *sim;
  g_autoptr (GSocketConnection) client = NULL;

  g_assert_no_error (error);
  close (fd);
  g_file_set_contents (path, "# comment\nping\tpong\nVER?\tfw 1.2\\tok\n", -1, &error);
  g_assert_no_error (error);
  sim = stm32_sim_start ("--script", path, NULL);
  client = connect_ok (stm32_sim_get_port (sim));
  send_text (client, "ping\n");
  expect_text (client, "pong\n");
  send_text (client, "VER?\n");
  expect_text (client, "fw 1.2\tok\n");
  expect_echo (client, "unscripted\n");
  stm32_sim_stop (sim);
  g_unlink (path);
}

static void
test_reply_none (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);

  send_text (client, "anyone?\n");
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  expect_silence (client);
}

static void
test_control_errors (Fixture *fixture, gconstpointer options)
{
  static const char *const bad[] = { "bogus",    "slots x",         "slots",     "mode weird",
                                     "refuse 0", "blackhole maybe", "status now" };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (JsonObject) answer = stm32_sim_request (fixture->sim, bad[i]);

      g_assert_cmpstr (json_object_get_string_member (answer, "event"), ==, "error");
      g_assert_nonnull (json_object_get_string_member (answer, "message"));
    }
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots"), ==, 4);
}

static void
test_control_slots_and_mode (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) first = connect_ok (fixture->port);
  g_autoptr (JsonObject) eof = NULL;

  expect_echo (first, "one\n");
  stm32_sim_command (fixture->sim, "slots 1");
  stm32_sim_command (fixture->sim, "mode leak");
  expect_accept_then_reset (fixture->port);
  close_graceful (first);
  eof = stm32_sim_wait_event (fixture->sim, "eof", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (eof, "action"), ==, "ignore");
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use"), ==, 1);
}

static void
test_control_close_rst_all (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) a = connect_ok (fixture->port);
  g_autoptr (GSocketConnection) b = NULL;

  expect_echo (a, "a\n");
  stm32_sim_command (fixture->sim, "close-all");
  expect_eof (a);
  close_graceful (a);
  expect_released (fixture->sim, "board-closed", 0);
  b = connect_ok (fixture->port);
  expect_echo (b, "b\n");
  stm32_sim_command (fixture->sim, "rst-all");
  expect_reset (b);
  expect_released (fixture->sim, "board-reset", 0);
}

static void
test_control_blackhole (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);

  expect_echo (client, "before\n");
  stm32_sim_command (fixture->sim, "blackhole on");
  send_text (client, "during\n");
  expect_silence (client);
  /* The frame waited in the socket buffer and is answered on resume. */
  stm32_sim_command (fixture->sim, "blackhole off");
  expect_text (client, "during\n");
  expect_echo (client, "after\n");
}

/* Reads until @len bytes have arrived, whatever the segmentation. */
static GByteArray *
read_exactly (GSocketConnection *connection, gsize len)
{
  GByteArray *got = g_byte_array_new ();

  while (got->len < len)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GBytes) bytes = try_read (connection, WAIT_MS, &error);
      gsize size;
      const guint8 *data;

      g_assert_no_error (error);
      data = g_bytes_get_data (bytes, &size);
      g_assert_cmpuint (size, >, 0);
      g_byte_array_append (got, data, (guint) size);
    }
  g_assert_cmpuint (got->len, ==, len);
  return got;
}

/* Asserts that @frame is flood frame number @seq of @size bytes: [SEQ,"xx…x"]. */
static void
assert_flood_frame (const guint8 *frame, gsize size, guint64 seq, gsize expected_size)
{
  g_autofree char *head = g_strdup_printf ("[%" G_GUINT64_FORMAT ",\"", seq);
  gsize head_len = strlen (head);

  g_assert_cmpuint (size, ==, expected_size);
  g_assert_cmpmem (frame, head_len, head, head_len);
  for (gsize i = head_len; i < size - 2; i++)
    g_assert_cmpint (frame[i], ==, 'x');
  g_assert_cmpmem (frame + size - 2, 2, "\"]", 2);
}

static void
expect_flood_done (Stm32Sim *sim, gint64 frames, gint64 bytes, gint64 wire_bytes)
{
  g_autoptr (JsonObject) done = stm32_sim_wait_event (sim, "flood-done", WAIT_MS);

  g_assert_cmpint (json_object_get_int_member (done, "frames"), ==, frames);
  g_assert_cmpint (json_object_get_int_member (done, "bytes"), ==, bytes);
  g_assert_cmpint (json_object_get_int_member (done, "wire_bytes"), ==, wire_bytes);
  g_assert_true (json_object_get_boolean_member (done, "complete"));
}

/* 2,000 lines of 100 bytes, numbered, with an echo among them at a frame
 * boundary: a board that streams and still answers. */
static void
test_flood_command (Fixture *fixture, gconstpointer options)
{
  static const char *const bad[] = { "flood", "flood 0 100", "flood 1000 23", "flood 1000 70000",
                                     "flood x 100" };
  g_autoptr (GSocketConnection) client = NULL;
  g_autoptr (JsonObject) no_connection = stm32_sim_request (fixture->sim, "flood 1000 100");
  g_autoptr (GByteArray) got = NULL;
  guint64 seq = 0;
  guint echoes = 0;
  gsize at = 0;

  g_assert_cmpstr (json_object_get_string_member (no_connection, "event"), ==, "error");
  client = connect_ok (fixture->port);
  stm32_sim_expect (fixture->sim, "accepted", WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (JsonObject) answer = stm32_sim_request (fixture->sim, bad[i]);

      g_assert_cmpstr (json_object_get_string_member (answer, "event"), ==, "error");
    }
  stm32_sim_command (fixture->sim, "flood 200000 100");
  send_text (client, "ping\n");
  got = read_exactly (client, 2000 * 101 + 5);
  while (at < got->len)
    {
      const guint8 *line = got->data + at;
      const guint8 *end = memchr (line, '\n', got->len - at);

      g_assert_nonnull (end);
      if (end - line == 4 && memcmp (line, "ping", 4) == 0)
        echoes++;
      else
        assert_flood_frame (line, (gsize) (end - line), ++seq, 100);
      at += (gsize) (end - line) + 1;
    }
  g_assert_cmpuint (seq, ==, 2000);
  g_assert_cmpuint (echoes, ==, 1);
  expect_flood_done (fixture->sim, 2000, 200000, 2000 * 101);
  /* Numbering goes on across floods of one connection. */
  stm32_sim_command (fixture->sim, "flood 100 100");
  g_clear_pointer (&got, g_byte_array_unref);
  got = read_exactly (client, 101);
  assert_flood_frame (got->data, 100, 2001, 100);
}

/* --flood-bytes: every connection floods from its accept, the last frame
 * whole; u16be frames decode to the same numbered payloads. */
static void
test_flood_option (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) client = connect_ok (fixture->port);
  g_autoptr (GByteArray) got = read_exactly (client, 101 * (2 + 500));

  for (guint i = 0; i < 101; i++)
    {
      const guint8 *frame = got->data + i * (2 + 500);

      g_assert_cmpuint ((frame[0] << 8) | frame[1], ==, 500);
      assert_flood_frame (frame + 2, 500, i + 1, 500);
    }
  expect_flood_done (fixture->sim, 101, 101 * 500, 101 * 502);
  send_data (client, "\x00\x02hi", 4);
  expect_data (client, "\x00\x02hi", 4);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  add_test ("/sim/echo/line", NULL, test_echo_line);
  add_test ("/sim/echo/u16be", STM32_SIM_OPTIONS ("--framing", "u16be"), test_u16be_echo);
  add_test ("/sim/good/close-frees-slot", STM32_SIM_OPTIONS ("--slots", "1"),
            test_good_close_frees_slot);
  add_test ("/sim/full/rst", STM32_SIM_OPTIONS ("--slots", "1"), test_full_rst);
  add_test ("/sim/full/drop", STM32_SIM_OPTIONS ("--slots", "1", "--when-full", "drop"),
            test_full_drop);
  add_test ("/sim/leak/fin-keeps-slot", STM32_SIM_OPTIONS ("--slots", "1", "--mode", "leak"),
            test_leak_fin_keeps_slot);
  add_test ("/sim/leak/rst-frees-slot", STM32_SIM_OPTIONS ("--slots", "1", "--mode", "leak"),
            test_leak_rst_frees_slot);
  add_test ("/sim/slots-in-use-max", NULL, test_slots_in_use_max);
  add_test ("/sim/leak/rst-then-connect", STM32_SIM_OPTIONS ("--slots", "1", "--mode", "leak"),
            test_leak_rst_then_connect);
  add_test ("/sim/idle-timeout/fires", STM32_SIM_OPTIONS ("--idle-timeout", "200"),
            test_idle_timeout);
  add_test ("/sim/idle-timeout/traffic-defers", STM32_SIM_OPTIONS ("--idle-timeout", "1000"),
            test_idle_timeout_traffic);
  add_test ("/sim/blackhole-after", STM32_SIM_OPTIONS ("--blackhole-after", "2"),
            test_blackhole_after);
  add_test ("/sim/rst-after", STM32_SIM_OPTIONS ("--rst-after", "1"), test_rst_after);
  add_test ("/sim/close-after", STM32_SIM_OPTIONS ("--close-after", "1"), test_close_after);
  add_test ("/sim/fin-wait-bound", STM32_SIM_OPTIONS ("--close-after", "0", "--fin-wait", "200"),
            test_fin_wait_bound);
  add_test ("/sim/refuse/startup", STM32_SIM_OPTIONS ("--refuse-for", "1000"), test_refuse_for);
  add_test ("/sim/refuse/command", NULL, test_refuse_command);
  add_test ("/sim/restart", NULL, test_restart);
  add_test ("/sim/malformed/close", STM32_SIM_OPTIONS ("--max-frame", "8"), test_malformed_close);
  add_test ("/sim/malformed/rst", STM32_SIM_OPTIONS ("--framing", "json", "--on-malformed", "rst"),
            test_malformed_rst);
  add_test ("/sim/malformed/ignore",
            STM32_SIM_OPTIONS ("--max-frame", "8", "--on-malformed", "ignore"),
            test_malformed_ignore);
  g_test_add_func ("/sim/reply/script", test_script);
  add_test ("/sim/reply/none", STM32_SIM_OPTIONS ("--reply", "none"), test_reply_none);
  add_test ("/sim/control/errors", NULL, test_control_errors);
  add_test ("/sim/control/slots-and-mode", STM32_SIM_OPTIONS ("--slots", "0"),
            test_control_slots_and_mode);
  add_test ("/sim/control/close-rst-all", NULL, test_control_close_rst_all);
  add_test ("/sim/control/blackhole", NULL, test_control_blackhole);
  add_test ("/sim/flood/command", NULL, test_flood_command);
  add_test ("/sim/flood/option",
            STM32_SIM_OPTIONS ("--framing", "u16be", "--flood-bytes", "50001",
                               "--flood-frame-size", "500"),
            test_flood_option);
  return g_test_run ();
}
