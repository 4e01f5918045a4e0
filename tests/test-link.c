/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The managed link against the board simulator: every rule of the hygiene
 * contract, observed both from the PC (state, errors, history, fds) and from
 * the board (the simulator's own report of slots and how connections ended).
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link-harness.h"
#include "netns-harness.h"
#include "sim-harness.h"
#include "stm32-defaults.h"
#include "stm32-enum-types.h"
#include "stm32-error.h"
#include "stm32-link.h"
#include "stm32-probe.h"
#include "test-util.h"

#define WAIT_MS STM32_TEST_LINK_WAIT_MS

static Stm32LinkConfig *
test_config (guint16 port)
{
  Stm32LinkConfig *config = stm32_link_config_new ("127.0.0.1", port);

  config->autoconnect = FALSE;
  config->connect_timeout = 2000;
  config->close_timeout = 200;
  config->retry_min = 50;
  config->retry_max = 400;
  config->busy_backoff = 300;
  return config;
}

static gint64
json_int (JsonObject *object, const char *member)
{
  g_assert_true (json_object_has_member (object, member));
  return json_object_get_int_member (object, member);
}

/* Waits until the board reports @n slots in use. */
static void
wait_board_slots (Stm32Sim *sim, gint64 n)
{
  gint64 in_use = -1;

  for (guint i = 0; i < 200 && in_use != n; i++)
    {
      g_autoptr (JsonObject) status = stm32_sim_status (sim);

      in_use = json_int (status, "slots_in_use");
      if (in_use != n)
        stm32_sim_expect (sim, "released", WAIT_MS);
    }
  g_assert_cmpint (in_use, ==, n);
}

/* A plain client's connection, as the old GUIs made them. */
static GSocketConnection *
plain_try_connect (guint16 port, GError **error)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnectable) address = g_network_address_new ("127.0.0.1", port);
  g_autoptr (GAsyncResult) result = NULL;

  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_client_connect_async (client, address, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return g_socket_client_connect_finish (client, result, error);
}

/* A socket held open by a plain client, standing in for another PC's GUI. */
static GSocketConnection *
plain_connect (guint16 port)
{
  g_autoptr (GError) error = NULL;
  GSocketConnection *connection = plain_try_connect (port, &error);

  g_assert_no_error (error);
  return connection;
}

/* Each test's board and the config of a link to it: the simulator, started
 * with the options the test was registered with (its fixture data), and
 * test_config() for its port, which the test may tune before making its link. */
typedef struct
{
  Stm32Sim *sim;
  guint16 port;
  Stm32LinkConfig *config;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->port = stm32_sim_get_port (fixture->sim);
  fixture->config = test_config (fixture->port);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  stm32_sim_stop (fixture->sim);
  stm32_link_config_free (fixture->config);
}

static void
add_test (const char *path, const char *const *options, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, options, fixture_setup, test, fixture_teardown);
}

/* ---- the 500 cycles the project exists for ------------------------------- */

static void
test_cycles_leaky_firmware (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (JsonObject) status = NULL;
  g_autoptr (GPtrArray) history = NULL;
  guint fds_before, cycles = 500, failures = 0;
  gint64 deadline = g_get_monotonic_time () + 240 * G_USEC_PER_SEC;

  /* Leaky firmware never answers our FIN, so every close waits CloseTimeout:
   * keep it short so 500 cycles stay quick. */
  fixture->config->close_timeout = 20;
  link = stm32_link_new ("leak", fixture->config);
  fds_before = stm32_test_count_fds ();

  for (guint i = 0; i < cycles && g_get_monotonic_time () < deadline; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *reply = NULL;
      g_autofree char *request = g_strdup_printf ("cycle %u", i);

      if (!stm32_test_link_connect (link, &error) ||
          (reply = stm32_test_link_transact (link, request, 2000, &error)) == NULL)
        {
          g_test_message ("cycle %u failed: %s", i, error->message);
          failures++;
        }
      else
        g_assert_cmpstr (reply, ==, request);
      stm32_test_link_disconnect (link);
    }

  g_assert_cmpuint (failures, ==, 0);
  /* The board's view: every connection it accepted was released by our RST. */
  wait_board_slots (fixture->sim, 0);
  status = stm32_sim_status (fixture->sim);
  g_assert_cmpint (json_int (status, "accepted"), ==, cycles);
  g_assert_cmpint (json_int (status, "rejected"), ==, 0);
  g_assert_cmpint (json_int (status, "released"), ==, cycles);
  /* The PC's view: no fd left behind, and each close needed the RST fallback. */
  g_assert_cmpuint (stm32_test_count_fds (), ==, fds_before);
  history = stm32_link_dup_history (link);
  for (guint i = 0; i < history->len; i++)
    {
      Stm32HistoryEntry *entry = g_ptr_array_index (history, i);

      g_assert_cmpstr (stm32_test_reason_nick (entry->reason), ==, "local");
      g_assert_true (entry->aborted);
      g_assert_cmpint (entry->closed_by, ==, STM32_CLOSED_BY_PC);
    }
}

/* What the Qt GUIs did: connect, talk, close politely and move on. Against
 * leaky firmware this fails as soon as the board's table is full, which is
 * what shows the simulator reproduces the problem. */
static void
test_cycles_plain_close_fails (Fixture *fixture, gconstpointer options)
{
  guint failed_at = 0;

  for (guint i = 1; i <= 10 && failed_at == 0; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GSocketConnection) connection = plain_try_connect (fixture->port, &error);
      GOutputStream *out;
      GInputStream *in;
      g_autoptr (GAsyncResult) wrote = NULL, read = NULL, closed = NULL;
      char buffer[64];

      /* The board's RST for a full table may overtake the connect itself. */
      if (connection == NULL)
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
          failed_at = i;
          break;
        }
      out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
      in = g_io_stream_get_input_stream (G_IO_STREAM (connection));
      g_output_stream_write_all_async (out, "ping\n", 5, 0, NULL, stm32_test_store_result, &wrote);
      stm32_test_wait_until (wrote != NULL, WAIT_MS);
      g_input_stream_read_async (in, buffer, sizeof buffer, 0, NULL, stm32_test_store_result,
                                 &read);
      stm32_test_wait_until (read != NULL, WAIT_MS);
      if (!g_output_stream_write_all_finish (out, wrote, NULL, &error) ||
          g_input_stream_read_finish (in, read, &error) <= 0)
        failed_at = i;
      g_io_stream_close_async (G_IO_STREAM (connection), 0, NULL, stm32_test_store_result, &closed);
      stm32_test_wait_until (closed != NULL, WAIT_MS);
    }

  g_assert_cmpuint (failed_at, ==, 3);
}

/* ---- how a board fails, and what the link calls it ----------------------- */

static void
test_board_closes_then_reconnect (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GAsyncResult) pending = NULL;
  g_autoptr (GBytes) request = g_bytes_new_static ("who", 3);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  gint64 ended_at;

  fixture->config->retry_min = fixture->config->retry_max = 300;
  /* On loopback the board's FIN can follow the handshake within a millisecond;
   * with no busy window it is always what it is here, a close. */
  fixture->config->busy_window = 0;
  link = stm32_link_new ("fin", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_sim_expect (fixture->sim, "accepted", WAIT_MS);

  /* A transaction waits for a reply that will never come: the board closes first. */
  stm32_link_transact_async (link, request, 5000, NULL, stm32_test_store_result, &pending);
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  stm32_sim_command (fixture->sim, "close-all");
  stm32_test_wait_until (pending != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, pending, &error);
  g_assert_null (reply);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_REMOTE_CLOSED);
  ended_at = g_get_monotonic_time ();

  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_REMOTE_CLOSED);
  g_assert_cmpuint (stm32_link_get_retry_in (link), >=, 240);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "remote-closed");
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_BOARD);
  g_assert_cmpint (ended->detector, ==, STM32_DETECTOR_NONE);

  /* Reconnects by itself, after the backoff and not before. */
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  g_assert_cmpint (g_get_monotonic_time () - ended_at, >=, 240 * 1000);
  stm32_sim_expect (fixture->sim, "accepted", WAIT_MS);
  stm32_test_link_disconnect (link);
}

