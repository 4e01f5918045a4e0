/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stm32ctl as a user runs it: a subprocess against the real daemon on a
 * private bus and the board simulator; its output, its --json, and the
 * documented exit code of every failure.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <unistd.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "test-util.h"

#define WAIT_MS 10000

/* Runs stm32ctl with @args in the test's environment plus @env (NULL-terminated
 * "NAME=VALUE" strings, or NULL), @input on stdin; returns its exit status. */
static int
run_ctl_argv (const char *const *env, const char *input, char **out, char **err,
              const char *const *args)
{
  g_autoptr (GSubprocessLauncher) launcher =
      stm32_test_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                               G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *ignored_out = NULL, *ignored_err = NULL;

  for (guint i = 0; env != NULL && env[i] != NULL; i++)
    {
      g_auto (GStrv) pair = g_strsplit (env[i], "=", 2);

      g_subprocess_launcher_setenv (launcher, pair[0], pair[1], TRUE);
    }
  process = g_subprocess_launcher_spawnv (launcher, args, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, input ? input : "", NULL, stm32_test_store_result,
                                       &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_subprocess_communicate_utf8_finish (process, result, out ? out : &ignored_out,
                                        err ? err : &ignored_err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  return g_subprocess_get_exit_status (process);
}

/* stm32ctl's argv: its path, @option unless NULL, then ARGS… */
static GPtrArray *
ctl_args (const char *option, const char *first_arg, va_list args)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);

  g_ptr_array_add (argv, stm32_test_build_path ("cli/stm32ctl"));
  if (option != NULL)
    g_ptr_array_add (argv, g_strdup (option));
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  g_ptr_array_add (argv, NULL);
  return argv;
}

/* Runs `stm32ctl ARGS…` (no bus option added) with @env, as run_ctl_argv(). */
static int run_ctl_env (const char *const *env, char **err, const char *first_arg,
                        ...) G_GNUC_NULL_TERMINATED;

static int
run_ctl_env (const char *const *env, char **err, const char *first_arg, ...)
{
  g_autoptr (GPtrArray) argv = NULL;
  va_list args;

  va_start (args, first_arg);
  argv = ctl_args (NULL, first_arg, args);
  va_end (args);
  return run_ctl_argv (env, NULL, NULL, err, (const char *const *) argv->pdata);
}

/* Runs `stm32ctl --session ARGS…` with @input on stdin; returns its exit status. */
static int run_ctl (const char *input, char **out, char **err, const char *first_arg,
                    ...) G_GNUC_NULL_TERMINATED;

static int
run_ctl (const char *input, char **out, char **err, const char *first_arg, ...)
{
  g_autoptr (GPtrArray) argv = NULL;
  va_list args;

  va_start (args, first_arg);
  argv = ctl_args ("--session", first_arg, args);
  va_end (args);
  return run_ctl_argv (NULL, input, out, err, (const char *const *) argv->pdata);
}

static JsonNode *
parse_json (const char *text)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;

  json_parser_load_from_data (parser, text, -1, &error);
  g_assert_no_error (error);
  return json_node_ref (json_parser_get_root (parser));
}

/* The board replies as the test's fixture data says ("echo" or "none"). */
typedef struct
{
  Stm32Sim *sim;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;
  char *dir; /* config_setup's, holding @config */
  char *config;
  GSubprocess *bus;        /* a dbus-daemon of the test's own (private_bus_start) */
  GSubprocess *bus_daemon; /* the stm32d on it */
  Stm32Sim *boards[2];     /* fleet_setup's second and third boards */
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *port = NULL;

  fixture->sim = stm32_sim_start ("--reply", reply, NULL);
  port = g_strdup_printf ("%u", stm32_sim_get_port (fixture->sim));
  fixture->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
}

/* The board, and a place for the config file of the stm32d the test starts. */
static void
config_setup (Fixture *fixture, gconstpointer reply)
{
  fixture->sim = stm32_sim_start ("--reply", reply, NULL);
  fixture->dir = g_dir_make_tmp ("stm32ctl-test-XXXXXX", NULL);
  fixture->config = g_build_filename (fixture->dir, "stm32d.conf", NULL);
}

static void
wait_exit (GSubprocess *process)
{
  g_autoptr (GAsyncResult) result = NULL;

  g_subprocess_wait_async (process, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (g_subprocess_wait_finish (process, result, NULL));
}

/* The stm32d on the test's own bus, then that bus. */
static void
private_bus_stop (Fixture *fixture)
{
  if (fixture->bus_daemon != NULL)
    {
      g_subprocess_send_signal (fixture->bus_daemon, SIGTERM);
      wait_exit (fixture->bus_daemon);
      /* Exit status 0 also means the sanitizers found nothing in the daemon. */
      g_assert_true (g_subprocess_get_if_exited (fixture->bus_daemon));
      g_assert_cmpint (g_subprocess_get_exit_status (fixture->bus_daemon), ==, 0);
      g_clear_object (&fixture->bus_daemon);
    }
  if (fixture->bus != NULL)
    {
      g_subprocess_send_signal (fixture->bus, SIGTERM);
      wait_exit (fixture->bus);
      g_clear_object (&fixture->bus);
    }
}

/* A test that stops the board itself takes it out of the fixture. */
static void
fixture_teardown (Fixture *fixture, gconstpointer reply)
{
  private_bus_stop (fixture);
  if (fixture->daemon != NULL)
    stm32_daemon_stop (fixture->daemon);
  if (fixture->sim != NULL)
    stm32_sim_stop (fixture->sim);
  for (guint i = 0; i < G_N_ELEMENTS (fixture->boards); i++)
    if (fixture->boards[i] != NULL)
      stm32_sim_stop (fixture->boards[i]);
  if (fixture->config != NULL)
    {
      g_autoptr (GDir) dir = g_dir_open (fixture->dir, 0, NULL);
      const char *name;

      /* The config file, and a private bus's configuration and socket. */
      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (fixture->dir, name, NULL);

          g_unlink (path);
        }
      g_rmdir (fixture->dir);
      g_free (fixture->config);
      g_free (fixture->dir);
    }
}

static void
add_test (const char *path, const char *reply, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, reply, fixture_setup, test, fixture_teardown);
}

/* ---- status, links -------------------------------------------------------------- */

