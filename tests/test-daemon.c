/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stm32d on a private bus against the board simulator: every Link1 member as
 * a D-Bus client sees it — properties and their change signals, replies and
 * error names, signals in order — and the daemon's life cycle.
 */
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/stat.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-error.h"
#include "stm32-names.h"
#include "test-util.h"

#define WAIT_MS 10000

static char *
variant_text (GVariant *bytes)
{
  gsize len;
  const char *data = g_variant_get_fixed_array (bytes, &len, 1);

  return g_strndup (data, len);
}

/* ---- fixture: the board, and stm32d with one link to it -------------------------- */

typedef struct
{
  Stm32Sim *sim; /* started with the test's options (its fixture data) */
  char *port;    /* the simulator's, for stm32d's --port */
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link; /* "default", owned by the daemon */
} Fixture;

/* The board alone, for a test that starts stm32d its own way. */
static void
board_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->port = g_strdup_printf ("%u", stm32_sim_get_port (fixture->sim));
}

static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  board_setup (fixture, options);
  fixture->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", fixture->port, NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
}

/* What a test stopped itself, it took out of the fixture. */
static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  if (fixture->daemon != NULL)
    stm32_daemon_stop (fixture->daemon);
  if (fixture->sim != NULL)
    stm32_sim_stop (fixture->sim);
  g_free (fixture->port);
}

static void
add_test (const char *path, const char *const *options, void (*setup) (Fixture *, gconstpointer),
          void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, options, setup, test, fixture_teardown);
}

/* ---- racing calls ------------------------------------------------------------ */

/* Counts answers; only stm32d's own errors may come back, never the bus's. */
static void
on_call_counted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);
  guint *count = user_data;

  g_assert_true (reply != NULL || error->domain == STM32_ERROR);
  (*count)++;
}

/* Connect, twenty other calls and Disconnect sent back to back, forty rounds,
 * against firmware that ignores EOF: every socket that reached the board ends
 * with our RST, so the board ends with every slot free. (Each round waits for
 * its answers: dbus-daemon refuses more than 128 calls in flight.) */