typedef struct
{
  GArray *delays;
} RetryLog;

static void
on_retry_in (Stm32Link *link, GParamSpec *pspec, RetryLog *log)
{
  guint delay = stm32_link_get_retry_in (link);

  if (delay != 0)
    g_array_append_val (log->delays, delay);
}

static guint16
unused_port (void)
{
  g_autoptr (GSocket) socket =
      g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;

  g_assert_true (g_socket_bind (socket, any, FALSE, NULL));
  bound = g_socket_get_local_address (socket, NULL);
  /* Closed again at once: nothing listens there, so connects are refused. */
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
test_refused_backoff (void)
{
  g_autoptr (Stm32LinkConfig) config = test_config (unused_port ());
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GPtrArray) history = NULL;
  RetryLog log = { g_array_new (FALSE, FALSE, sizeof (guint)) };
  g_autoptr (GError) error = NULL;

  config->retry_min = 20;
  config->retry_max = 200;
  link = stm32_link_new ("refused", config);
  g_signal_connect (link, "notify::retry-in", G_CALLBACK (on_retry_in), &log);
  g_assert_false (stm32_test_link_connect (link, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_REFUSED);

  stm32_test_wait_until (log.delays->len >= 7, WAIT_MS);
  stm32_test_link_disconnect (link);

  /* 20, 40, 80, 160, then capped at 200 — each within ±20 % jitter. */
  for (guint i = 0; i < 7; i++)
    {
      guint expected = MIN (20u << i, 200u);
      guint delay = g_array_index (log.delays, guint, i);

      g_assert_cmpuint (delay, >=, expected * 8 / 10);
      g_assert_cmpuint (delay, <=, expected * 12 / 10);
    }
  /* Not a tight loop: attempts are really spaced by the delays announced. */
  history = stm32_link_dup_history (link);
  g_assert_cmpuint (history->len, >=, 7);
  for (guint i = 1; i < 7; i++)
    {
      Stm32HistoryEntry *previous = g_ptr_array_index (history, i - 1);
      Stm32HistoryEntry *entry = g_ptr_array_index (history, i);

      g_assert_cmpstr (stm32_test_reason_nick (entry->reason), ==, "refused");
      g_assert_cmpint (entry->started - previous->closed, >=,
                       (gint64) g_array_index (log.delays, guint, i - 1) * 1000 - 1000);
    }
  g_array_unref (log.delays);
}

static void
test_server_busy (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) other_gui G_GNUC_UNUSED = plain_connect (fixture->port);
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GError) error = NULL;

  stm32_sim_expect (fixture->sim, "accepted", WAIT_MS);
  link = stm32_link_new ("busy", fixture->config);
  /* The handshake succeeds; the board's RST comes right after it. */
  g_assert_true (stm32_test_link_connect (link, &error) || error != NULL);
  g_clear_error (&error);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  stm32_sim_expect (fixture->sim, "rejected", WAIT_MS);
  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_SERVER_BUSY);
  g_assert_cmpuint (stm32_link_get_retry_in (link), >=, fixture->config->busy_backoff);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "server-busy");
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_BOARD);
  stm32_test_link_disconnect (link);
}

static void
test_connect_timeout (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketConnection) other_gui G_GNUC_UNUSED = plain_connect (fixture->port);
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GError) error = NULL;
  gint64 started;

  stm32_sim_expect (fixture->sim, "drop-on", WAIT_MS);
  fixture->config->connect_timeout = 300;
  link = stm32_link_new ("timeout", fixture->config);
  started = g_get_monotonic_time ();
  g_assert_false (stm32_test_link_connect (link, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_assert_cmpint (g_get_monotonic_time () - started, >=, 300 * 1000);
  g_assert_nonnull (strstr (error->message, "control-block"));
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "timeout");
  g_assert_cmpint (ended->detector, ==, STM32_DETECTOR_CONNECT_TIMEOUT);
  g_assert_cmpint (ended->connected, ==, 0);
  stm32_test_link_disconnect (link);
}

/* A board that stopped reading resets while we are still writing to it, with
 * more queued than the kernel can buffer: the blocked write fails, every send
 * is answered (the rest with the reset), and writing into the dead socket is
 * an error, never a SIGPIPE that would kill the daemon. */
static void
test_board_reset (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *payload = g_strnfill (64000, 'd');
  g_autoptr (GBytes) frame = g_bytes_new (payload, 64000);
  GAsyncResult *results[100] = { NULL };
  guint written = 0, reset = 0;

  fixture->config->busy_window =
      0; /* the reset comes soon after connecting; it is not a full table */
  fixture->config->send_queue_max = 8 * 1024 * 1024;
  link = stm32_link_new ("rst", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_sim_expect (fixture->sim, "blackhole", WAIT_MS);
  /* 6.4 MB: more than the socket buffers take while the board does not read. */
  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    stm32_link_send_async (link, frame, NULL, stm32_test_store_result, &results[i]);
  stm32_test_wait_until (results[0] != NULL, WAIT_MS);
  stm32_sim_command (fixture->sim, "rst-all");

  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    {
      g_autoptr (GError) send_error = NULL;

      stm32_test_wait_until (results[i] != NULL, WAIT_MS);
      if (stm32_link_send_finish (link, results[i], &send_error))
        written++;
      else
        {
          g_assert_error (send_error, STM32_ERROR, STM32_ERROR_RESET);
          reset++;
        }
      g_object_unref (results[i]);
    }
  g_test_message ("%u frames acknowledged by the board, %u failed with the reset", written, reset);
  g_assert_cmpuint (written + reset, ==, G_N_ELEMENTS (results));
  g_assert_cmpuint (reset, >, 0);

  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_RESET);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "reset");
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_BOARD);
  g_assert_cmpuint (ended->frames_sent, ==, written);
  g_assert_false (stm32_test_link_send (link, "late", &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  stm32_test_link_disconnect (link);
}

static void
test_graceful_close_good_firmware (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (JsonObject) released = NULL;

  fixture->config->close_timeout = 5000;
  link = stm32_link_new ("good", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  g_assert_true (stm32_test_link_send (link, "bye", NULL));
  stm32_test_link_disconnect (link);

  /* The board answered our FIN with its own: no reset was needed. */
  released = stm32_sim_wait_event (fixture->sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "closed-after-eof");
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "local");
  g_assert_false (ended->aborted);
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_PC);
  g_assert_cmpuint (ended->frames_sent, ==, 1);
  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_NONE);
}

/* ---- dead boards ---------------------------------------------------------- */

static void
test_blackhole_heartbeat (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (JsonObject) released = NULL;

  fixture->config->heartbeat = g_bytes_new_static ("ping", 4);
  fixture->config->heartbeat_interval = 100;
  fixture->config->heartbeat_timeout = 200;
  link = stm32_link_new ("heartbeat", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_sim_expect (fixture->sim, "blackhole", WAIT_MS);

  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  /* The heartbeat found it, not keepalive (whose budget is seconds longer). */
  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_DEAD_PEER);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "dead-peer");
  g_assert_cmpint (ended->detector, ==, STM32_DETECTOR_HEARTBEAT);
  g_assert_true (ended->aborted);
  /* Our RST freed the silent board's slot. */
  released = stm32_sim_wait_event (fixture->sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "peer-reset");
  stm32_test_link_disconnect (link);
}

static void
test_idle_timeout (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  gint64 connected_at;

  fixture->config->idle_timeout = 300;
  link = stm32_link_new ("idle", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  connected_at = g_get_monotonic_time ();
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  g_assert_cmpint (g_get_monotonic_time () - connected_at, >=, 300 * 1000);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "dead-peer");
  g_assert_cmpint (ended->detector, ==, STM32_DETECTOR_IDLE_TIMEOUT);
  g_assert_nonnull (strstr (ended->error, "IdleTimeout"));
  stm32_test_link_disconnect (link);
}