static void
test_status (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *out = NULL, *json_out = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *endpoint = NULL;
  JsonObject *status;

  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "transact", "hi", NULL), ==, 0);
  stm32_test_wait_until (stm32_dbus_link1_get_frames_received (fixture->link) == 1, WAIT_MS);

  g_assert_cmpint (run_ctl (NULL, &out, NULL, "status", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "State: connected"));
  g_assert_nonnull (strstr (out, "Link: default"));

  /* --json carries the same values as the properties, under stable keys. */
  g_assert_cmpint (run_ctl (NULL, &json_out, NULL, "status", "--json", NULL), ==, 0);
  root = parse_json (json_out);
  status = json_node_get_object (root);
  endpoint = g_strdup_printf ("127.0.0.1:%u", stm32_dbus_link1_get_port (fixture->link));
  g_assert_cmpstr (json_object_get_string_member (status, "name"), ==, "default");
  g_assert_cmpstr (json_object_get_string_member (status, "state"), ==, "connected");
  g_assert_cmpstr (json_object_get_string_member (status, "endpoint"), ==, endpoint);
  g_assert_cmpstr (json_object_get_string_member (status, "local_address"), ==,
                   stm32_dbus_link1_get_local_address (fixture->link));
  g_assert_cmpint (json_object_get_int_member (status, "connected_since"), ==,
                   (gint64) stm32_dbus_link1_get_connected_since (fixture->link));
  g_assert_cmpint (json_object_get_int_member (status, "frames_sent"), ==,
                   (gint64) stm32_dbus_link1_get_frames_sent (fixture->link));
  g_assert_cmpint (json_object_get_int_member (status, "frames_received"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (status, "connects"), ==, 1);
  g_assert_true (json_object_has_member (status, "late_replies"));
  g_assert_cmpint (json_object_get_int_member (status, "late_replies"), ==, 0);
  g_assert_true (json_object_get_boolean_member (status, "autoconnect"));
  g_assert_cmpstr (json_object_get_string_member (status, "last_error"), ==, "none");
  /* No close yet: the first one is graceful, with the whole CloseTimeout. */
  g_assert_cmpstr (json_object_get_string_member (status, "close_strategy"), ==, "graceful");
  g_assert_cmpstr (json_object_get_string_member (status, "close_strategy_reason"), ==,
                   stm32_dbus_link1_get_close_strategy_reason (fixture->link));
  g_assert_cmpint (json_object_get_int_member (status, "close_wait_ms"), ==, 1000);
  g_assert_nonnull (strstr (out, "Next close: graceful"));
}

static void
test_links (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *text =
      g_strdup_printf ("[Link bench]\nHost=127.0.0.1\nPort=%u\n\n"
                       "[Link spare]\nHost=127.0.0.2\nPort=%u\n"
                       "Autoconnect=false\n",
                       stm32_sim_get_port (fixture->sim), stm32_sim_get_port (fixture->sim));
  g_autofree char *out = NULL, *json_out = NULL, *err = NULL;
  g_autoptr (JsonNode) root = NULL;
  JsonArray *links;

  g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  stm32_test_wait_until (
      stm32_daemon_link_state_is (stm32_daemon_get_link (fixture->daemon, "bench"), "connected"),
      WAIT_MS);
  stm32_daemon_get_link (fixture->daemon, "spare");

  g_assert_cmpint (run_ctl (NULL, &out, NULL, "links", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "bench"));
  g_assert_nonnull (strstr (out, "spare"));
  g_assert_cmpint (run_ctl (NULL, &json_out, NULL, "links", "--json", NULL), ==, 0);
  root = parse_json (json_out);
  links = json_node_get_array (root);
  g_assert_cmpuint (json_array_get_length (links), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (links, 0), "name"),
                   ==, "bench");
  g_assert_cmpstr (
      json_object_get_string_member (json_array_get_object_element (links, 1), "state"), ==,
      "disconnected");

  /* Two links: a command for one link must be told which. */
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "disconnect", NULL), ==, 6);
  g_assert_nonnull (strstr (err, "-l NAME"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "-l", "nope", "status", NULL), ==, 6);
  g_assert_nonnull (strstr (err, "bench"));
}

/* ---- control ----------------------------------------------------------------------- */

static void
test_connect_disconnect (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *out = NULL, *err = NULL;

  g_assert_cmpint (run_ctl (NULL, &out, NULL, "disconnect", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "Disconnected default"));
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "disconnected"), WAIT_MS);

  /* Not connected: exit 3, with what to do. */
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "send", "x", NULL), ==, 3);
  g_assert_nonnull (strstr (err, "stm32ctl: error: "));
  g_assert_nonnull (strstr (err, "stm32ctl connect"));
  g_assert_null (strstr (err, "org.stm32d.Error")); /* the remote prefix is stripped */
  g_clear_pointer (&err, g_free);

  g_clear_pointer (&out, g_free);
  g_assert_cmpint (run_ctl (NULL, &out, NULL, "connect", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "Connected default"));
  g_assert_true (stm32_daemon_link_state_is (fixture->link, "connected") ||
                 g_strcmp0 (stm32_dbus_link1_get_state (fixture->link), "connecting") == 0);

  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "autoconnect", "off", NULL), ==, 0);
  stm32_test_wait_until (!stm32_dbus_link1_get_autoconnect (fixture->link), WAIT_MS);
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "autoconnect", "maybe", NULL), ==, 2);

  /* The board goes away: connect fails (exit 1) and names why. */
  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "disconnect", NULL), ==, 0);
  stm32_sim_stop (g_steal_pointer (&fixture->sim));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "connect", NULL), ==, 1);
  g_assert_nonnull (strstr (err, "refused"));
  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "disconnect", NULL), ==, 0);
}

static void
test_send_transact (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (JsonObject) frame = NULL;

  g_assert_cmpint (run_ctl (NULL, &out, NULL, "transact", "hello", "board", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "hello board\n");
  json_object_unref (stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS));

  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "send", "--hex", "41 42", NULL), ==, 0);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "AB");
  g_clear_pointer (&frame, json_object_unref);

  /* No arguments: the frame is standard input. */
  g_assert_cmpint (run_ctl ("from stdin", NULL, NULL, "send", NULL), ==, 0);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "from stdin");

  g_clear_pointer (&out, g_free);
  g_assert_cmpint (run_ctl (NULL, &out, NULL, "transact", "--hex", "7a 7a", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "7a 7a\n");

  g_assert_cmpint (run_ctl (NULL, NULL, &err, "send", "--hex", "4", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "odd number of hex digits"));
}