static void
test_connect_disconnect_race (Fixture *fixture, gconstpointer options)
{
  const guint rounds = 40;
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *config = g_build_filename (dir, "stm32d.conf", NULL);
  GDBusProxy *proxy;
  guint answered = 0, calls = 0;
  g_autoptr (JsonObject) status = NULL;

  stm32_test_write_file (config,
                         "[Link default]\nHost=127.0.0.1\nPort=%s\nAutoconnect=false\n"
                         "CloseTimeout=50\n",
                         fixture->port);
  fixture->daemon = stm32_daemon_start ("--config", config, NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
  proxy = G_DBUS_PROXY (fixture->link);
  for (guint round = 0; round < rounds; round++)
    {
      g_dbus_proxy_call (proxy, "Connect", NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_call_counted,
                         &answered);
      for (guint i = 0; i < 20; i++)
        g_dbus_proxy_call (proxy, i % 2 ? "Transact" : "Send",
                           i % 2 ? g_variant_new ("(@ayu)", stm32_daemon_bytes ("race"), 1000)
                                 : g_variant_new ("(@ay)", stm32_daemon_bytes ("race")),
                           G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_call_counted, &answered);
      g_dbus_proxy_call (proxy, "Disconnect", NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                         on_call_counted, &answered);
      calls += 22;
      stm32_test_wait_until (answered == calls, WAIT_MS);
    }
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "disconnected"), WAIT_MS);
  /* A slot is released once the board has the RST: its own account says. */
  stm32_test_poll_until (stm32_sim_status_int (fixture->sim, "slots_in_use") == 0, WAIT_MS);
  status = stm32_sim_status (fixture->sim);
  g_test_message ("the board accepted %" G_GINT64_FORMAT " connections",
                  json_object_get_int_member (status, "accepted"));
  g_assert_cmpint (g_unlink (config), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

/* ---- properties --------------------------------------------------------------- */

static const char *
history_close (GVariant *history, gsize i, gint64 *fin_delay)
{
  g_autoptr (GVariant) entry = g_variant_get_child_value (history, i);
  const char *close = NULL;

  g_assert_true (g_variant_lookup (entry, "fin-delay", "x", fin_delay));
  g_assert_true (g_variant_lookup (entry, "close", "&s", &close));
  return g_intern_string (close);
}

/* CloseStrategy, its reason and CloseWait follow what the link learned, and
 * the history says how each connection was closed. */
static void
test_close_strategy (Fixture *fixture, gconstpointer options)
{
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *config = g_build_filename (dir, "stm32d.conf", NULL);
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GError) error = NULL;
  gint64 fin_delay = 0;

  stm32_test_write_file (config,
                         "[Link default]\nHost=127.0.0.1\nPort=%s\nAutoconnect=false\n"
                         "CloseTimeout=300\n",
                         fixture->port);
  fixture->daemon = stm32_daemon_start ("--config", config, NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
  g_assert_cmpstr (stm32_dbus_link1_get_close_strategy (fixture->link), ==, "graceful");
  g_assert_cmpuint (stm32_dbus_link1_get_close_wait (fixture->link), ==, 300);
  g_assert_cmpstr (stm32_dbus_link1_get_close_strategy_reason (fixture->link), !=, "");

  for (guint i = 0; i < 4; i++)
    {
      g_assert_true (stm32_daemon_link_connect (fixture->link, NULL));
      g_assert_true (stm32_daemon_link_send (fixture->link, "x", NULL));
      stm32_daemon_link_disconnect (fixture->link);
    }
  stm32_test_wait_until (
      g_strcmp0 (stm32_dbus_link1_get_close_strategy (fixture->link), "learned-reset") == 0,
      WAIT_MS);
  g_assert_nonnull (
      strstr (stm32_dbus_link1_get_close_strategy_reason (fixture->link), "ignores EOF"));
  g_assert_cmpuint (stm32_dbus_link1_get_close_wait (fixture->link), ==, 300);

  g_assert_true (stm32_dbus_link1_call_get_history_sync (fixture->link, &history, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_n_children (history), ==, 4);
  for (gsize i = 0; i < 3; i++)
    {
      g_assert_cmpstr (history_close (history, i, &fin_delay), ==, "graceful");
      g_assert_cmpint (fin_delay, ==, -1);
    }
  g_assert_cmpstr (history_close (history, 3, &fin_delay), ==, "learned-reset");
  g_assert_cmpint (fin_delay, ==, -1);
  g_assert_cmpint (g_unlink (config), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

static void
test_properties (Fixture *fixture, gconstpointer options)
{
  /* Autoconnect defaults to true: the daemon connects without being asked. */
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_name (fixture->link), ==, "default");
  g_assert_cmpstr (stm32_dbus_link1_get_host (fixture->link), ==, "127.0.0.1");
  g_assert_cmpuint (stm32_dbus_link1_get_port (fixture->link), ==,
                    stm32_sim_get_port (fixture->sim));
  g_assert_cmpstr (stm32_dbus_link1_get_framing (fixture->link), ==, "line");
  g_assert_true (stm32_dbus_link1_get_autoconnect (fixture->link));
  g_assert_cmpstr (stm32_dbus_link1_get_last_error (fixture->link), ==, "none");
  g_assert_true (
      g_str_has_prefix (stm32_dbus_link1_get_local_address (fixture->link), "127.0.0.1:"));
  g_assert_cmpuint (stm32_dbus_link1_get_connected_since (fixture->link), >, 0);
  stm32_test_wait_until (stm32_dbus_link1_get_connects (fixture->link) == 1, WAIT_MS);
  g_assert_cmpuint (stm32_dbus_manager1_get_version (stm32_daemon_get_manager (fixture->daemon)),
                    ==, 1);

  /* Writing Autoconnect over the bus reaches the link. */
  stm32_dbus_link1_set_autoconnect (fixture->link, FALSE);
  stm32_test_wait_until (!stm32_dbus_link1_get_autoconnect (fixture->link), WAIT_MS);

  /* The reply may overtake the PropertiesChanged that follows it. */
  stm32_daemon_link_disconnect (fixture->link);
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "disconnected"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_local_address (fixture->link), ==, "");
}

typedef struct
{
  guint with_state;
  guint with_state_and_error;
  GPtrArray *states;
} ChangeLog;

static void
on_properties_changed (GDBusProxy *proxy, GVariant *changed, GStrv invalidated, ChangeLog *log)
{
  const char *state = NULL, *error = NULL;

  if (!g_variant_lookup (changed, "State", "&s", &state))
    return;
  log->with_state++;
  g_ptr_array_add (log->states, g_strdup (state));
  if (g_variant_lookup (changed, "LastError", "&s", &error))
    log->with_state_and_error++;
}

/* The board drops a healthy connection: State leaves "connected" and
 * LastError leaves "none" in one PropertiesChanged, so no observer ever sees
 * one without the other. A refused connect then names its error on the wire. */
static void
test_state_and_error_together (Fixture *fixture, gconstpointer options)
{
  ChangeLog log = { 0, 0, g_ptr_array_new_with_free_func (g_free) };
  g_autoptr (GError) error = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_last_error (fixture->link), ==, "none");
  g_signal_connect (fixture->link, "g-properties-changed", G_CALLBACK (on_properties_changed),
                    &log);
  stm32_sim_command (fixture->sim, "rst-all");
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "waiting"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_last_error (fixture->link), !=, "none");
  g_assert_cmpstr (stm32_dbus_link1_get_last_error_message (fixture->link), !=, "");
  g_assert_cmpuint (stm32_dbus_link1_get_retry_in (fixture->link), >, 0);
  g_assert_cmpuint (log.with_state, >, 0);
  g_assert_cmpuint (log.with_state_and_error, ==, 1);
  g_signal_handlers_disconnect_by_data (fixture->link, &log);
  g_ptr_array_unref (log.states);
  stm32_daemon_link_disconnect (fixture->link);
  stm32_sim_stop (g_steal_pointer (&fixture->sim));

  /* Nothing listens any more. */
  g_assert_false (stm32_daemon_link_connect (fixture->link, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Refused", STM32_ERROR_REFUSED);
  stm32_daemon_link_disconnect (fixture->link);
}

/* ---- methods ---------------------------------------------------------------------- */

typedef struct
{
  GPtrArray *frames;
} ReceivedLog;

static void
on_received (Stm32DbusLink1 *link, GVariant *frame, ReceivedLog *log)
{
  g_ptr_array_add (log->frames, variant_text (frame));
}

static void
test_send_transact_received (Fixture *fixture, gconstpointer options)
{
  ReceivedLog log = { g_ptr_array_new_with_free_func (g_free) };
  GAsyncResult *sent[50] = { NULL };
  g_autofree char *reply = NULL;
  g_autoptr (GError) error = NULL;

  g_signal_connect (fixture->link, "received", G_CALLBACK (on_received), &log);
  g_assert_true (stm32_daemon_link_connect (fixture->link, NULL));
  reply = stm32_daemon_link_transact (fixture->link, "hello", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "hello");

  /* Fifty sends in flight at once: each answered, each echoed, in order. The
   * transaction's reply went to its caller only: it is not Received. */
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      g_autofree char *text = g_strdup_printf ("frame %u", i);

      stm32_dbus_link1_call_send (fixture->link, stm32_daemon_bytes (text), NULL,
                                  stm32_test_store_result, &sent[i]);
    }
  stm32_test_wait_until (log.frames->len == G_N_ELEMENTS (sent), WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      g_autofree char *text = g_strdup_printf ("frame %u", i);

      stm32_test_wait_until (sent[i] != NULL, WAIT_MS);
      g_assert_true (stm32_dbus_link1_call_send_finish (fixture->link, sent[i], NULL));
      g_object_unref (sent[i]);
      g_assert_cmpstr (log.frames->pdata[i], ==, text);
    }
  /* Counters are published, coalesced. */
  stm32_test_wait_until (stm32_dbus_link1_get_frames_received (fixture->link) == 51, WAIT_MS);
  g_assert_cmpuint (stm32_dbus_link1_get_frames_sent (fixture->link), ==, 51);
  g_signal_handlers_disconnect_by_data (fixture->link, &log);
  g_ptr_array_unref (log.frames);
}

static void
test_errors (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *big = g_strnfill (70000, 'x');
  g_autofree char *reply = NULL;

  fixture->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", fixture->port, "--framing",
                                        "json", NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  stm32_daemon_link_disconnect (fixture->link);

  g_assert_false (stm32_daemon_link_send (fixture->link, "1", &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.NotConnected", STM32_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  g_assert_true (stm32_daemon_link_connect (fixture->link, NULL));
  g_assert_false (stm32_daemon_link_send (fixture->link, "{nope", &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidFrame", STM32_ERROR_INVALID_FRAME);
  g_clear_error (&error);
  g_assert_false (stm32_daemon_link_send (fixture->link, big, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.FrameTooLarge", STM32_ERROR_FRAME_TOO_LARGE);
  g_clear_error (&error);
  reply = stm32_daemon_link_transact (fixture->link, "1", 0, &error);
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidArgs", STM32_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  reply = stm32_daemon_link_transact (fixture->link, "2", 200, &error);
  g_assert_null (reply);
  stm32_daemon_assert_error (error, "org.stm32d.Error.Timeout", STM32_ERROR_TIMEOUT);
  /* Only the valid frame reached the board. */
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "frame"), ==, 1);
}

static void
test_history (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) entry = NULL;
  const char *reason = NULL, *closed_by = NULL;
  gboolean aborted = FALSE;
  gint64 started = 0, closed = 0, last_sent = 0, last_received = -1;

  g_assert_true (stm32_daemon_link_connect (fixture->link, NULL));
  g_assert_true (stm32_daemon_link_send (fixture->link, "x", NULL));
  stm32_daemon_link_disconnect (fixture->link);
  g_assert_true (stm32_dbus_link1_call_get_history_sync (fixture->link, &history, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_n_children (history), ==, 1);
  entry = g_variant_get_child_value (history, 0);
  g_assert_true (g_variant_lookup (entry, "reason", "&s", &reason));
  g_assert_true (g_variant_lookup (entry, "closed-by", "&s", &closed_by));
  g_assert_true (g_variant_lookup (entry, "aborted", "b", &aborted));
  g_assert_true (g_variant_lookup (entry, "started", "x", &started));
  g_assert_true (g_variant_lookup (entry, "closed", "x", &closed));
  g_assert_true (g_variant_lookup (entry, "last-sent", "x", &last_sent));
  g_assert_true (g_variant_lookup (entry, "last-received", "x", &last_received));
  g_assert_cmpstr (reason, ==, "local");
  g_assert_cmpstr (closed_by, ==, "pc");
  g_assert_true (aborted); /* leaky firmware never answered our FIN */
  g_assert_cmpint (closed, >=, started);
  /* The frame went out and its echo came back (the echo may be read before
   * the write's callback runs, so the two are not ordered). */
  g_assert_cmpint (last_sent, >=, started);
  g_assert_cmpint (last_sent, <=, closed);
  g_assert_cmpint (last_received, >=, started);
  g_assert_cmpint (last_received, <=, closed);
}

/* ---- clients ------------------------------------------------------------------------ */

/* A client is killed while its transaction waits for the board. The board's
 * late answer to it goes nowhere — certainly not to the next client, whose
 * transaction gets its own reply — and nothing else changes for anyone. */
static void
test_vanishing_client (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSubprocess) other = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  /* The board stops reading, so the other client's request waits unanswered. */
  stm32_sim_command (fixture->sim, "blackhole on");
  other = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                            &error, "gdbus", "call", "--session", "--dest", "org.stm32d",
                            "--object-path", "/org/stm32d/link/default", "--method",
                            "org.stm32d.Link1.Transact", "[byte 0x3f]", "60000", NULL);
  g_assert_no_error (error);
  stm32_test_wait_until (stm32_dbus_link1_get_frames_sent (fixture->link) == 1, WAIT_MS);
  g_subprocess_force_exit (other);

  /* The board wakes up and answers the dead client's "?"; we ask for ours. */
  stm32_sim_command (fixture->sim, "blackhole off");
  reply = stm32_daemon_link_transact (fixture->link, "mine", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "mine");
  g_assert_true (stm32_daemon_link_send (fixture->link, "still here", &error));
  g_assert_true (stm32_daemon_link_state_is (fixture->link, "connected"));
}

/* ---- life cycle ---------------------------------------------------------------------- */

/* SIGTERM with sends in flight: each is answered, what was acknowledged
 * reached the board, the board sees a graceful close, and the exit status is 0. */
static void
test_sigterm_flushes (Fixture *fixture, gconstpointer options)
{
  GAsyncResult *sent[20] = { NULL };
  g_autoptr (JsonObject) released = NULL;
  guint acknowledged = 0;

  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    stm32_dbus_link1_call_send (fixture->link, stm32_daemon_bytes ("payload"), NULL,
                                stm32_test_store_result, &sent[i]);
  stm32_test_wait_until (sent[0] != NULL, WAIT_MS);
  stm32_daemon_send_signal (fixture->daemon, SIGTERM);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      stm32_test_wait_until (sent[i] != NULL, WAIT_MS);
      acknowledged += stm32_dbus_link1_call_send_finish (fixture->link, sent[i], NULL);
      g_object_unref (sent[i]);
    }
  g_assert_cmpint (stm32_daemon_wait_exit (fixture->daemon), ==, 0);
  stm32_daemon_free (g_steal_pointer (&fixture->daemon));

  released = stm32_sim_wait_event (fixture->sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "closed-after-eof");
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "frame"), ==, acknowledged);
  g_assert_cmpuint (acknowledged, >, 0);
}