/* ---- nothing silently dropped --------------------------------------------- */

static void
test_send_errors (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *big = NULL;
  g_autofree char *filler = NULL;

  fixture->config->framing = STM32_FRAMING_JSON;
  fixture->config->max_frame = 1024;
  fixture->config->send_queue_max = 4096;
  link = stm32_link_new ("errors", fixture->config);

  g_assert_false (stm32_test_link_send (link, "1", &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  g_assert_true (stm32_test_link_connect (link, NULL));
  g_assert_false (stm32_test_link_send (link, "{not json", &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME);
  g_clear_error (&error);

  filler = g_strnfill (1100, 'x');
  big = g_strdup_printf ("\"%s\"", filler);
  g_assert_false (stm32_test_link_send (link, big, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE);
  g_clear_error (&error);

  /* The board saw none of the rejected frames. */
  g_assert_true (stm32_test_link_send (link, "\"ok\"", NULL));
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "frame"), ==, 1);
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "malformed"), ==, 0);
  stm32_test_link_disconnect (link);
}

static void
test_queue_full (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autofree char *payload = g_strnfill (1000, 'q');
  g_autoptr (GBytes) frame = g_bytes_new (payload, 1000);
  GAsyncResult *results[5] = { NULL };
  guint succeeded = 0;
  g_autoptr (GError) error = NULL;

  fixture->config->max_frame = 1024;
  fixture->config->send_queue_max = 4096;
  link = stm32_link_new ("queue", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));

  /* Five 1001-byte frames in one go: four fit in 4096 bytes, the fifth is refused. */
  for (guint i = 0; i < 5; i++)
    stm32_link_send_async (link, frame, NULL, stm32_test_store_result, &results[i]);
  stm32_test_wait_until (results[0] && results[1] && results[2] && results[3] && results[4],
                         WAIT_MS);
  for (guint i = 0; i < 4; i++)
    succeeded += stm32_link_send_finish (link, results[i], NULL);
  g_assert_false (stm32_link_send_finish (link, results[4], &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_QUEUE_FULL);
  g_assert_cmpuint (succeeded, ==, 4);
  for (guint i = 0; i < 5; i++)
    g_object_unref (results[i]);

  /* Everything accepted reached the board. */
  for (guint i = 0; i < 4; i++)
    stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  stm32_test_link_disconnect (link);
}

static void
on_received (Stm32Link *link, GBytes *frame, GPtrArray *received)
{
  g_ptr_array_add (received, g_bytes_ref (frame));
}

/* Three transactions at once: each gets its own reply, which goes to it alone;
 * a frame no transaction waits for is "received". */
static void
test_transactions_in_order (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("transact", fixture->config);
  const char *requests[] = { "alpha", "beta", "gamma" };
  GAsyncResult *results[G_N_ELEMENTS (requests)] = { NULL };
  g_autoptr (GPtrArray) received = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  g_signal_connect (link, "received", G_CALLBACK (on_received), received);
  g_assert_true (stm32_test_link_connect (link, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_autoptr (GBytes) request = g_bytes_new_static (requests[i], strlen (requests[i]));

      stm32_link_transact_async (link, request, 5000, NULL, stm32_test_store_result, &results[i]);
    }
  stm32_test_wait_until (results[0] && results[1] && results[2], WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GBytes) reply = stm32_link_transact_finish (link, results[i], &error);
      g_autoptr (GBytes) expected = g_bytes_new_static (requests[i], strlen (requests[i]));

      g_assert_no_error (error);
      g_assert_true (g_bytes_equal (reply, expected));
      g_object_unref (results[i]);
    }
  g_assert_cmpuint (received->len, ==, 0);
  g_assert_true (stm32_test_link_send (link, "unasked", NULL));
  stm32_test_wait_until (received->len == 1, WAIT_MS);
  g_assert_cmpmem (g_bytes_get_data (received->pdata[0], NULL),
                   g_bytes_get_size (received->pdata[0]), "unasked", 7);
  stm32_test_link_disconnect (link);
}

/* A reply that comes after its transaction gave up, with no other
 * transaction waiting, is nobody's: it is "received". */
static void
test_transaction_late_reply (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("late", fixture->config);
  g_autoptr (GPtrArray) received = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  g_signal_connect (link, "received", G_CALLBACK (on_received), received);
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_sim_command (fixture->sim, "blackhole on");
  reply = stm32_test_link_transact (link, "slow", 100, &error);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  stm32_sim_command (fixture->sim, "blackhole off");
  stm32_test_wait_until (received->len == 1, WAIT_MS);
  g_assert_cmpmem (g_bytes_get_data (received->pdata[0], NULL),
                   g_bytes_get_size (received->pdata[0]), "slow", 4);
  reply = stm32_test_link_transact (link, "next", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "next");
  g_assert_cmpuint (received->len, ==, 1);
  stm32_test_link_disconnect (link);
}

static guint64
frames_sent (Stm32Link *link)
{
  guint64 frames;

  g_object_get (link, "frames-sent", &frames, NULL);
  return frames;
}

/* A transaction whose caller gave up after its request went out still takes
 * the reply, so later transactions stay matched; the reply, nobody's, is
 * "received". */
static void
test_transaction_abandoned_reply (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("abandoned", fixture->config);
  g_autoptr (GPtrArray) received = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GBytes) request = g_bytes_new_static ("given up", 8);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autofree char *next = NULL;

  g_signal_connect (link, "received", G_CALLBACK (on_received), received);
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_sim_command (fixture->sim, "blackhole on");
  stm32_link_transact_async (link, request, 30000, cancellable, stm32_test_store_result, &result);
  /* Acknowledged by the board's kernel: written whole, armed for the reply. */
  stm32_test_wait_until (frames_sent (link) == 1, WAIT_MS);
  g_cancellable_cancel (cancellable);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  stm32_sim_command (fixture->sim, "blackhole off");
  next = stm32_test_link_transact (link, "next", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (next, ==, "next");
  g_assert_cmpuint (received->len, ==, 1);
  g_assert_cmpmem (g_bytes_get_data (received->pdata[0], NULL),
                   g_bytes_get_size (received->pdata[0]), "given up", 8);
  stm32_test_link_disconnect (link);
}

/* Disconnecting under pending transactions: the one sent says it got no
 * reply (the board may have it), the queued one that it was never sent. */
static void
test_transaction_disconnect (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("cut", fixture->config);
  g_autoptr (GBytes) first = g_bytes_new_static ("first", 5);
  g_autoptr (GBytes) second = g_bytes_new_static ("second", 6);
  g_autoptr (GAsyncResult) sent = NULL;
  g_autoptr (GAsyncResult) queued = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;

  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_link_transact_async (link, first, 30000, NULL, stm32_test_store_result, &sent);
  stm32_link_transact_async (link, second, 30000, NULL, stm32_test_store_result, &queued);
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  stm32_test_link_disconnect (link);
  stm32_test_wait_until (sent != NULL && queued != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, sent, &error);
  g_assert_null (reply);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_assert_true (g_str_has_prefix (error->message, "No reply, the connection ended: "));
  g_clear_error (&error);
  reply = stm32_link_transact_finish (link, queued, &error);
  g_assert_null (reply);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_assert_true (g_str_has_prefix (error->message, "Not sent, the connection ended: "));
}

/* A board that never answers: the transaction times out, the next one still works. */
static void
test_transaction_timeout (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("slow", fixture->config);
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;
  gint64 started;

  g_assert_true (stm32_test_link_connect (link, NULL));
  started = g_get_monotonic_time ();
  reply = stm32_test_link_transact (link, "anyone?", 200, &error);
  g_assert_null (reply);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_assert_cmpint (g_get_monotonic_time () - started, >=, 200 * 1000);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_CONNECTED);
  stm32_test_link_disconnect (link);
}

