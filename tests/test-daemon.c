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

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-error.h"
#include "test-util.h"

#define WAIT_MS 10000

static char *
variant_text (GVariant *bytes)
{
  gsize len;
  const char *data = g_variant_get_fixed_array (bytes, &len, 1);

  return g_strndup (data, len);
}

/* ---- properties --------------------------------------------------------------- */

static void
test_properties (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "echo", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  Stm32DbusLink1 *link = stm32_daemon_get_link (daemon, "default");

  /* Autoconnect defaults to true: the daemon connects without being asked. */
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_name (link), ==, "default");
  g_assert_cmpstr (stm32_dbus_link1_get_host (link), ==, "127.0.0.1");
  g_assert_cmpuint (stm32_dbus_link1_get_port (link), ==, stm32_sim_get_port (sim));
  g_assert_cmpstr (stm32_dbus_link1_get_framing (link), ==, "line");
  g_assert_true (stm32_dbus_link1_get_autoconnect (link));
  g_assert_cmpstr (stm32_dbus_link1_get_last_error (link), ==, "none");
  g_assert_true (g_str_has_prefix (stm32_dbus_link1_get_local_address (link), "127.0.0.1:"));
  g_assert_cmpuint (stm32_dbus_link1_get_connected_since (link), >, 0);
  stm32_test_wait_until (stm32_dbus_link1_get_connects (link) == 1, WAIT_MS);
  g_assert_cmpuint (stm32_dbus_manager1_get_version (stm32_daemon_get_manager (daemon)), ==, 1);

  /* Writing Autoconnect over the bus reaches the link. */
  stm32_dbus_link1_set_autoconnect (link, FALSE);
  stm32_test_wait_until (!stm32_dbus_link1_get_autoconnect (link), WAIT_MS);

  /* The reply may overtake the PropertiesChanged that follows it. */
  stm32_daemon_link_disconnect (link);
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "disconnected"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_local_address (link), ==, "");
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
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
test_state_and_error_together (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "echo", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  Stm32DbusLink1 *link = stm32_daemon_get_link (daemon, "default");
  ChangeLog log = { 0, 0, g_ptr_array_new_with_free_func (g_free) };
  g_autoptr (GError) error = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_last_error (link), ==, "none");
  g_signal_connect (link, "g-properties-changed", G_CALLBACK (on_properties_changed), &log);
  stm32_sim_command (sim, "rst-all");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "waiting"), WAIT_MS);
  g_assert_cmpstr (stm32_dbus_link1_get_last_error (link), !=, "none");
  g_assert_cmpstr (stm32_dbus_link1_get_last_error_message (link), !=, "");
  g_assert_cmpuint (stm32_dbus_link1_get_retry_in (link), >, 0);
  g_assert_cmpuint (log.with_state, >, 0);
  g_assert_cmpuint (log.with_state_and_error, ==, 1);
  g_signal_handlers_disconnect_by_data (link, &log);
  g_ptr_array_unref (log.states);
  stm32_daemon_link_disconnect (link);
  stm32_sim_stop (sim);

  /* Nothing listens any more. */
  g_assert_false (stm32_daemon_link_connect (link, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Refused", STM32_ERROR_REFUSED);
  stm32_daemon_link_disconnect (link);
  stm32_daemon_stop (daemon);
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
test_send_transact_received (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "echo", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  Stm32DbusLink1 *link = stm32_daemon_get_link (daemon, "default");
  ReceivedLog log = { g_ptr_array_new_with_free_func (g_free) };
  GAsyncResult *sent[50] = { NULL };
  g_autofree char *reply = NULL;
  g_autoptr (GError) error = NULL;

  g_signal_connect (link, "received", G_CALLBACK (on_received), &log);
  g_assert_true (stm32_daemon_link_connect (link, NULL));
  reply = stm32_daemon_link_transact (link, "hello", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "hello");

  /* Fifty sends in flight at once: each answered, each echoed, in order. The
   * transaction's reply went to its caller only: it is not Received. */
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      g_autofree char *text = g_strdup_printf ("frame %u", i);

      stm32_dbus_link1_call_send (link, stm32_daemon_bytes (text), NULL, stm32_test_store_result,
                                  &sent[i]);
    }
  stm32_test_wait_until (log.frames->len == G_N_ELEMENTS (sent), WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      g_autofree char *text = g_strdup_printf ("frame %u", i);

      stm32_test_wait_until (sent[i] != NULL, WAIT_MS);
      g_assert_true (stm32_dbus_link1_call_send_finish (link, sent[i], NULL));
      g_object_unref (sent[i]);
      g_assert_cmpstr (log.frames->pdata[i], ==, text);
    }
  /* Counters are published, coalesced. */
  stm32_test_wait_until (stm32_dbus_link1_get_frames_received (link) == 51, WAIT_MS);
  g_assert_cmpuint (stm32_dbus_link1_get_frames_sent (link), ==, 51);
  g_signal_handlers_disconnect_by_data (link, &log);
  g_ptr_array_unref (log.frames);
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
}

static void
test_errors (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "none", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = NULL;
  Stm32DbusLink1 *link;
  g_autoptr (GError) error = NULL;
  g_autofree char *big = g_strnfill (70000, 'x');
  g_autofree char *reply = NULL;

  daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, "--framing", "json", NULL);
  link = stm32_daemon_get_link (daemon, "default");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  stm32_daemon_link_disconnect (link);

  g_assert_false (stm32_daemon_link_send (link, "1", &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.NotConnected", STM32_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  g_assert_true (stm32_daemon_link_connect (link, NULL));
  g_assert_false (stm32_daemon_link_send (link, "{nope", &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidFrame", STM32_ERROR_INVALID_FRAME);
  g_clear_error (&error);
  g_assert_false (stm32_daemon_link_send (link, big, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.FrameTooLarge", STM32_ERROR_FRAME_TOO_LARGE);
  g_clear_error (&error);
  reply = stm32_daemon_link_transact (link, "1", 0, &error);
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidArgs", STM32_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  reply = stm32_daemon_link_transact (link, "2", 200, &error);
  g_assert_null (reply);
  stm32_daemon_assert_error (error, "org.stm32d.Error.Timeout", STM32_ERROR_TIMEOUT);
  /* Only the valid frame reached the board. */
  stm32_sim_expect (sim, "frame", WAIT_MS);
  g_assert_cmpuint (stm32_sim_count_events (sim, "frame"), ==, 1);
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
}

static void
test_history (void)
{
  Stm32Sim *sim = stm32_sim_start ("--mode", "leak", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  Stm32DbusLink1 *link = stm32_daemon_get_link (daemon, "default");
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) entry = NULL;
  const char *reason = NULL, *closed_by = NULL;
  gboolean aborted = FALSE;
  gint64 started = 0, closed = 0, last_sent = 0, last_received = -1;

  g_assert_true (stm32_daemon_link_connect (link, NULL));
  g_assert_true (stm32_daemon_link_send (link, "x", NULL));
  stm32_daemon_link_disconnect (link);
  g_assert_true (stm32_dbus_link1_call_get_history_sync (link, &history, NULL, &error));
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
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
}

/* ---- clients ------------------------------------------------------------------------ */

/* A client is killed while its transaction waits for the board. The board's
 * late answer to it goes nowhere — certainly not to the next client, whose
 * transaction gets its own reply — and nothing else changes for anyone. */
static void
test_vanishing_client (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "echo", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  Stm32DbusLink1 *link = stm32_daemon_get_link (daemon, "default");
  g_autoptr (GSubprocess) other = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  /* The board stops reading, so the other client's request waits unanswered. */
  stm32_sim_command (sim, "blackhole on");
  other = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                            &error, "gdbus", "call", "--session", "--dest", "org.stm32d",
                            "--object-path", "/org/stm32d/link/default", "--method",
                            "org.stm32d.Link1.Transact", "[byte 0x3f]", "60000", NULL);
  g_assert_no_error (error);
  stm32_test_wait_until (stm32_dbus_link1_get_frames_sent (link) == 1, WAIT_MS);
  g_subprocess_force_exit (other);

  /* The board wakes up and answers the dead client's "?"; we ask for ours. */
  stm32_sim_command (sim, "blackhole off");
  reply = stm32_daemon_link_transact (link, "mine", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "mine");
  g_assert_true (stm32_daemon_link_send (link, "still here", &error));
  g_assert_true (stm32_daemon_link_state_is (link, "connected"));
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
}

/* ---- life cycle ---------------------------------------------------------------------- */

/* SIGTERM with sends in flight: each is answered, what was acknowledged
 * reached the board, the board sees a graceful close, and the exit status is 0. */
static void
test_sigterm_flushes (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "none", "--mode", "good", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  Stm32DbusLink1 *link = stm32_daemon_get_link (daemon, "default");
  GAsyncResult *sent[20] = { NULL };
  g_autoptr (JsonObject) released = NULL;
  guint acknowledged = 0;

  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    stm32_dbus_link1_call_send (link, stm32_daemon_bytes ("payload"), NULL, stm32_test_store_result,
                                &sent[i]);
  stm32_test_wait_until (sent[0] != NULL, WAIT_MS);
  stm32_daemon_send_signal (daemon, SIGTERM);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      stm32_test_wait_until (sent[i] != NULL, WAIT_MS);
      acknowledged += stm32_dbus_link1_call_send_finish (link, sent[i], NULL);
      g_object_unref (sent[i]);
    }
  g_assert_cmpint (stm32_daemon_wait_exit (daemon), ==, 0);
  stm32_daemon_free (daemon);

  released = stm32_sim_wait_event (sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "closed-after-eof");
  g_assert_cmpuint (stm32_sim_count_events (sim, "frame"), ==, acknowledged);
  g_assert_cmpuint (acknowledged, >, 0);
  stm32_sim_stop (sim);
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
test_second_daemon_leaves_board_alone (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "echo", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  Stm32Daemon *daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  Stm32DbusLink1 *link = stm32_daemon_get_link (daemon, "default");
  g_autofree char *err = NULL;
  g_autoptr (JsonObject) status = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--host", "127.0.0.1", "--port", port, NULL), ==,
                   1);
  g_assert_nonnull (strstr (err, "taken by another stm32d"));
  status = stm32_sim_status (sim);
  g_assert_cmpint (json_object_get_int_member (status, "accepted"), ==, 1);
  g_assert_true (stm32_daemon_link_state_is (link, "connected"));
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
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
  g_unlink (path);
  g_assert_cmpint (stm32_daemon_run_to_exit (&err, "--config", path, NULL), ==, 78);
  g_assert_nonnull (strstr (err, path));
  g_rmdir (dir);
}

/* Under systemd: READY=1 once on the bus, WATCHDOG=1 while alive, STOPPING=1 on SIGTERM. */
static void
test_systemd_notify (void)
{
  Stm32Sim *sim = stm32_sim_start ("--reply", "echo", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "notify", NULL);
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) seen = g_string_new (NULL);
  Stm32Daemon *daemon;
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;

  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  g_setenv ("NOTIFY_SOCKET", path, TRUE);
  g_setenv ("WATCHDOG_USEC", "200000", TRUE);
  daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  g_unsetenv ("NOTIFY_SOCKET");
  g_unsetenv ("WATCHDOG_USEC");

  /* The daemon is another process: a bounded wait on our socket is no race. */
  while ((!strstr (seen->str, "READY=1") || !strstr (seen->str, "WATCHDOG=1")) &&
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

  stm32_daemon_send_signal (daemon, SIGTERM);
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
  g_assert_cmpint (stm32_daemon_wait_exit (daemon), ==, 0);
  stm32_daemon_free (daemon);
  stm32_sim_stop (sim);
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  g_test_add_func ("/daemon/properties", test_properties);
  g_test_add_func ("/daemon/state-and-error-together", test_state_and_error_together);
  g_test_add_func ("/daemon/send-transact-received", test_send_transact_received);
  g_test_add_func ("/daemon/errors", test_errors);
  g_test_add_func ("/daemon/history", test_history);
  g_test_add_func ("/daemon/vanishing-client", test_vanishing_client);
  g_test_add_func ("/daemon/sigterm-flushes", test_sigterm_flushes);
  g_test_add_func ("/daemon/bad-command-line", test_bad_command_line);
  g_test_add_func ("/daemon/second-daemon", test_second_daemon_leaves_board_alone);
  g_test_add_func ("/daemon/reload", test_reload);
  g_test_add_func ("/daemon/bad-config-refused", test_bad_config_refused);
  g_test_add_func ("/daemon/systemd-notify", test_systemd_notify);
  return stm32_daemon_test_run ();
}