static void
test_bad_command_line (void)
{
  g_autofree char *err = NULL;

  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--port", "99999", "--host", "x", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--port 99999 is not between 1 and 65535"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--host", "x", "--framing", "xml", NULL), ==,
                   78);
  g_assert_nonnull (strstr (err, "[Link default] Framing:"));
  g_assert_nonnull (strstr (err, "raw, line, u16be, u32be, json"));
  g_clear_pointer (&err, g_free);
  /* --host is checked by the rules that check Host= in the file. */
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--host", "board:8080", NULL), ==, 78);
  g_assert_nonnull (strstr (err, "[Link default] Host:"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--port", "8080", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--port and --framing go with --host"));
}

/* A second stm32d started by mistake finds the name taken and leaves without
 * ever connecting: the board's few slots stay with the first. */
static void
test_second_daemon_leaves_board_alone (Fixture *fixture, gconstpointer options)
{
  g_autofree char *err = NULL;
  g_autoptr (JsonObject) status = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  g_assert_cmpint (
      stm32_daemon_run_to_exit (&err, "--host", "127.0.0.1", "--port", fixture->port, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "taken by another stm32d"));
  status = stm32_sim_status (fixture->sim);
  g_assert_cmpint (json_object_get_int_member (status, "accepted"), ==, 1);
  g_assert_true (stm32_daemon_link_state_is (fixture->link, "connected"));
}