static void
test_bad_frame_from_board (void)
{
  g_autofree char *script_path = NULL;
  g_autofree char *long_line = g_strnfill (100, 'z');
  g_autofree char *script = g_strdup_printf ("big\t%s\n", long_line);
  Stm32Sim *sim;
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (JsonObject) released = NULL;
  int fd;

  fd = g_file_open_tmp ("stm32-script-XXXXXX", &script_path, NULL);
  g_assert_cmpint (fd, >=, 0);
  g_assert_true (g_file_set_contents (script_path, script, -1, NULL));
  close (fd);
  sim = stm32_sim_start ("--script", script_path, NULL);
  config = test_config (stm32_sim_get_port (sim));
  config->max_frame = 64;
  link = stm32_link_new ("bad-frame", config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  g_assert_true (stm32_test_link_send (link, "big", NULL));

  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_PROTOCOL_ERROR);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_nonnull (strstr (ended->error, "MaxFrame"));
  g_assert_true (ended->aborted);
  released = stm32_sim_wait_event (sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "peer-reset");
  stm32_test_link_disconnect (link);
  stm32_sim_stop (sim);
  g_unlink (script_path);
}

/* ---- dead boards on a real network (root: the board lives in a netns) ---- */

static Stm32LinkConfig *
netns_config (Stm32Netns *netns, guint16 port)
{
  Stm32LinkConfig *config = test_config (port);

  g_free (config->host);
  config->host = g_strdup (stm32_netns_get_board_address (netns));
  config->retry_min = config->retry_max = 200;
  config->connect_timeout = 1000;
  return config;
}

/* Waits for the cut to be noticed; returns how long that took, in ms. */
static gint64
wait_dead_peer (Stm32Link *link, gint64 cut_at)
{
  g_autoptr (Stm32HistoryEntry) ended = NULL;

  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, 20000);
  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_DEAD_PEER);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "dead-peer");
  g_assert_cmpint (ended->detector, ==, STM32_DETECTOR_KEEPALIVE);
  return (g_get_monotonic_time () - cut_at) / 1000;
}

/* An idle link to a board whose cable is pulled: only keepalive can tell. */
static void
test_dead_peer_keepalive (void)
{
  g_autoptr (Stm32Netns) netns = stm32_netns_new ();
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autofree char *reply = NULL;
  Stm32Sim *sim;
  gint64 noticed_ms;

  if (netns == NULL)
    return;
  sim = stm32_sim_start_in_netns (stm32_netns_get_name (netns), "--listen",
                                  stm32_netns_get_board_address (netns), NULL);
  config = netns_config (netns, stm32_sim_get_port (sim));
  config->keepalive_idle_s = 1;
  config->keepalive_interval_s = 1;
  config->keepalive_count = 2;
  config->user_timeout = 3000;
  link = stm32_link_new ("cable", config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  reply = stm32_test_link_transact (link, "alive?", 2000, NULL);
  g_assert_cmpstr (reply, ==, "alive?");

  stm32_netns_set_link (netns, FALSE);
  noticed_ms = wait_dead_peer (link, g_get_monotonic_time ());
  /* Keepalive's budget is idle + interval × count = 3 s; it cannot know sooner
   * than the first unanswered probe. */
  g_test_message ("dead peer noticed after %" G_GINT64_FORMAT " ms (budget 3000 ms)", noticed_ms);
  g_assert_cmpint (noticed_ms, >=, 1000);

  /* The cable comes back: the link reconnects by itself. */
  stm32_netns_set_link (netns, TRUE);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, 20000);
  stm32_test_link_disconnect (link);
  stm32_sim_stop (sim);
}

/* Data in flight to a vanished board: TCP_USER_TIMEOUT bounds the retransmits,
 * long before keepalive (which never fires while data is unacknowledged). */
static void
test_dead_peer_user_timeout (void)
{
  g_autoptr (Stm32Netns) netns = stm32_netns_new ();
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GBytes) frame = g_bytes_new_static ("into the void", 13);
  g_autoptr (GAsyncResult) sent = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GError) error = NULL;
  Stm32Sim *sim;
  gint64 cut_at, noticed_ms;

  if (netns == NULL)
    return;
  sim = stm32_sim_start_in_netns (stm32_netns_get_name (netns), "--listen",
                                  stm32_netns_get_board_address (netns), NULL);
  config = netns_config (netns, stm32_sim_get_port (sim));
  config->keepalive_idle_s = 60;
  config->user_timeout = 1500;
  link = stm32_link_new ("in-flight", config);
  g_assert_true (stm32_test_link_connect (link, NULL));

  stm32_netns_set_link (netns, FALSE);
  cut_at = g_get_monotonic_time ();
  /* The kernel takes the frame, the board never acknowledges it: the Send is
   * answered with the reason the connection died, not "sent". */
  stm32_link_send_async (link, frame, NULL, stm32_test_store_result, &sent);
  noticed_ms = wait_dead_peer (link, cut_at);
  g_test_message ("dead peer noticed after %" G_GINT64_FORMAT " ms (UserTimeout 1500 ms)",
                  noticed_ms);
  /* Keepalive would wait KeepaliveIdle (60 s), far beyond wait_dead_peer()'s
   * bound: what ended it was the user timeout. */
  g_assert_cmpint (noticed_ms, >=, 1000);
  stm32_test_wait_until (sent != NULL, WAIT_MS);
  g_assert_false (stm32_link_send_finish (link, sent, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_DEAD_PEER);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpuint (ended->frames_sent, ==, 0);
  stm32_test_link_disconnect (link);
  stm32_sim_stop (sim);
}

/* ---- construction ---------------------------------------------------------- */

/* The config is a construct-only property: g_object_new() alone makes a
 * working link, which keeps a copy of it, and it cannot change later. */
static void
test_construct_config (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link =
      g_object_new (STM32_TYPE_LINK, "name", "built", "config", fixture->config, NULL);
  g_autoptr (Stm32LinkConfig) got = NULL;
  g_autoptr (Stm32LinkConfig) other = stm32_link_config_new ("192.0.2.1", 1);
  g_autofree char *host = NULL;
  guint port = 0;

  fixture->config->port = 1;
  g_object_get (link, "host", &host, "port", &port, "config", &got, NULL);
  g_assert_cmpstr (host, ==, "127.0.0.1");
  g_assert_cmpuint (port, ==, fixture->port);
  g_assert_cmpuint (got->port, ==, fixture->port);
  g_assert_cmpuint (got->close_timeout, ==, 200);
  g_test_expect_message ("GLib-GObject", G_LOG_LEVEL_WARNING, "*construct property*config*");
  g_object_set (link, "config", other, NULL);
  g_test_assert_expected_messages ();
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_test_link_disconnect (link);
  g_assert_cmpuint (stm32_link_get_config (link)->port, ==, fixture->port);
}

/* A call that breaks a precondition gets its one critical and nothing else
 * happens: no GTask made on a source object that is no object, nothing
 * half-built left to leak. */
static void
test_construct_preconditions_first (void)
{
  GTypeInstance not_a_link = { NULL };
  Stm32Link *bogus = (Stm32Link *) &not_a_link;
  g_autoptr (Stm32LinkConfig) config = stm32_link_config_new ("127.0.0.1", 1);
  g_autoptr (GBytes) frame = g_bytes_new_static ("x", 1);

  g_test_expect_message ("stm32d", G_LOG_LEVEL_CRITICAL, "*STM32_IS_LINK*");
  stm32_link_connect_async (bogus, NULL, NULL, NULL);
  g_test_assert_expected_messages ();
  g_test_expect_message ("stm32d", G_LOG_LEVEL_CRITICAL, "*STM32_IS_LINK*");
  stm32_link_disconnect_async (bogus, NULL, NULL, NULL);
  g_test_assert_expected_messages ();
  g_test_expect_message ("stm32d", G_LOG_LEVEL_CRITICAL, "*STM32_IS_LINK*");
  stm32_link_send_async (bogus, frame, NULL, NULL, NULL);
  g_test_assert_expected_messages ();
  g_test_expect_message ("stm32d", G_LOG_LEVEL_CRITICAL, "*STM32_IS_LINK*");
  stm32_link_transact_async (bogus, frame, 100, NULL, NULL, NULL);
  g_test_assert_expected_messages ();
  g_test_expect_message ("stm32d", G_LOG_LEVEL_CRITICAL, "*STM32_IS_LINK*");
  stm32_link_write_raw_async (bogus, frame, NULL, NULL, NULL);
  g_test_assert_expected_messages ();
  g_test_expect_message ("stm32d", G_LOG_LEVEL_CRITICAL, "*G_IS_SOCKET_ADDRESS*");
  stm32_probe_async (NULL, config, 1, 0, NULL, NULL, NULL);
  g_test_assert_expected_messages ();
}