/* A bad --hex argument is quoted whole in the error, as readable text (not
 * the first byte of a multi-byte character), and nothing is sent. */
static void
test_bad_hex (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *err = NULL;

  g_assert_cmpint (run_ctl (NULL, NULL, &err, "send", "--hex", "é", NULL), ==, 2);
  g_assert_true (g_utf8_validate (err, -1, NULL));
  g_assert_nonnull (strstr (err, "“é” is not hex: “é” (character 1) is not a hex digit"));
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (run_ctl (NULL, NULL, &err, "send", "--hex", "41 42 zé", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "“41 42 zé” is not hex: “z” (character 7)"));
  g_clear_pointer (&err, g_free);

  /* Not even UTF-8: still printable, still the whole argument. */
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "send", "--hex", "41\xff", NULL), ==, 2);
  g_assert_true (g_utf8_validate (err, -1, NULL));
  g_assert_nonnull (strstr (err, "“41\xef\xbf\xbd” is not hex"));
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (run_ctl (NULL, NULL, &err, "transact", "--hex", "414", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "“414” is not hex: odd number of hex digits"));
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "frame"), ==, 0);
}

static void
expect_frame (Stm32Sim *sim, const char *data)
{
  g_autoptr (JsonObject) frame = stm32_sim_wait_event (sim, "frame", WAIT_MS);

  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, data);
}

/* --lines: each line a request, each reply a line, in order; blank lines
 * skipped; a bad line ends the run with the replies before it printed. */
static void
test_transact_lines (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *out = NULL, *err = NULL;
  int channels[64];

  g_assert_cmpint (run_ctl ("one\n\ntwo\r\nthree", &out, &err, "transact", "--lines", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "one\ntwo\nthree\n");
  /* Over a channel: stderr would say it fell back to the bus. */
  g_assert_cmpstr (err, ==, "");
  g_clear_pointer (&err, g_free);
  expect_frame (fixture->sim, "one");
  expect_frame (fixture->sim, "two");
  expect_frame (fixture->sim, "three");

  g_clear_pointer (&out, g_free);
  g_assert_cmpint (run_ctl ("41 42\nzz\n43\n", &out, &err, "transact", "--lines", "--hex", NULL),
                   ==, 2);
  g_assert_cmpstr (out, ==, "41 42\n");
  g_assert_nonnull (strstr (err, "line 2: "));
  expect_frame (fixture->sim, "AB");
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "frame"), ==, 4);

  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl ("x\n", NULL, &err, "transact", "--lines", "x", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "not arguments"));

  /* Every channel taken: the same replies, over the bus, and it says so. */
  for (guint i = 0; i < G_N_ELEMENTS (channels); i++)
    {
      g_autoptr (GError) error = NULL;

      channels[i] = stm32_daemon_link_open_channel (fixture->link, &error);
      g_assert_no_error (error);
    }
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl ("four\nfive\n", &out, &err, "transact", "--lines", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "four\nfive\n");
  g_assert_nonnull (strstr (err, "D-Bus call instead"));
  for (guint i = 0; i < G_N_ELEMENTS (channels); i++)
    g_assert_no_errno (close (channels[i]));
}

static void
test_transact_timeout (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *err = NULL;

  g_assert_cmpint (run_ctl (NULL, NULL, &err, "transact", "--timeout", "200", "anyone", NULL), ==,
                   4);
  g_assert_nonnull (strstr (err, "No reply"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl ("first\n", NULL, &err, "transact", "--lines", "--timeout", "200", NULL),
                   ==, 4);
  g_assert_nonnull (strstr (err, "line 1: "));
}

static void
test_not_running (void)
{
  g_autofree char *err = NULL;

  g_assert_cmpint (run_ctl (NULL, NULL, &err, "status", NULL), ==, 5);
  g_assert_nonnull (strstr (err, "systemctl start stm32d"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "frobnicate", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "unknown command “frobnicate”"));
}

static void
test_history (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *json_out = NULL, *out = NULL;
  g_autoptr (JsonNode) root = NULL;
  JsonObject *attempt;

  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "disconnect", NULL), ==, 0);
  g_assert_cmpint (run_ctl (NULL, &json_out, NULL, "history", "--json", NULL), ==, 0);
  root = parse_json (json_out);
  g_assert_cmpuint (json_array_get_length (json_node_get_array (root)), ==, 1);
  attempt = json_array_get_object_element (json_node_get_array (root), 0);
  g_assert_cmpstr (json_object_get_string_member (attempt, "reason"), ==, "local");
  g_assert_cmpstr (json_object_get_string_member (attempt, "closed_by"), ==, "pc");
  g_assert_cmpstr (json_object_get_string_member (attempt, "detector"), ==, "none");
  /* The board answered our FIN: a graceful close, and how long its FIN took. */
  g_assert_cmpstr (json_object_get_string_member (attempt, "close"), ==, "graceful");
  g_assert_cmpint (json_object_get_int_member (attempt, "fin_delay_us"), >=, 0);
  g_assert_cmpint (run_ctl (NULL, &out, NULL, "history", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "REASON"));
  g_assert_nonnull (strstr (out, "local"));
  g_assert_nonnull (strstr (out, "CLOSE"));
  g_assert_nonnull (strstr (out, "graceful"));
}

/* ---- monitor ------------------------------------------------------------------------- */

typedef struct
{
  GPtrArray *lines;
  GDataInputStream *in;
  gboolean eof;
} LineReader;

static void
on_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  LineReader *reader = user_data;
  char *line =
      g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, NULL);

  if (line == NULL)
    {
      reader->eof = TRUE;
      return;
    }
  g_ptr_array_add (reader->lines, line);
  g_data_input_stream_read_line_async (reader->in, G_PRIORITY_DEFAULT, NULL, on_line, reader);
}

static gboolean
has_line (LineReader *reader, const char *needle)
{
  for (guint i = 0; i < reader->lines->len; i++)
    if (strstr (reader->lines->pdata[i], needle))
      return TRUE;
  return FALSE;
}