/* ---- configuration ---------------------------------------------------------------- */

static void
call_reload (Stm32Daemon *daemon, GError **error)
{
  Stm32DbusManager1 *manager = stm32_daemon_get_manager (daemon);
  g_autoptr (GAsyncResult) result = NULL;

  stm32_dbus_manager1_call_reload (manager, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  stm32_dbus_manager1_call_reload_finish (manager, result, error);
}

/* Reload adds and removes links, recreates a changed one, leaves an unchanged
 * one (and its connection) alone, and refuses a bad file without changing anything. */
static void
test_reload (void)
{
  Stm32Sim *board_a = stm32_sim_start ("--reply", "echo", NULL);
  Stm32Sim *board_b = stm32_sim_start ("--reply", "echo", NULL);
  guint16 port_a = stm32_sim_get_port (board_a), port_b = stm32_sim_get_port (board_b);
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autoptr (GError) error = NULL;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *a, *b, *c;
  g_autoptr (JsonObject) status = NULL;

  stm32_test_write_file (path,
                         "[Link a]\nHost=127.0.0.1\nPort=%u\n\n[Link b]\nHost=127.0.0.1\nPort=%u\n",
                         port_a, port_b);
  daemon = stm32_daemon_start ("--config", path, NULL);
  a = stm32_daemon_get_link (daemon, "a");
  b = stm32_daemon_get_link (daemon, "b");
  stm32_test_wait_until (stm32_daemon_link_state_is (a, "connected") &&
                             stm32_daemon_link_state_is (b, "connected"),
                         WAIT_MS);

  /* b goes, c arrives on b's board, a is untouched. */
  stm32_test_write_file (path,
                         "[Link a]\nHost=127.0.0.1\nPort=%u\n\n[Link c]\nHost=127.0.0.1\nPort=%u\n",
                         port_a, port_b);
  call_reload (daemon, &error);
  g_assert_no_error (error);
  c = stm32_daemon_get_link (daemon, "c");
  stm32_test_wait_until (stm32_daemon_peek_link (daemon, "b") == NULL, WAIT_MS);
  stm32_test_wait_until (stm32_daemon_link_state_is (c, "connected"), WAIT_MS);
  a = stm32_daemon_peek_link (daemon, "a");
  g_assert_true (stm32_daemon_link_state_is (a, "connected"));
  g_assert_cmpuint (stm32_dbus_link1_get_connects (a), ==, 1);
  status = stm32_sim_status (board_a);
  g_assert_cmpint (json_object_get_int_member (status, "accepted"), ==, 1);
  g_clear_pointer (&status, json_object_unref);
  /* b's connection was closed, not abandoned. */
  stm32_sim_expect (board_b, "released", WAIT_MS);

  /* A bad file is refused, naming where, and nothing changes. */
  stm32_test_write_file (path, "[Link a]\nHost=127.0.0.1\nPort=%u\nRetryMin=soon\n", port_a);
  call_reload (daemon, &error);
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidArgs", STM32_ERROR_INVALID_ARGS);
  g_assert_nonnull (strstr (error->message, "stm32d.conf:4: [Link a] RetryMin:"));
  g_clear_error (&error);
  g_assert_nonnull (stm32_daemon_peek_link (daemon, "c"));

  /* So is a file with two links to one board, naming both. */
  stm32_test_write_file (path,
                         "[Link a]\nHost=127.0.0.1\nPort=%u\n\n[Link c]\nHost=127.0.0.1\nPort=%u\n",
                         port_a, port_a);
  call_reload (daemon, &error);
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidArgs", STM32_ERROR_INVALID_ARGS);
  g_assert_nonnull (strstr (
      error->message, "stm32d.conf:5: [Link c]: reaches the same board as [Link a] on line 1"));
  g_clear_error (&error);
  c = stm32_daemon_peek_link (daemon, "c");
  g_assert_cmpuint (stm32_dbus_link1_get_port (c), ==, port_b);
  g_assert_true (stm32_daemon_link_state_is (c, "connected"));
  status = stm32_sim_status (board_a);
  g_assert_cmpint (json_object_get_int_member (status, "accepted"), ==, 1);
  g_clear_pointer (&status, json_object_unref);

  /* a changes board (by SIGHUP this time): recreated, connected to b's board. */
  stm32_test_write_file (path, "[Link a]\nHost=127.0.0.1\nPort=%u\n", port_b);
  stm32_daemon_send_signal (daemon, SIGHUP);
  stm32_test_wait_until (stm32_daemon_peek_link (daemon, "c") == NULL, WAIT_MS);
  stm32_test_wait_until (
      stm32_daemon_peek_link (daemon, "a") != NULL &&
          stm32_dbus_link1_get_port (stm32_daemon_peek_link (daemon, "a")) == port_b &&
          stm32_daemon_link_state_is (stm32_daemon_peek_link (daemon, "a"), "connected"),
      WAIT_MS);
  stm32_sim_expect (board_a, "released", WAIT_MS);

  stm32_daemon_stop (daemon);
  stm32_sim_stop (board_a);
  stm32_sim_stop (board_b);
  g_unlink (path);
  g_rmdir (dir);
}

/* What a listener that asks for every InterfacesAdded, whoever sends it,
 * hears around stm32d's start. */
typedef struct
{
  gboolean owned;         /* NameOwnerChanged gave org.stm32d an owner */
  guint added_before;     /* InterfacesAdded heard before that */
  GPtrArray *added_after; /* the object path of each heard after it */
} StartSignals;

static void
on_start_owner_changed (GDBusConnection *connection, const char *sender, const char *path,
                        const char *interface, const char *member, GVariant *parameters,
                        gpointer user_data)
{
  StartSignals *seen = user_data;
  const char *new_owner;

  g_variant_get (parameters, "(&s&s&s)", NULL, NULL, &new_owner);
  seen->owned |= *new_owner != '\0';
}

static void
on_start_interfaces_added (GDBusConnection *connection, const char *sender, const char *path,
                           const char *interface, const char *member, GVariant *parameters,
                           gpointer user_data)
{
  StartSignals *seen = user_data;
  const char *object;

  g_variant_get (parameters, "(&o@a{sa{sv}})", &object, NULL);
  if (seen->owned)
    g_ptr_array_add (seen->added_after, g_strdup (object));
  else
    seen->added_before++;
}

/* The links are in place, all their properties to be read, before stm32d
 * owns its name, and no InterfacesAdded is sent for them: one sent before
 * the name is taken reaches no client of the name, only a listener that
 * matches every sender (a monitor), so it was work for nothing, thousands
 * of signals with every property at a large start. A link added later, by
 * Reload, is announced as before. */
static void
test_start_sends_no_interfaces_added (void)
{
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autoptr (GVariant) id = NULL;
  g_autoptr (GError) error = NULL;
  StartSignals seen = { .added_after = g_ptr_array_new_with_free_func (g_free) };
  const char *links = "[Link a]\nHost=127.0.0.1\nPort=1\nAutoconnect=false\n\n"
                      "[Link b]\nHost=127.0.0.1\nPort=2\nAutoconnect=false\n";
  Stm32Daemon *daemon;
  guint owner_watch, added_watch;

  g_assert_nonnull (bus);
  owner_watch = g_dbus_connection_signal_subscribe (
      bus, "org.freedesktop.DBus", "org.freedesktop.DBus", "NameOwnerChanged",
      "/org/freedesktop/DBus", STM32_DBUS_NAME, G_DBUS_SIGNAL_FLAGS_NONE, on_start_owner_changed,
      &seen, NULL);
  added_watch = g_dbus_connection_signal_subscribe (
      bus, NULL, "org.freedesktop.DBus.ObjectManager", "InterfacesAdded", NULL, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_start_interfaces_added, &seen, NULL);
  /* The bus handles our calls in order: once this is answered, both match
   * rules are in place, before stm32d exists. */
  id = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "GetId", NULL, G_VARIANT_TYPE ("(s)"),
                                    G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, &error);
  g_assert_no_error (error);

  stm32_test_write_file (path, "%s", links);
  daemon = stm32_daemon_start ("--config", path, NULL);
  /* Signals from one sender, and the bus's about it, come in the order sent. */
  stm32_test_wait_until (seen.owned, WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_name (stm32_daemon_get_link (daemon, "a")), ==, "a");
  g_assert_cmpuint (stm32_dbus_link1_get_port (stm32_daemon_get_link (daemon, "b")), ==, 2);
  g_assert_true (stm32_daemon_link_state_is (stm32_daemon_get_link (daemon, "a"), "disconnected"));
  g_assert_cmpuint (seen.added_before, ==, 0);
  g_assert_cmpuint (seen.added_after->len, ==, 0);

  stm32_test_write_file (path, "%s\n[Link c]\nHost=127.0.0.1\nPort=3\nAutoconnect=false\n", links);
  call_reload (daemon, &error);
  g_assert_no_error (error);
  stm32_test_wait_until (seen.added_after->len > 0, WAIT_MS);
  g_assert_cmpuint (stm32_dbus_link1_get_port (stm32_daemon_get_link (daemon, "c")), ==, 3);
  g_assert_cmpuint (seen.added_after->len, ==, 1);
  g_assert_cmpstr (seen.added_after->pdata[0], ==, STM32_DBUS_LINK_PATH_PREFIX "c");
  g_assert_cmpuint (seen.added_before, ==, 0);

  stm32_daemon_stop (daemon);
  g_dbus_connection_signal_unsubscribe (bus, owner_watch);
  g_dbus_connection_signal_unsubscribe (bus, added_watch);
  g_ptr_array_unref (seen.added_after);
  g_unlink (path);
  g_rmdir (dir);
}