/* Our end of the connection to @board_port: the fd whose peer is the board. */
static int
find_socket_to (guint16 board_port)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      int fd = (int) g_ascii_strtoll (name, NULL, 10);
      struct sockaddr_in local, peer;
      socklen_t local_len = sizeof local, peer_len = sizeof peer;

      if (getsockname (fd, (struct sockaddr *) &local, &local_len) == 0 &&
          getpeername (fd, (struct sockaddr *) &peer, &peer_len) == 0 &&
          local.sin_family == AF_INET && ntohs (peer.sin_port) == board_port &&
          ntohs (local.sin_port) != board_port)
        return fd;
    }
  g_error ("no socket to port %u", board_port);
}

/* A board of the test's own: a socket listening on loopback whose
 * connections take @rcvbuf bytes at most (0: the kernel's default). */
static int
raw_board_listen (int rcvbuf, guint16 *port)
{
  int listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in address = { .sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof address;

  g_assert_cmpint (listener, >=, 0);
  if (rcvbuf > 0)
    g_assert_cmpint (setsockopt (listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), ==, 0);
  g_assert_cmpint (bind (listener, (struct sockaddr *) &address, len), ==, 0);
  g_assert_cmpint (listen (listener, 1), ==, 0);
  g_assert_cmpint (getsockname (listener, (struct sockaddr *) &address, &len), ==, 0);
  *port = ntohs (address.sin_port);
  return listener;
}

/* The board's side of the link's connection: the handshake is done once
 * the link connected, so this returns at once. */
static int
raw_board_accept (int listener)
{
  int board = accept4 (listener, NULL, NULL, SOCK_CLOEXEC);

  g_assert_cmpint (board, >=, 0);
  return board;
}

/* The board resets the connection just before our FIN: shutdown(SHUT_WR)
 * fails (ENOTCONN) on a socket the kernel already closed, before the read
 * that would have told us runs. The close still completes, the attempt is
 * recorded as the board's reset, and no error or fd is left behind (ASan
 * sees every GError of that path freed). */
static void
test_close_after_board_reset (void)
{
  guint16 port = 0;
  int listener;
  struct linger reset = { .l_onoff = 1, .l_linger = 0 };
  struct pollfd ours = { .events = POLLIN };
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  guint fds_before;
  int board;

  listener = raw_board_listen (0, &port);
  config = test_config (port);
  /* Not the accepted-then-reset of a full table: a reset of an established connection. */
  config->busy_window = 0;
  link = stm32_link_new ("reset-in-close", config);
  fds_before = stm32_test_count_fds ();
  g_assert_true (stm32_test_link_connect (link, NULL));

  board = raw_board_accept (listener);
  ours.fd = find_socket_to (port);
  g_assert_cmpint (setsockopt (board, SOL_SOCKET, SO_LINGER, &reset, sizeof reset), ==, 0);
  close (board);
  /* The kernel has the RST once our socket turns readable; the main loop
   * does not run meanwhile, so the link's read has not seen it yet. */
  g_assert_cmpint (poll (&ours, 1, WAIT_MS), ==, 1);

  stm32_link_disconnect_async (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (stm32_link_disconnect_finish (link, result, &error));
  g_assert_no_error (error);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_DISCONNECTED);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "reset");
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_BOARD);
  g_assert_nonnull (ended->error);
  g_assert_cmpuint (stm32_test_count_fds (), ==, fds_before);
  close (listener);
}

#define ACKED_WIRE 1024 /* a line of 1023 bytes and its \n */
#define ACKED_FRAMES 256

/* Bytes of ours the board's stack acknowledged, as our kernel counts them
 * (RFC 4898's tcpEStatsAppHCThruOctetsAcked less our SYN); still readable
 * after a RST closed the socket. */
static guint64
kernel_acknowledged (int fd)
{
  struct tcp_info info = { 0 };
  socklen_t len = sizeof info;

  g_assert_cmpint (getsockopt (fd, IPPROTO_TCP, TCP_INFO, &info, &len), ==, 0);
  g_assert_cmpuint (len, >=, G_STRUCT_OFFSET (struct tcp_info, tcpi_bytes_acked) + 8);
  g_assert_cmpuint (info.tcpi_bytes_acked, >, 0);
  return info.tcpi_bytes_acked - 1;
}

/* Bytes of ours our kernel took: acknowledged, or waiting in its send queue. */
static guint64
kernel_taken (int fd)
{
  int queued = -1;

  g_assert_cmpint (ioctl (fd, SIOCOUTQ, &queued), ==, 0);
  return kernel_acknowledged (fd) + (guint64) queued;
}

/* Waits, with the main loop standing still, until our kernel counts
 * @at_least bytes acknowledged, the board reading a little each time (each
 * read opens its window, and on loopback more arrives before the next). */
static guint64
wait_kernel_acknowledged (int fd, int board, guint64 at_least)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  char buffer[ACKED_WIRE];

  while (kernel_acknowledged (fd) < at_least && g_get_monotonic_time () < deadline)
    {
      struct pollfd readable = { .fd = board, .events = POLLIN };

      if (recv (board, buffer, sizeof buffer, MSG_DONTWAIT) <= 0)
        g_assert_cmpint (poll (&readable, 1, 10), >=, 0);
    }
  g_assert_cmpuint (kernel_acknowledged (fd), >=, at_least);
  return kernel_acknowledged (fd);
}

typedef struct
{
  GError *error;
  gboolean answered;
} SendOutcome;

static void
store_send_outcome (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SendOutcome *outcome = user_data;

  g_assert_false (outcome->answered);
  outcome->answered = TRUE;
  if (!stm32_link_send_finish (STM32_LINK (source), result, &outcome->error))
    g_assert_nonnull (outcome->error);
}

static gboolean
all_answered (const SendOutcome *outcomes, guint n)
{
  for (guint i = 0; i < n; i++)
    if (!outcomes[i].answered)
      return FALSE;
  return TRUE;
}

/* The board's stack acknowledges frames and the board resets at once, while
 * a write the kernel took has not called back yet (the main loop was busy):
 * every frame the board acknowledged is answered as sent, every other one
 * with the reset. Counting the acknowledged bytes as what we wrote less
 * what the kernel still holds made that count short by the write not yet
 * called back, and failed frames the board had acknowledged (the send
 * channel's board-reset test: 699 answered, 700 on the board). */