static void
test_monitor (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *ctl_path = stm32_test_build_path ("cli/stm32ctl");
  g_autoptr (GSubprocess) monitor = NULL;
  g_autoptr (GError) error = NULL;
  LineReader reader = { g_ptr_array_new_with_free_func (g_free) };
  const char *frames[] = { "one", "two", "three" };
  guint next = 0;

  monitor = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, ctl_path, "--session",
                              "monitor", NULL);
  g_assert_no_error (error);
  reader.in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (monitor));
  g_data_input_stream_read_line_async (reader.in, G_PRIORITY_DEFAULT, NULL, on_line, &reader);

  /* It prints where each link stands once it listens: from then on nothing is missed. */
  stm32_test_wait_until (has_line (&reader, "default state connected"), WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_disconnect_sync (fixture->link, NULL, NULL));
  stm32_test_wait_until (has_line (&reader, "state disconnected"), WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_connect_sync (fixture->link, NULL, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (frames); i++)
    g_assert_true (stm32_dbus_link1_call_send_sync (
        fixture->link,
        g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, frames[i], strlen (frames[i]), 1), NULL,
        NULL));
  stm32_test_wait_until (has_line (&reader, "frame three"), WAIT_MS);
  for (guint i = 0; i < reader.lines->len && next < G_N_ELEMENTS (frames); i++)
    {
      g_autofree char *expected = g_strdup_printf ("default frame %s", frames[next]);

      if (strstr (reader.lines->pdata[i], expected))
        next++;
    }
  g_assert_cmpuint (next, ==, G_N_ELEMENTS (frames)); /* in order */

  /* Ctrl-C ends it cleanly. */
  g_subprocess_send_signal (monitor, SIGINT);
  stm32_test_wait_until (reader.eof, WAIT_MS);
  g_assert_true (g_subprocess_wait (monitor, NULL, NULL));
  g_assert_true (g_subprocess_get_if_exited (monitor));
  g_assert_cmpint (g_subprocess_get_exit_status (monitor), ==, 0);
  g_object_unref (reader.in);
  g_ptr_array_unref (reader.lines);
}

/* --watch prints the status again on each change, until Ctrl-C. */
static void
test_status_watch (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *ctl_path = stm32_test_build_path ("cli/stm32ctl");
  g_autoptr (GSubprocess) watch = NULL;
  g_autoptr (GError) error = NULL;
  LineReader reader = { g_ptr_array_new_with_free_func (g_free) };

  watch = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, ctl_path, "--session", "status",
                            "--watch", NULL);
  g_assert_no_error (error);
  reader.in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (watch));
  g_data_input_stream_read_line_async (reader.in, G_PRIORITY_DEFAULT, NULL, on_line, &reader);
  stm32_test_wait_until (has_line (&reader, "State: connected"), WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_disconnect_sync (fixture->link, NULL, NULL));
  stm32_test_wait_until (has_line (&reader, "State: disconnected"), WAIT_MS);

  g_subprocess_send_signal (watch, SIGINT);
  stm32_test_wait_until (reader.eof, WAIT_MS);
  g_assert_true (g_subprocess_wait (watch, NULL, NULL));
  g_assert_cmpint (g_subprocess_get_exit_status (watch), ==, 0);
  g_object_unref (reader.in);
  g_ptr_array_unref (reader.lines);
}

/* --no-wait returns once the attempt is under way, not on its outcome. */
static void
test_connect_no_wait (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *out = NULL;

  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "disconnect", NULL), ==, 0);
  /* Nothing answers there: with --no-wait that is not our concern. */
  stm32_sim_command (fixture->sim, "refuse 60000");
  g_assert_cmpint (run_ctl (NULL, &out, NULL, "connect", "--no-wait", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "Connecting default"));
  stm32_test_wait_until (
      g_strcmp0 (stm32_dbus_link1_get_last_error (fixture->link), "refused") == 0, WAIT_MS);
  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "disconnect", NULL), ==, 0);
}

static void
test_reload (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *one =
      g_strdup_printf ("[Link a]\nHost=127.0.0.1\nPort=%u\n", stm32_sim_get_port (fixture->sim));
  g_autofree char *two = g_strdup_printf ("%s\n[Link b]\nHost=127.0.0.2\nPort=%u\n", one,
                                          stm32_sim_get_port (fixture->sim));
  g_autofree char *out = NULL, *err = NULL;

  g_assert_true (g_file_set_contents (fixture->config, one, -1, NULL));
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  stm32_daemon_get_link (fixture->daemon, "a");
  g_assert_true (g_file_set_contents (fixture->config, two, -1, NULL));
  g_assert_cmpint (run_ctl (NULL, &out, NULL, "reload", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "reloaded"));
  stm32_daemon_get_link (fixture->daemon, "b");
  /* A bad file: refused, saying where, and nothing changes. */
  g_assert_true (g_file_set_contents (fixture->config, "[Link a]\nPort=1\n", -1, NULL));
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "reload", NULL), ==, 1);
  g_assert_nonnull (strstr (err, "stm32d.conf:1: [Link a]"));
  g_assert_nonnull (stm32_daemon_peek_link (fixture->daemon, "b"));
}

/* ---- several links ------------------------------------------------------------------ */

/* stm32d with three links: alpha and beta to echo boards of their own,
 * gamma to a board that refuses every connect (a bad board). */
static void
fleet_setup (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *text = NULL;

  config_setup (fixture, "echo");
  fixture->boards[0] = stm32_sim_start ("--reply", "echo", NULL);
  fixture->boards[1] = stm32_sim_start ("--reply", "echo", "--refuse-for", "600000", NULL);
  text =
      g_strdup_printf ("[Link alpha]\nHost=127.0.0.1\nPort=%u\n\n"
                       "[Link beta]\nHost=127.0.0.1\nPort=%u\n\n"
                       "[Link gamma]\nHost=127.0.0.1\nPort=%u\n",
                       stm32_sim_get_port (fixture->sim), stm32_sim_get_port (fixture->boards[0]),
                       stm32_sim_get_port (fixture->boards[1]));
  g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  stm32_test_wait_until (
      stm32_daemon_link_state_is (stm32_daemon_get_link (fixture->daemon, "alpha"), "connected"),
      WAIT_MS);
  stm32_test_wait_until (
      stm32_daemon_link_state_is (stm32_daemon_get_link (fixture->daemon, "beta"), "connected"),
      WAIT_MS);
  stm32_test_wait_until (
      stm32_daemon_link_state_is (stm32_daemon_get_link (fixture->daemon, "gamma"), "waiting"),
      WAIT_MS);
}

/* The members of a JSON object, sorted, as one string. */
static char *
member_names (JsonObject *object)
{
  g_autoptr (GList) members = g_list_sort (json_object_get_members (object), (GCompareFunc) strcmp);
  g_autoptr (GString) names = g_string_new (NULL);

  for (GList *m = members; m != NULL; m = m->next)
    g_string_append_printf (names, "%s ", (const char *) m->data);
  return g_string_free (g_steal_pointer (&names), FALSE);
}