/* A bad config file stops the daemon before it does anything, saying where and why. */
static void
test_bad_config_refused (void)
{
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autofree char *err = NULL;

  stm32_test_write_file (path, "[Link bench]\nHost=10.0.0.7\nKeepaliveIdle=5\nFraming=xml\n");
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--config", path, NULL), ==, 78);
  g_assert_nonnull (strstr (err, "stm32d.conf:4: [Link bench] Framing:"));
  g_clear_pointer (&err, g_free);
  stm32_test_write_file (path, "[Link bench]\nHost=10.0.0.7\nColour=blue\n");
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--config", path, NULL), ==, 78);
  g_assert_nonnull (strstr (err, "stm32d.conf:3: [Link bench] Colour:"));
  g_clear_pointer (&err, g_free);
  stm32_test_write_file (path, "[Link bench]\nHost=10.0.0.7\n[Link arm]\nHost=10.0.0.7\n");
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--config", path, NULL), ==, 78);
  g_assert_nonnull (
      strstr (err, "stm32d.conf:3: [Link arm]: reaches the same board as [Link bench] on line 1"));
  g_clear_pointer (&err, g_free);
  g_unlink (path);
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--config", path, NULL), ==, 78);
  g_assert_nonnull (strstr (err, path));
  g_clear_pointer (&err, g_free);
  /* A wrong path that never ends is refused before it is read. */
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--config", "/dev/zero", NULL), ==, 78);
  g_assert_nonnull (strstr (err, "stm32d: /dev/zero: is a character device"));
  g_rmdir (dir);
}