static void
test_acknowledged_before_reset (void)
{
  guint16 port = 0;
  int listener;
  struct linger reset = { .l_onoff = 1, .l_linger = 0 };
  int small = 4096;
  struct pollfd ours = { .events = POLLIN };
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autofree char *text = g_strnfill (ACKED_WIRE - 1, 'x');
  g_autoptr (GBytes) frame = g_bytes_new (text, ACKED_WIRE - 1);
  SendOutcome outcomes[ACKED_FRAMES + 1] = { { 0 } };
  guint64 before, acknowledged;
  guint sent = 0;
  int board;

  /* A board that holds little: its window closes with most frames still in our kernel. */
  listener = raw_board_listen (small, &port);
  config = test_config (port);
  config->busy_window = 0;
  link = stm32_link_new ("acknowledged", config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  board = raw_board_accept (listener);
  ours.fd = find_socket_to (port);

  /* The board reads nothing yet: every frame reaches our kernel, the
   * acknowledged ones are answered, the rest wait. */
  for (guint i = 0; i < ACKED_FRAMES; i++)
    stm32_link_send_async (link, frame, NULL, store_send_outcome, &outcomes[i]);
  stm32_test_wait_until (kernel_taken (ours.fd) == (guint64) ACKED_FRAMES * ACKED_WIRE, WAIT_MS);
  before = kernel_acknowledged (ours.fd);
  g_assert_cmpuint (before + 4 * ACKED_WIRE, <, (guint64) ACKED_FRAMES * ACKED_WIRE);
  stm32_test_wait_until (outcomes[before / ACKED_WIRE - 1].answered, WAIT_MS);

  /* One more, which the kernel takes in the call; its write calls back on
   * a turn of the main loop, and none comes before the reset is read. */
  stm32_link_send_async (link, frame, NULL, store_send_outcome, &outcomes[ACKED_FRAMES]);
  g_assert_cmpuint (kernel_taken (ours.fd), ==, (guint64) (ACKED_FRAMES + 1) * ACKED_WIRE);
  /* The board reads: its stack acknowledges at least one more frame, not all. */
  wait_kernel_acknowledged (ours.fd, board, before + ACKED_WIRE);
  g_assert_cmpint (setsockopt (board, SOL_SOCKET, SO_LINGER, &reset, sizeof reset), ==, 0);
  close (board);
  g_assert_cmpint (poll (&ours, 1, WAIT_MS), ==, 1);
  acknowledged = kernel_acknowledged (ours.fd);
  g_assert_cmpuint (acknowledged, <, (guint64) ACKED_FRAMES * ACKED_WIRE);

  stm32_test_wait_until (all_answered (outcomes, G_N_ELEMENTS (outcomes)), WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (outcomes); i++)
    {
      if ((guint64) (i + 1) * ACKED_WIRE <= acknowledged)
        {
          g_assert_no_error (outcomes[i].error);
          sent++;
        }
      else
        g_assert_error (outcomes[i].error, STM32_ERROR, STM32_ERROR_RESET);
      g_clear_error (&outcomes[i].error);
    }
  g_test_message ("%u frames acknowledged by the board before its reset, %u before it read", sent,
                  (guint) (before / ACKED_WIRE));
  g_assert_cmpuint (frames_sent (link), ==, sent);
  close (listener);
}

/* Stands for whatever keeps the main loop busy: runs in the iteration in
 * which ReplyGrace runs out, before it, and the board's late reply arrives
 * meanwhile, after the loop last polled the socket. */
typedef struct
{
  GSource source;
  int board;
  int ours;
  const char *sends; /* what the board sends meanwhile */
  guint dispatched;
} BusySource;

static gboolean
busy_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  BusySource *busy = (BusySource *) source;
  struct pollfd readable = { .fd = busy->ours, .events = POLLIN };
  gssize size = (gssize) strlen (busy->sends);

  g_assert_cmpint (send (busy->board, busy->sends, size, MSG_NOSIGNAL), ==, size);
  g_assert_cmpint (poll (&readable, 1, WAIT_MS), ==, 1);
  busy->dispatched++;
  g_source_set_ready_time (source, -1);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs busy_source_funcs = { .dispatch = busy_source_dispatch };

/* A busy main loop for the link to the board on @listener, attached before
 * any ReplyGrace timer exists: of sources due together, it goes first. */
static GSource *
busy_source_new (int board, int ours, const char *sends)
{
  GSource *busy = g_source_new (&busy_source_funcs, sizeof (BusySource));

  ((BusySource *) busy)->board = board;
  ((BusySource *) busy)->ours = ours;
  ((BusySource *) busy)->sends = sends;
  g_source_set_ready_time (busy, -1);
  g_source_attach (busy, NULL);
  return busy;
}

/* Stands the main loop still until ReplyGrace, started no later than
 * @started, is due, then lets the busy source and it run in one turn. */
static void
busy_until_grace_over (GSource *busy, gint64 started, guint grace_ms)
{
  guint before = ((BusySource *) busy)->dispatched;

  while (g_get_monotonic_time () <= started + (gint64) grace_ms * 1000)
    g_assert_cmpint (poll (NULL, 0, 1), ==, 0);
  g_source_set_ready_time (busy, 0);
  stm32_test_wait_until (((BusySource *) busy)->dispatched > before, WAIT_MS);
}

/* Reads from @board until @expected came whole; the main loop turns
 * meanwhile only if @iterate. */
static void
board_expect (int board, const char *expected, gboolean iterate)
{
  g_autoptr (GString) got = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  char buffer[256];
  ssize_t n;

  while (got->len < strlen (expected) && g_get_monotonic_time () < deadline)
    {
      struct pollfd readable = { .fd = board, .events = POLLIN };

      if (iterate)
        stm32_test_iterate (g_get_monotonic_time () + 10 * 1000);
      else
        g_assert_cmpint (poll (&readable, 1, 10), >=, 0);
      while ((n = recv (board, buffer, sizeof buffer, MSG_DONTWAIT)) > 0)
        g_string_append_len (got, buffer, n);
    }
  g_assert_cmpstr (got->str, ==, expected);
}

/* ReplyGrace runs out in the same turn of the main loop as the late reply
 * arrives, before the loop read it: the reply is still the orphaned
 * request's, read and counted late, and the next request goes out only
 * then and gets its own reply. Giving up at once handed the next caller the
 * previous request's reply. */
static void
test_transaction_grace_reply_unread (void)
{
  guint16 port = 0;
  int listener;
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GAsyncResult) first = NULL, second = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSource) busy = NULL;
  guint64 late_replies = 0;
  gint64 answered;
  int board;

  listener = raw_board_listen (0, &port);
  config = test_config (port);
  config->reply_grace = 1;
  link = stm32_link_new ("grace-unread", config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  board = raw_board_accept (listener);
  busy = busy_source_new (board, find_socket_to (port), "first-reply\n");

  {
    g_autoptr (GBytes) request = g_bytes_new_static ("first", 5);

    stm32_link_transact_async (link, request, 1, NULL, stm32_test_store_result, &first);
  }
  /* Written in the call; the loop stays still so ReplyGrace cannot start yet. */
  board_expect (board, "first\n", FALSE);
  stm32_test_wait_until (first != NULL, WAIT_MS);
  g_assert_null (stm32_link_transact_finish (link, first, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  /* ReplyGrace started when the caller was answered. */
  answered = g_get_monotonic_time ();
  {
    g_autoptr (GBytes) request = g_bytes_new_static ("second", 6);

    stm32_link_transact_async (link, request, WAIT_MS, NULL, stm32_test_store_result, &second);
  }
  busy_until_grace_over (busy, answered, config->reply_grace);
  board_expect (board, "second\n", TRUE);
  g_assert_null (second);
  g_assert_cmpint (send (board, "second-reply\n", 13, MSG_NOSIGNAL), ==, 13);
  stm32_test_wait_until (second != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, second, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), "second-reply", 12);
  g_object_get (link, "late-replies", &late_replies, NULL);
  g_assert_cmpuint (late_replies, ==, 1);

  g_source_destroy (busy);
  stm32_test_link_disconnect (link);
  close (board);
  close (listener);
}

static gboolean
fd_readable (int fd)
{
  struct pollfd readable = { .fd = fd, .events = POLLIN };

  return poll (&readable, 1, 0) == 1;
}

#define GARBAGE_GRACE_MS 200

/* A board that sends a byte of a frame that never ends each time ReplyGrace
 * runs out keeps the orphaned request's place STM32_REPLY_GRACE_READS_MAX
 * graces more, no longer: then the next request goes out. */
static void
test_transaction_grace_garbage (void)
{
  guint16 port = 0;
  int listener;
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GAsyncResult) first = NULL, second = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSource) busy = NULL;
  g_autoptr (GBytes) first_request = g_bytes_new_static ("first", 5);
  g_autoptr (GBytes) second_request = g_bytes_new_static ("second", 6);
  gint64 started;
  char byte;
  int board, ours;

  listener = raw_board_listen (0, &port);
  config = test_config (port);
  config->reply_grace = GARBAGE_GRACE_MS;
  link = stm32_link_new ("grace-garbage", config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  board = raw_board_accept (listener);
  ours = find_socket_to (port);
  busy = busy_source_new (board, ours, "x");

  stm32_link_transact_async (link, first_request, 1, NULL, stm32_test_store_result, &first);
  board_expect (board, "first\n", FALSE);
  stm32_test_wait_until (first != NULL, WAIT_MS);
  g_assert_null (stm32_link_transact_finish (link, first, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  started = g_get_monotonic_time ();
  stm32_link_transact_async (link, second_request, WAIT_MS, NULL, stm32_test_store_result, &second);
  for (guint i = 0; i < STM32_REPLY_GRACE_READS_MAX; i++)
    {
      busy_until_grace_over (busy, started, GARBAGE_GRACE_MS);
      /* ReplyGrace started again, after the read that comes first. */
      started = g_get_monotonic_time ();
      stm32_test_wait_until (!fd_readable (ours), WAIT_MS);
      g_assert_cmpint (recv (board, &byte, 1, MSG_DONTWAIT), ==, -1);
    }
  /* Given up in that turn: the next request went out in it. */
  busy_until_grace_over (busy, started, GARBAGE_GRACE_MS);
  board_expect (board, "second\n", FALSE);

  stm32_test_link_disconnect (link);
  stm32_test_wait_until (second != NULL, WAIT_MS);
  g_assert_null (stm32_link_transact_finish (link, second, &error));
  g_assert_nonnull (error);
  g_source_destroy (busy);
  close (board);
  close (listener);
}

/* HeartbeatTimeout runs out in the same turn of the main loop as the
 * board's answer arrives, before the loop read it: the board answered, so
 * the answer is read and the link stays up (the next heartbeat goes out).
 * Declaring the board dead there ended a link to a board that was alive. */
static void
test_heartbeat_answer_unread (void)
{
  guint16 port = 0;
  int listener;
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GSource) busy = NULL;
  gint64 written;
  int board;

  listener = raw_board_listen (0, &port);
  config = test_config (port);
  config->heartbeat = g_bytes_new_static ("ping", 4);
  config->heartbeat_interval = 50;
  config->heartbeat_timeout = 1;
  link = stm32_link_new ("heartbeat-unread", config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  board = raw_board_accept (listener);
  busy = busy_source_new (board, find_socket_to (port), "pong\n");

  /* The loop stands still from the turn that wrote the heartbeat on, so
   * HeartbeatTimeout, armed then, cannot run out before the busy turn. */
  stm32_test_wait_until (fd_readable (board), WAIT_MS);
  written = g_get_monotonic_time ();
  board_expect (board, "ping\n", FALSE);
  busy_until_grace_over (busy, written, config->heartbeat_timeout);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_CONNECTED);
  board_expect (board, "ping\n", TRUE);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_CONNECTED);

  g_source_destroy (busy);
  stm32_test_link_disconnect (link);
  close (board);
  close (listener);
}