/* The members of `stm32ctl COMMAND LINK --json`'s object: one link's keys. */
static char *
single_link_keys (const char *command, const char *link)
{
  g_autofree char *out = NULL;
  g_autoptr (JsonNode) root = NULL;

  run_ctl (NULL, &out, NULL, command, link, "--json", NULL);
  root = parse_json (out);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  return member_names (json_node_get_object (root));
}

/* Asserts that @out is an array of one object per link of fleet_setup, in
 * name order, each with @keys, and returns it. */
static JsonArray *
assert_fleet_array (JsonNode *root, const char *keys)
{
  const char *names[] = { "alpha", "beta", "gamma" };
  JsonArray *array;

  g_assert_true (JSON_NODE_HOLDS_ARRAY (root));
  array = json_node_get_array (root);
  g_assert_cmpuint (json_array_get_length (array), ==, G_N_ELEMENTS (names));
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      JsonObject *object = json_array_get_object_element (array, i);
      g_autofree char *members = member_names (object);

      g_assert_cmpstr (json_object_get_string_member (object, "name"), ==, names[i]);
      g_assert_cmpstr (members, ==, keys);
    }
  return array;
}

/* No link named and several: a summary, then a table of every link; --json
 * an array of what one link's status prints. */
static void
test_fleet_status (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *out = NULL, *json_out = NULL, *keys = NULL, *gamma_port = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_auto (GStrv) lines = NULL;
  JsonArray *array;

  g_assert_cmpint (run_ctl (NULL, &out, NULL, "status", NULL), ==, 0);
  lines = g_strsplit (out, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 7); /* and "" after the last newline */
  g_assert_cmpstr (lines[0], ==, "3 links: 2 connected, 1 waiting");
  g_assert_cmpstr (lines[1], ==, "");
  g_assert_true (g_regex_match_simple ("^NAME +STATE +BOARD +CONNECTS +FAILED +SENT +RECEIVED +"
                                       "LAST ERROR$",
                                       lines[2], 0, 0));
  g_assert_true (g_regex_match_simple (
      "^alpha +connected +127\\.0\\.0\\.1:[0-9]+ +1 +0 +0 +0 +none$", lines[3], 0, 0));
  g_assert_true (g_regex_match_simple ("^beta +connected ", lines[4], 0, 0));
  gamma_port = g_strdup_printf (" 127.0.0.1:%u ", stm32_sim_get_port (fixture->boards[1]));
  g_assert_true (g_str_has_prefix (lines[5], "gamma "));
  g_assert_nonnull (strstr (lines[5], " waiting "));
  g_assert_nonnull (strstr (lines[5], gamma_port));
  g_assert_true (g_str_has_suffix (lines[5], " refused"));
  /* The columns line up: each row's state starts under STATE. */
  for (guint i = 3; i < 6; i++)
    g_assert_cmpint (strstr (lines[i], "connected") ? strstr (lines[i], "connected") - lines[i]
                                                    : strstr (lines[i], "waiting") - lines[i],
                     ==, strstr (lines[2], "STATE") - lines[2]);

  g_assert_cmpint (run_ctl (NULL, &json_out, NULL, "status", "--json", NULL), ==, 0);
  root = parse_json (json_out);
  keys = single_link_keys ("status", "alpha");
  array = assert_fleet_array (root, keys);
  g_assert_cmpstr (
      json_object_get_string_member (json_array_get_object_element (array, 0), "state"), ==,
      "connected");
  g_assert_cmpstr (
      json_object_get_string_member (json_array_get_object_element (array, 2), "last_error"), ==,
      "refused");
}

/* A link is named as an argument as well as with -l; a name that is not
 * there is an error listing those that are. */
static void
test_fleet_select (Fixture *fixture, gconstpointer reply)
{
  const char *commands[] = { "status", "doctor", "monitor" };
  g_autofree char *out = NULL, *by_option = NULL, *err = NULL;

  g_assert_cmpint (run_ctl (NULL, &out, NULL, "status", "beta", NULL), ==, 0);
  g_assert_true (g_regex_match_simple ("^ *Link: beta\n", out, 0, 0));
  g_assert_nonnull (strstr (out, "State: connected"));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (run_ctl (NULL, &out, NULL, "status", "beta", "--json", NULL), ==, 0);
  g_assert_cmpint (run_ctl (NULL, &by_option, NULL, "-l", "beta", "status", "--json", NULL), ==, 0);
  g_assert_cmpstr (out, ==, by_option);
  g_clear_pointer (&out, g_free);
  /* The same name both ways is one link. */
  g_assert_cmpint (run_ctl (NULL, &out, NULL, "-l", "beta", "status", "beta", "--json", NULL), ==,
                   0);
  g_assert_cmpstr (out, ==, by_option);

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_clear_pointer (&err, g_free);
      g_assert_cmpint (run_ctl (NULL, NULL, &err, commands[i], "nope", NULL), ==, 6);
      g_assert_nonnull (strstr (err, "stm32ctl: error: stm32d has no link “nope”; its links are: "
                                     "alpha, beta, gamma\n"));
      g_clear_pointer (&err, g_free);
      g_assert_cmpint (run_ctl (NULL, NULL, &err, "-l", "alpha", commands[i], "beta", NULL), ==, 2);
      g_assert_nonnull (strstr (err, "two links given: “alpha” and “beta”"));
      g_clear_pointer (&err, g_free);
      g_assert_cmpint (run_ctl (NULL, NULL, &err, commands[i], "alpha", "beta", NULL), ==, 2);
      g_assert_nonnull (strstr (err, "unexpected argument “beta”"));
    }
}

/* doctor diagnoses every link, sums up, and exits with the worst finding:
 * gamma's board refuses. */