/* A config path that is a FIFO with no writer: opening it to read would
 * wait for a writer. stm32d refuses it at once, at start (exit 78) and on
 * Reload (an error, and the main loop still runs). */
static void
test_config_fifo_refused (void)
{
  Stm32Sim *board = stm32_sim_start ("--reply", "echo", NULL);
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autofree char *fifo = g_build_filename (dir, "fifo.conf", NULL);
  g_autofree char *err = NULL;
  g_autofree char *expected = g_strdup_printf (
      "%s: is a FIFO (named pipe); stm32d reads its config only from a regular file", path);
  g_autofree char *reply = NULL;
  g_autoptr (GError) error = NULL;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;

  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--config", fifo, NULL), ==, 78);
  g_assert_nonnull (strstr (err, fifo));
  g_assert_nonnull (strstr (err, ": is a FIFO (named pipe)"));

  stm32_test_write_file (path, "[Link a]\nHost=127.0.0.1\nPort=%u\n",
                         stm32_sim_get_port (board));
  daemon = stm32_daemon_start ("--config", path, NULL);
  link = stm32_daemon_get_link (daemon, "a");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  g_assert_cmpint (g_rename (fifo, path), ==, 0);
  call_reload (daemon, &error);
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidArgs", STM32_ERROR_INVALID_ARGS);
  g_assert_nonnull (strstr (error->message, expected));
  g_clear_error (&error);
  /* Nothing changed, and the link still answers. */
  reply = stm32_daemon_link_transact (stm32_daemon_peek_link (daemon, "a"), "still here", 5000,
                                      &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "still here");

  stm32_daemon_stop (daemon);
  stm32_sim_stop (board);
  g_unlink (path);
  g_rmdir (dir);
}