/* Connect() while a close is under way: answered by a new connection whose
 * socket is created only after the old one is gone (rule 1). */
static void
test_connect_during_close (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GAsyncResult) disconnected = NULL, connected = NULL;
  g_autoptr (GPtrArray) history = NULL;
  g_autoptr (GError) error = NULL;
  Stm32HistoryEntry *first, *second;
  gint64 first_closed;

  link = stm32_link_new ("reconnect", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_link_disconnect_async (link, NULL, stm32_test_store_result, &disconnected);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_CLOSING);
  stm32_link_connect_async (link, NULL, stm32_test_store_result, &connected);
  stm32_test_wait_until (disconnected != NULL && connected != NULL, WAIT_MS);
  g_assert_true (stm32_link_disconnect_finish (link, disconnected, &error));
  g_assert_true (stm32_link_connect_finish (link, connected, &error));
  g_assert_no_error (error);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_CONNECTED);

  history = stm32_link_dup_history (link);
  g_assert_cmpuint (history->len, ==, 1);
  first = g_ptr_array_index (history, 0);
  g_assert_true (first->aborted); /* leaky firmware: our RST ended it */
  g_assert_cmpstr (stm32_test_reason_nick (first->reason), ==, "local");
  first_closed = first->closed;
  stm32_test_link_disconnect (link);
  g_clear_pointer (&history, g_ptr_array_unref);
  history = stm32_link_dup_history (link);
  second = g_ptr_array_index (history, 1);
  g_assert_cmpint (second->started, >=, first_closed);
  /* The board saw two connections, each released by our RST, never two at once. */
  wait_board_slots (fixture->sim, 0);
}

static void
on_answer_counted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  guint *count = user_data;

  (*count)++;
}

/* Connect, calls and Disconnect back to back, round after round, against
 * firmware that ignores EOF: whatever the link is doing when a socket reaches
 * the board, that socket ends with our RST (nothing else frees the board's
 * slot), and the board ends with every slot free. */
static void
test_connect_disconnect_race (Fixture *fixture, gconstpointer options)
{
  const guint rounds = 40;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GBytes) frame = g_bytes_new_static ("race", 4);
  g_autoptr (JsonObject) status = NULL;
  guint connects = 0, calls = 0, disconnects = 0, sent = 0;

  fixture->config->close_timeout = 50;
  link = stm32_link_new ("race", fixture->config);
  for (guint round = 0; round < rounds; round++)
    {
      stm32_link_connect_async (link, NULL, on_answer_counted, &connects);
      for (guint i = 0; i < 20; i++, sent++)
        if (i % 2 == 0)
          stm32_link_send_async (link, frame, NULL, on_answer_counted, &calls);
        else
          stm32_link_transact_async (link, frame, 1000, NULL, on_answer_counted, &calls);
      /* Each round gives the connect a few more of the main loop's turns
       * (resolving, SYN, the handshake's completion) before Disconnect. */
      for (guint turn = 0; turn < round % 8; turn++)
        g_main_context_iteration (NULL, FALSE);
      stm32_link_disconnect_async (link, NULL, on_answer_counted, &disconnects);
      /* Let the next round race a connect that has not finished, now and then. */
      if (round % 4 == 3)
        stm32_test_wait_until (disconnects == round + 1, WAIT_MS);
    }
  stm32_test_wait_until (connects == rounds && calls == sent && disconnects == rounds, WAIT_MS);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_DISCONNECTED);
  status = stm32_sim_status (fixture->sim);
  g_test_message ("the board accepted %" G_GINT64_FORMAT " connections",
                  json_object_get_int_member (status, "accepted"));
  wait_board_slots (fixture->sim, 0);
}

static void
test_autoconnect (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;

  fixture->config->autoconnect = TRUE;
  link = stm32_link_new ("auto", fixture->config);
  /* Nobody asked: it connects on its own. */
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  stm32_sim_expect (fixture->sim, "accepted", WAIT_MS);
  /* Disconnect() keeps it down, Autoconnect off or not... */
  stm32_test_link_disconnect (link);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_DISCONNECTED);
  /* ...until autoconnect is switched on again. */
  stm32_link_set_autoconnect (link, FALSE);
  stm32_link_set_autoconnect (link, TRUE);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  stm32_test_link_disconnect (link);
}

/* A long backoff is cut short when the PC's network changes. */
static void
test_network_change_resets_backoff (void)
{
  g_autoptr (Stm32LinkConfig) config = test_config (unused_port ());
  g_autoptr (Stm32Link) link = NULL;
  guint attempts;

  config->retry_min = config->retry_max = 60000;
  config->autoconnect = TRUE;
  link = stm32_link_new ("roaming", config);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  g_assert_cmpuint (stm32_link_get_retry_in (link), >=, 48000);
  attempts = stm32_test_link_history_length (link);

  stm32_link_network_changed (link);
  stm32_test_wait_until (stm32_test_link_history_length (link) > attempts &&
                             stm32_link_get_state (link) == STM32_LINK_STATE_WAITING,
                         WAIT_MS);
  stm32_test_link_disconnect (link);
}