static void
test_fleet_doctor (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *out = NULL, *json_out = NULL, *keys = NULL;
  g_autoptr (JsonNode) root = NULL;
  const char *alpha, *beta, *gamma, *summary;
  JsonArray *array;

  g_assert_cmpint (run_ctl (NULL, &out, NULL, "doctor", NULL), ==, 8);
  alpha = strstr (out, "Link alpha, board 127.0.0.1:");
  beta = strstr (out, "\nLink beta, board 127.0.0.1:");
  gamma = strstr (out, "\nLink gamma, board 127.0.0.1:");
  summary = strstr (out, "\nSummary: 3 links diagnosed, 2 without problems; 1 with problems: "
                         "gamma\n");
  g_assert_true (alpha == out);
  g_assert_true (beta > alpha && gamma > beta && summary > gamma);
  g_assert_nonnull (strstr (gamma, "refused: "));
  g_assert_null (g_strstr_len (out, gamma - out, "refused: "));

  g_assert_cmpint (run_ctl (NULL, &json_out, NULL, "doctor", "--json", NULL), ==, 8);
  root = parse_json (json_out);
  keys = single_link_keys ("doctor", "alpha");
  array = assert_fleet_array (root, keys);
  g_assert_true (
      json_object_get_boolean_member (json_array_get_object_element (array, 0), "healthy"));
  g_assert_true (
      json_object_get_boolean_member (json_array_get_object_element (array, 1), "healthy"));
  g_assert_false (
      json_object_get_boolean_member (json_array_get_object_element (array, 2), "healthy"));

  /* One link at a time: its own verdict. */
  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "doctor", "alpha", NULL), ==, 0);
  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "-l", "gamma", "doctor", NULL), ==, 8);
}

/* `stm32ctl --session ARGS…` (a command that runs until Ctrl-C) with its
 * lines read as they come. */
static GSubprocess *
ctl_start_reading (LineReader *reader, const char *first_arg, ...)
{
  g_autoptr (GPtrArray) argv = NULL;
  g_autoptr (GError) error = NULL;
  GSubprocess *monitor;
  va_list args;

  va_start (args, first_arg);
  argv = ctl_args ("--session", first_arg, args);
  va_end (args);
  monitor =
      g_subprocess_newv ((const char *const *) argv->pdata, G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  reader->lines = g_ptr_array_new_with_free_func (g_free);
  reader->in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (monitor));
  g_data_input_stream_read_line_async (reader->in, G_PRIORITY_DEFAULT, NULL, on_line, reader);
  return monitor;
}

/* Ctrl-C ends it cleanly. */
static void
ctl_interrupt (GSubprocess *monitor, LineReader *reader)
{
  g_subprocess_send_signal (monitor, SIGINT);
  stm32_test_wait_until (reader->eof, WAIT_MS);
  g_assert_true (g_subprocess_wait (monitor, NULL, NULL));
  g_assert_true (g_subprocess_get_if_exited (monitor));
  g_assert_cmpint (g_subprocess_get_exit_status (monitor), ==, 0);
  g_object_unref (monitor);
  g_object_unref (reader->in);
  g_ptr_array_unref (reader->lines);
}

/* Whether a --json line is event @event of link @link with @member @value. */
static gboolean
has_event (LineReader *reader, const char *link, const char *event, const char *member,
           const char *value)
{
  for (guint i = 0; i < reader->lines->len; i++)
    {
      g_autoptr (JsonNode) root = parse_json (reader->lines->pdata[i]);
      JsonObject *object = json_node_get_object (root);

      g_assert_true (json_object_has_member (object, "time"));
      if (g_strcmp0 (json_object_get_string_member_with_default (object, "link", NULL), link) ==
              0 &&
          g_str_equal (json_object_get_string_member (object, "event"), event) &&
          g_strcmp0 (json_object_get_string_member_with_default (object, member, NULL), value) == 0)
        return TRUE;
    }
  return FALSE;
}

/* Every link's frames, each line naming its link, in text and in --json;
 * a link named as the argument alone. */
static void
test_fleet_monitor (Fixture *fixture, gconstpointer reply)
{
  Stm32DbusLink1 *alpha = stm32_daemon_get_link (fixture->daemon, "alpha");
  Stm32DbusLink1 *beta = stm32_daemon_get_link (fixture->daemon, "beta");
  LineReader text = { 0 }, json = { 0 }, only_beta = { 0 };
  GSubprocess *text_monitor = ctl_start_reading (&text, "monitor", NULL);
  GSubprocess *json_monitor = ctl_start_reading (&json, "monitor", "--json", NULL);
  GSubprocess *beta_monitor = ctl_start_reading (&only_beta, "monitor", "beta", "--json", NULL);
  g_autofree char *config = NULL, *before = NULL, *after = NULL;
  g_autoptr (GError) error = NULL;

  /* Each prints where its links stand once it listens. */
  stm32_test_wait_until (has_line (&text, "alpha state connected") &&
                             has_line (&text, "beta state connected") &&
                             has_line (&text, "gamma state waiting (refused: "),
                         WAIT_MS);
  stm32_test_wait_until (has_event (&json, "alpha", "state", "state", "connected") &&
                             has_event (&json, "beta", "state", "state", "connected") &&
                             has_event (&json, "gamma", "state", "last_error", "refused"),
                         WAIT_MS);
  stm32_test_wait_until (has_event (&only_beta, "beta", "state", "state", "connected"), WAIT_MS);

  /* The echo boards send the frames back: frames from two boards. */
  g_assert_true (stm32_daemon_link_send (alpha, "from alpha", &error));
  g_assert_true (stm32_daemon_link_send (beta, "from beta", &error));
  g_assert_no_error (error);
  stm32_test_wait_until (has_line (&text, "alpha frame from alpha") &&
                             has_line (&text, "beta frame from beta"),
                         WAIT_MS);
  stm32_test_wait_until (has_event (&json, "alpha", "frame", "text", "from alpha") &&
                             has_event (&json, "beta", "frame", "text", "from beta"),
                         WAIT_MS);
  g_assert_true (has_event (&json, "beta", "frame", "hex", "66 72 6f 6d 20 62 65 74 61"));
  stm32_test_wait_until (has_event (&only_beta, "beta", "frame", "text", "from beta"), WAIT_MS);
  g_assert_false (has_line (&text, "alpha frame from beta"));
  g_assert_false (has_line (&text, "beta frame from alpha"));
  g_assert_false (has_event (&json, "alpha", "frame", "text", "from beta"));

  /* A link added on reload: every-link monitors say so, beta's does not. */
  config = g_strdup_printf ("[Link delta]\nHost=127.0.0.2\nPort=%u\nAutoconnect=false\n",
                            stm32_sim_get_port (fixture->sim));
  g_assert_true (g_file_get_contents (fixture->config, &before, NULL, NULL));
  after = g_strconcat (before, "\n", config, NULL);
  g_assert_true (g_file_set_contents (fixture->config, after, -1, NULL));
  g_assert_cmpint (run_ctl (NULL, NULL, NULL, "reload", NULL), ==, 0);
  stm32_test_wait_until (has_line (&text, "delta added disconnected") &&
                             has_event (&json, "delta", "added", "state", "disconnected"),
                         WAIT_MS);
  /* Signals keep their order: once beta's next frame is in, so would be
   * anything about delta. */
  g_assert_true (stm32_daemon_link_send (beta, "after delta", &error));
  g_assert_no_error (error);
  stm32_test_wait_until (has_event (&only_beta, "beta", "frame", "text", "after delta"), WAIT_MS);

  ctl_interrupt (text_monitor, &text);
  ctl_interrupt (json_monitor, &json);
  /* Only beta: not a line about another link. */
  for (guint i = 0; i < only_beta.lines->len; i++)
    g_assert_nonnull (strstr (only_beta.lines->pdata[i], "\"link\":\"beta\""));
  ctl_interrupt (beta_monitor, &only_beta);
}