/* Under systemd: READY=1 once on the bus, WATCHDOG=1 while alive, STOPPING=1 on SIGTERM. */
static void
test_systemd_notify (Fixture *fixture, gconstpointer options)
{
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "notify", NULL);
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) seen = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;

  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  g_setenv ("NOTIFY_SOCKET", path, TRUE);
  g_setenv ("WATCHDOG_USEC", "200000", TRUE);
  fixture->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", fixture->port, NULL);
  g_unsetenv ("NOTIFY_SOCKET");
  g_unsetenv ("WATCHDOG_USEC");

  /* The daemon is another process: a bounded wait on our socket is no race. */
  /* Each notification is its own datagram: wait for all three, whatever their order. */
  while ((!strstr (seen->str, "READY=1") || !strstr (seen->str, "STATUS=Serving") ||
          !strstr (seen->str, "WATCHDOG=1")) &&
         g_socket_condition_timed_wait (socket, G_IO_IN, deadline - g_get_monotonic_time (), NULL,
                                        NULL))
    {
      char buffer[256];
      gssize n = g_socket_receive (socket, buffer, sizeof buffer - 1, NULL, NULL);

      if (n > 0)
        g_string_append_printf (seen, "%.*s\n", (int) n, buffer);
    }
  g_assert_nonnull (strstr (seen->str, "READY=1"));
  g_assert_nonnull (strstr (seen->str, "STATUS=Serving 1 link(s) as org.stm32d"));
  g_assert_nonnull (strstr (seen->str, "WATCHDOG=1"));

  stm32_daemon_send_signal (fixture->daemon, SIGTERM);
  while (!strstr (seen->str, "STOPPING=1") &&
         g_socket_condition_timed_wait (socket, G_IO_IN, deadline - g_get_monotonic_time (), NULL,
                                        NULL))
    {
      char buffer[256];
      gssize n = g_socket_receive (socket, buffer, sizeof buffer - 1, NULL, NULL);

      if (n > 0)
        g_string_append_printf (seen, "%.*s\n", (int) n, buffer);
    }
  g_assert_nonnull (strstr (seen->str, "STOPPING=1"));
  g_assert_cmpint (stm32_daemon_wait_exit (fixture->daemon), ==, 0);
  stm32_daemon_free (g_steal_pointer (&fixture->daemon));
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  add_test ("/daemon/properties", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_properties);
  add_test ("/daemon/state-and-error-together", STM32_SIM_OPTIONS ("--reply", "echo"),
            fixture_setup, test_state_and_error_together);
  add_test ("/daemon/send-transact-received", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_send_transact_received);
  add_test ("/daemon/errors", STM32_SIM_OPTIONS ("--reply", "none"), board_setup, test_errors);
  add_test ("/daemon/connect-disconnect-race",
            STM32_SIM_OPTIONS ("--mode", "leak", "--slots", "50"), board_setup,
            test_connect_disconnect_race);
  add_test ("/daemon/history", STM32_SIM_OPTIONS ("--mode", "leak"), fixture_setup, test_history);
  add_test ("/daemon/close-strategy", STM32_SIM_OPTIONS ("--mode", "leak"), board_setup,
            test_close_strategy);
  add_test ("/daemon/vanishing-client", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_vanishing_client);
  add_test ("/daemon/sigterm-flushes", STM32_SIM_OPTIONS ("--reply", "none", "--mode", "good"),
            fixture_setup, test_sigterm_flushes);
  g_test_add_func ("/daemon/bad-command-line", test_bad_command_line);
  add_test ("/daemon/second-daemon", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_second_daemon_leaves_board_alone);
  g_test_add_func ("/daemon/reload", test_reload);
  g_test_add_func ("/daemon/start-sends-no-interfaces-added", test_start_sends_no_interfaces_added);
  g_test_add_func ("/daemon/bad-config-refused", test_bad_config_refused);
  g_test_add_func ("/daemon/config-fifo-refused", test_config_fifo_refused);
  add_test ("/daemon/systemd-notify", STM32_SIM_OPTIONS ("--reply", "echo"), board_setup,
            test_systemd_notify);
  return stm32_daemon_test_run ();
}