/* A caller cancels a transaction still waiting behind another: it is answered
 * at once, and its request never reaches the board. */
static void
test_transaction_cancel_queued (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GBytes) first = g_bytes_new_static ("first", 5);
  g_autoptr (GBytes) second = g_bytes_new_static ("second", 6);
  g_autoptr (GAsyncResult) first_result = NULL, second_result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (JsonObject) frame = NULL;
  g_autofree char *third = NULL;

  /* The first request went out: once it times out, the next may go when
   * ReplyGrace says its late reply will not come. */
  fixture->config->reply_grace = 100;
  link = stm32_link_new ("cancel", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_link_transact_async (link, first, 500, NULL, stm32_test_store_result, &first_result);
  stm32_link_transact_async (link, second, 5000, cancellable, stm32_test_store_result,
                             &second_result);
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  g_cancellable_cancel (cancellable);
  stm32_test_wait_until (second_result != NULL, WAIT_MS);
  /* Answered at once, not when the request ahead of it times out. */
  g_assert_null (first_result);
  reply = stm32_link_transact_finish (link, second_result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* The first times out on its own; the next request is the board's second frame. */
  stm32_test_wait_until (first_result != NULL, WAIT_MS);
  g_assert_null (stm32_link_transact_finish (link, first_result, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  third = stm32_test_link_transact (link, "third", 200, &error);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "third");
  stm32_test_link_disconnect (link);
}

/* A caller cancels a transaction whose request the board already has: the
 * board's answer is swallowed, never handed to the next transaction. */
static void
test_transaction_cancel_written (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("orphan", fixture->config);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GBytes) request = g_bytes_new_static ("theirs", 6);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autofree char *mine = NULL;

  g_assert_true (stm32_test_link_connect (link, NULL));
  stm32_sim_command (fixture->sim, "blackhole on");
  stm32_link_transact_async (link, request, 5000, cancellable, stm32_test_store_result, &result);
  g_cancellable_cancel (cancellable);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  stm32_sim_command (fixture->sim, "blackhole off");
  mine = stm32_test_link_transact (link, "mine", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mine, ==, "mine");
  stm32_test_link_disconnect (link);
}

/* A transaction asked for while a heartbeat waits for its answer goes out
 * after that answer, so it never takes the heartbeat's reply as its own. */
static void
test_transaction_after_heartbeat (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GBytes) request = g_bytes_new_static ("mine", 4);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GError) error = NULL;

  fixture->config->heartbeat = g_bytes_new_static ("ping", 4);
  fixture->config->heartbeat_interval = 50;
  fixture->config->heartbeat_timeout = 5000;
  link = stm32_link_new ("heartbeat-order", fixture->config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  /* The board stops reading: the heartbeat goes out and waits unanswered. */
  stm32_sim_command (fixture->sim, "blackhole on");
  stm32_test_wait_until (frames_sent (link) >= 1, WAIT_MS);
  stm32_link_transact_async (link, request, 5000, NULL, stm32_test_store_result, &result);
  stm32_sim_command (fixture->sim, "blackhole off");
  stm32_test_wait_until (result != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, result, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), "mine", 4);
  stm32_test_link_disconnect (link);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* The first GTask starts GLib's worker context, whose eventfd stays for
   * the process's life: not the fd of a link, which the fd counts are about. */
  g_type_ensure (G_TYPE_TASK);

  add_test ("/link/cycles/leaky-firmware",
            STM32_SIM_OPTIONS ("--mode", "leak", "--slots", "2", "--when-full", "rst"),
            test_cycles_leaky_firmware);
  add_test ("/link/cycles/plain-close-fails",
            STM32_SIM_OPTIONS ("--mode", "leak", "--slots", "2", "--when-full", "rst"),
            test_cycles_plain_close_fails);
  add_test ("/link/classify/remote-closed-then-reconnect", STM32_SIM_OPTIONS ("--reply", "none"),
            test_board_closes_then_reconnect);
  g_test_add_func ("/link/classify/refused-backoff", test_refused_backoff);
  add_test ("/link/classify/server-busy", STM32_SIM_OPTIONS ("--slots", "1", "--when-full", "rst"),
            test_server_busy);
  add_test ("/link/classify/connect-timeout",
            STM32_SIM_OPTIONS ("--slots", "1", "--when-full", "drop"), test_connect_timeout);
  add_test ("/link/classify/reset", STM32_SIM_OPTIONS ("--blackhole-after", "0", "--reply", "none"),
            test_board_reset);
  add_test ("/link/close/graceful", STM32_SIM_OPTIONS ("--mode", "good"),
            test_graceful_close_good_firmware);
  add_test ("/link/dead-peer/heartbeat", STM32_SIM_OPTIONS ("--blackhole-after", "1"),
            test_blackhole_heartbeat);
  add_test ("/link/dead-peer/idle-timeout", STM32_SIM_OPTIONS ("--reply", "none"),
            test_idle_timeout);
  add_test ("/link/send/errors", STM32_SIM_OPTIONS ("--framing", "json", "--reply", "none"),
            test_send_errors);
  add_test ("/link/send/queue-full", STM32_SIM_OPTIONS ("--reply", "none"), test_queue_full);
  add_test ("/link/transact/in-order", STM32_SIM_OPTIONS ("--reply", "echo"),
            test_transactions_in_order);
  add_test ("/link/transact/timeout", STM32_SIM_OPTIONS ("--reply", "none"),
            test_transaction_timeout);
  add_test ("/link/transact/late-reply", STM32_SIM_OPTIONS ("--reply", "echo"),
            test_transaction_late_reply);
  add_test ("/link/transact/disconnect", STM32_SIM_OPTIONS ("--reply", "none"),
            test_transaction_disconnect);
  add_test ("/link/transact/abandoned-reply", STM32_SIM_OPTIONS ("--reply", "echo"),
            test_transaction_abandoned_reply);
  g_test_add_func ("/link/receive/bad-frame", test_bad_frame_from_board);
  g_test_add_func ("/link/dead-peer/keepalive", test_dead_peer_keepalive);
  g_test_add_func ("/link/dead-peer/user-timeout", test_dead_peer_user_timeout);
  add_test ("/link/close/connect-disconnect-race",
            STM32_SIM_OPTIONS ("--mode", "leak", "--slots", "50"), test_connect_disconnect_race);
  g_test_add_func ("/link/close/after-board-reset", test_close_after_board_reset);
  g_test_add_func ("/link/send/acknowledged-before-reset", test_acknowledged_before_reset);
  g_test_add_func ("/link/transact/grace-reply-unread", test_transaction_grace_reply_unread);
  g_test_add_func ("/link/transact/grace-garbage", test_transaction_grace_garbage);
  g_test_add_func ("/link/dead-peer/heartbeat-answer-unread", test_heartbeat_answer_unread);
  add_test ("/link/construct/config", STM32_SIM_OPTIONS ("--reply", "echo"), test_construct_config);
  g_test_add_func ("/link/construct/preconditions-first", test_construct_preconditions_first);
  add_test ("/link/close/connect-during-close", STM32_SIM_OPTIONS ("--mode", "leak"),
            test_connect_during_close);
  add_test ("/link/autoconnect", STM32_SIM_OPTIONS ("--reply", "echo"), test_autoconnect);
  g_test_add_func ("/link/backoff/network-change", test_network_change_resets_backoff);
  add_test ("/link/transact/cancel-queued", STM32_SIM_OPTIONS ("--reply", "none"),
            test_transaction_cancel_queued);
  add_test ("/link/transact/cancel-written", STM32_SIM_OPTIONS ("--reply", "echo"),
            test_transaction_cancel_written);
  add_test ("/link/transact/after-heartbeat", STM32_SIM_OPTIONS ("--reply", "echo"),
            test_transaction_after_heartbeat);
  return g_test_run ();
}