/* --watch without a link: the summary and table again on each change of any link. */
static void
test_fleet_status_watch (Fixture *fixture, gconstpointer reply)
{
  LineReader reader = { 0 };
  GSubprocess *watch = ctl_start_reading (&reader, "status", "--watch", NULL);

  stm32_test_wait_until (has_line (&reader, "3 links: 2 connected, 1 waiting"), WAIT_MS);
  stm32_daemon_link_disconnect (stm32_daemon_get_link (fixture->daemon, "beta"));
  stm32_test_wait_until (has_line (&reader, "3 links: 1 connected, 1 waiting, 1 disconnected"),
                         WAIT_MS);
  stm32_test_wait_until (has_line (&reader, "beta   disconnected"), WAIT_MS);
  ctl_interrupt (watch, &reader);
}

/* ---- calls that end ------------------------------------------------------------------- */

/* A stm32d that stops answering: --timeout bounds even the first calls (the
 * client's own), exit status 4 saying so. */
static void
test_stopped_daemon (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *err = NULL;

  stm32_daemon_send_signal (fixture->daemon, SIGSTOP);
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "--timeout", "500", "status", NULL), ==, 4);
  g_assert_nonnull (strstr (err, "stm32ctl: error: stm32d did not answer within 500 ms"));
  g_assert_null (strstr (err, "Timeout was reached"));
  g_clear_pointer (&err, g_free);
  /* A transaction's call waits its own timeout too: 300 + 500 ms, here for
   * the first call, which has none. */
  g_assert_cmpint (
      run_ctl (NULL, NULL, &err, "--timeout", "500", "transact", "--timeout", "300", "hi", NULL),
      ==, 4);
  g_assert_nonnull (strstr (err, "did not answer within 500 ms"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl (NULL, NULL, &err, "--timeout", "0", "status", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--timeout must be at least 1 ms"));
  /* The fixture's teardown lets it run again before it stops it. */
}

/* Whether process @pid has a handler for @signum (SigCgt in /proc/PID/status). */
static gboolean
process_catches (GPid pid, int signum)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *status = NULL;
  const char *caught;

  if (!g_file_get_contents (path, &status, NULL, NULL))
    return FALSE;
  caught = strstr (status, "\nSigCgt:\t");
  return caught != NULL &&
         (g_ascii_strtoull (caught + strlen ("\nSigCgt:\t"), NULL, 16) >> (signum - 1) & 1) != 0;
}

/* Ctrl-C (or SIGTERM) during a call that stm32d does not answer: the call is
 * cancelled and stm32ctl exits at once with 130, no waiting for --timeout. */
static void
test_interrupt (Fixture *fixture, gconstpointer reply)
{
  const int signals[] = { SIGINT, SIGTERM };

  stm32_daemon_send_signal (fixture->daemon, SIGSTOP);
  for (guint i = 0; i < G_N_ELEMENTS (signals); i++)
    {
      g_autofree char *ctl_path = stm32_test_build_path ("cli/stm32ctl");
      g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (
          G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
      g_autoptr (GSubprocess) ctl = NULL;
      g_autoptr (GAsyncResult) result = NULL;
      g_autoptr (GError) error = NULL;
      g_autofree char *err = NULL;
      GPid pid;

      /* The default --timeout (a minute) is far beyond the test's own. */
      ctl = g_subprocess_launcher_spawn (launcher, &error, ctl_path, "--session", "transact", "hi",
                                         NULL);
      g_assert_no_error (error);
      pid = (GPid) g_ascii_strtoll (g_subprocess_get_identifier (ctl), NULL, 10);
      /* It handles the signal only around its calls: from then on, the
       * signal lands on a call that waits for the stopped stm32d. */
      stm32_test_poll_until (process_catches (pid, signals[i]), WAIT_MS);
      g_subprocess_send_signal (ctl, signals[i]);
      g_subprocess_communicate_utf8_async (ctl, NULL, NULL, stm32_test_store_result, &result);
      stm32_test_wait_until (result != NULL, WAIT_MS);
      g_subprocess_communicate_utf8_finish (ctl, result, NULL, &err, &error);
      g_assert_no_error (error);
      g_assert_true (g_subprocess_get_if_exited (ctl));
      g_assert_cmpint (g_subprocess_get_exit_status (ctl), ==, 130);
      g_assert_nonnull (strstr (err, "stm32ctl: interrupted"));
    }
}

/* No system bus at all: exit status 5, as for a stopped daemon, saying which
 * bus is missing. */
static void
test_no_system_bus (void)
{
  g_autofree char *dir = g_dir_make_tmp ("stm32ctl-test-XXXXXX", NULL);
  g_autofree char *missing = g_strdup_printf ("DBUS_SYSTEM_BUS_ADDRESS=unix:path=%s/no-bus", dir);
  const char *const env[] = { missing, NULL };
  g_autofree char *err = NULL;

  g_assert_cmpint (run_ctl_env (env, &err, "status", NULL), ==, 5);
  g_assert_nonnull (strstr (err, "stm32ctl: error: cannot reach the system bus"));
  g_assert_nonnull (strstr (err, "--session"));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl_env (env, &err, "--system", "connect", NULL), ==, 5);
  g_assert_nonnull (strstr (err, "cannot reach the system bus"));
  g_assert_null (strstr (err, "retrying"));
  g_rmdir (dir);
}

/* ---- a bus that refuses ------------------------------------------------------------ */

/* Starts a dbus-daemon whose policy refuses Link1.Connect to everyone (as the
 * system bus refuses it to users outside group stm32), and stm32d on it;
 * returns the bus's address. */
static char *
private_bus_start (Fixture *fixture)
{
  g_autofree char *conf = g_build_filename (fixture->dir, "bus.conf", NULL);
  g_autofree char *socket = g_build_filename (fixture->dir, "bus", NULL);
  g_autofree char *daemon_path = stm32_test_build_path ("daemon/stm32d");
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (fixture->sim));
  g_autoptr (GSubprocessLauncher) bus_launcher =
      stm32_test_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr (GSubprocessLauncher) daemon_launcher =
      stm32_test_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr (GDataInputStream) bus_out = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GDBusConnection) connection = NULL;
  g_autoptr (GError) error = NULL;
  char *address;
  gboolean owned = FALSE;
  guint watch;

  stm32_test_write_file (
      conf,
      "<busconfig>\n"
      "  <type>session</type>\n"
      "  <listen>unix:path=%s</listen>\n"
      "  <auth>EXTERNAL</auth>\n"
      "  <policy context=\"default\">\n"
      "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
      "    <allow eavesdrop=\"true\"/>\n"
      "    <allow own=\"*\"/>\n"
      "    <deny send_destination=\"org.stm32d\" send_interface=\"org.stm32d.Link1\"\n"
      "          send_member=\"Connect\"/>\n"
      "  </policy>\n"
      "</busconfig>\n",
      socket);
  fixture->bus =
      g_subprocess_launcher_spawn (bus_launcher, &error, "dbus-daemon", "--nofork", "--nopidfile",
                                   "--print-address", "--config-file", conf, NULL);
  g_assert_no_error (error);
  bus_out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (fixture->bus));
  g_data_input_stream_read_line_async (bus_out, G_PRIORITY_DEFAULT, NULL, stm32_test_store_result,
                                       &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  address = g_data_input_stream_read_line_finish_utf8 (bus_out, result, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (address);

  g_subprocess_launcher_setenv (daemon_launcher, "DBUS_SESSION_BUS_ADDRESS", address, TRUE);
  fixture->bus_daemon =
      g_subprocess_launcher_spawn (daemon_launcher, &error, daemon_path, "--session", "--host",
                                   "127.0.0.1", "--port", port, NULL);
  g_assert_no_error (error);
  connection =
      g_dbus_connection_new_for_address_sync (address,
                                              G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                  G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                              NULL, NULL, &error);
  g_assert_no_error (error);
  watch = g_bus_watch_name_on_connection (connection, "org.stm32d", G_BUS_NAME_WATCHER_FLAGS_NONE,
                                          stm32_test_name_appeared, NULL, &owned, NULL);
  stm32_test_wait_until (owned, WAIT_MS);
  g_bus_unwatch_name (watch);
  return address;
}

/* A call the bus refuses: what happened and what to do, in the user's words
 * (the bus's own with -v), exit 7; and no claim that stm32d is retrying,
 * since nothing reached it. */
static void
test_access_denied (Fixture *fixture, gconstpointer reply)
{
  g_autofree char *address = private_bus_start (fixture);
  g_autofree char *bus_env = g_strconcat ("DBUS_SESSION_BUS_ADDRESS=", address, NULL);
  const char *const env[] = { bus_env, NULL };
  g_autofree char *err = NULL;

  /* Reading is allowed: stm32d is there and answers. */
  g_assert_cmpint (run_ctl_env (env, NULL, "--session", "status", NULL), ==, 0);

  g_assert_cmpint (run_ctl_env (env, &err, "--session", "connect", NULL), ==, 7);
  g_assert_nonnull (strstr (err, "stm32ctl: error: permission denied"));
  g_assert_nonnull (strstr (err, "nothing was done"));
  g_assert_nonnull (strstr (err, "group “stm32”"));
  g_assert_null (strstr (err, "Rejected send message"));
  g_assert_null (strstr (err, "matched rules"));
  g_assert_null (strstr (err, "retrying"));
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (run_ctl_env (env, &err, "--session", "-v", "connect", NULL), ==, 7);
  g_assert_nonnull (strstr (err, "permission denied"));
  g_assert_nonnull (strstr (err, "The bus said: Rejected send message"));
  g_assert_null (strstr (err, "retrying"));
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  add_test ("/ctl/status", "echo", test_status);
  g_test_add ("/ctl/links", Fixture, "echo", config_setup, test_links, fixture_teardown);
  add_test ("/ctl/connect-disconnect", "echo", test_connect_disconnect);
  add_test ("/ctl/send-transact", "echo", test_send_transact);
  add_test ("/ctl/bad-hex", "echo", test_bad_hex);
  add_test ("/ctl/transact-timeout", "none", test_transact_timeout);
  add_test ("/ctl/transact-lines", "echo", test_transact_lines);
  g_test_add_func ("/ctl/not-running", test_not_running);
  add_test ("/ctl/history", "echo", test_history);
  add_test ("/ctl/monitor", "echo", test_monitor);
  add_test ("/ctl/status-watch", "echo", test_status_watch);
  add_test ("/ctl/connect-no-wait", "echo", test_connect_no_wait);
  g_test_add ("/ctl/reload", Fixture, "echo", config_setup, test_reload, fixture_teardown);
  g_test_add ("/ctl/fleet/status", Fixture, NULL, fleet_setup, test_fleet_status, fixture_teardown);
  g_test_add ("/ctl/fleet/select", Fixture, NULL, fleet_setup, test_fleet_select, fixture_teardown);
  g_test_add ("/ctl/fleet/doctor", Fixture, NULL, fleet_setup, test_fleet_doctor, fixture_teardown);
  g_test_add ("/ctl/fleet/monitor", Fixture, NULL, fleet_setup, test_fleet_monitor,
              fixture_teardown);
  g_test_add ("/ctl/fleet/status-watch", Fixture, NULL, fleet_setup, test_fleet_status_watch,
              fixture_teardown);
  g_test_add ("/ctl/access-denied", Fixture, "echo", config_setup, test_access_denied,
              fixture_teardown);
  add_test ("/ctl/stopped-daemon", "echo", test_stopped_daemon);
  add_test ("/ctl/interrupt", "echo", test_interrupt);
  g_test_add_func ("/ctl/no-system-bus", test_no_system_bus);
  return stm32_daemon_test_run ();
}
