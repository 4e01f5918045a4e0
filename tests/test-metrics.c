/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `stm32ctl metrics` as Prometheus gets it: counters that move as a user
 * expects (connects, a refused connect under its reason, transactions and
 * their round trips, a timeout, the RSTs of forced and learned resets), the
 * atomic --output a textfile collector reads, and text that the real parser
 * (`promtool check metrics`) accepts without a complaint for 1 and for 256
 * links against the real daemon and the board simulator on loopback.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32ctl-openmetrics.h"
#include "test-util.h"

#define WAIT_MS 10000
/* A daemon with hundreds of links starts them under ASan on a loaded machine. */
#define FLEET_WAIT_MS 120000

/* Runs `stm32ctl --session ARGS…`; returns its exit status, its stdout in @out. */
static int run_ctl (char **out, char **err, const char *first_arg, ...) G_GNUC_NULL_TERMINATED;

static int
run_ctl (char **out, char **err, const char *first_arg, ...)
{
  g_autoptr (GSubprocessLauncher) launcher =
      stm32_test_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *ignored_out = NULL, *ignored_err = NULL;
  va_list args;

  g_ptr_array_add (argv, stm32_test_build_path ("cli/stm32ctl"));
  g_ptr_array_add (argv, g_strdup ("--session"));
  va_start (args, first_arg);
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv, NULL);
  process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, FLEET_WAIT_MS);
  g_subprocess_communicate_utf8_finish (process, result, out ? out : &ignored_out,
                                        err ? err : &ignored_err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  return g_subprocess_get_exit_status (process);
}

static char *
metrics (void)
{
  char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (run_ctl (&out, &err, "metrics", NULL), ==, 0);
  g_assert_cmpstr (err, ==, "");
  return out;
}

/* The value of @series ("name{labels}") in @text; fails if it is absent. */
static char *
sample (const char *text, const char *series)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  g_autofree char *prefix = g_strconcat (series, " ", NULL);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], prefix))
      return g_strdup (lines[i] + strlen (prefix));
  g_error ("no sample %s in:\n%s", series, text);
}

static guint64
sample_uint (const char *text, const char *series)
{
  g_autofree char *value = sample (text, series);

  return g_ascii_strtoull (value, NULL, 10);
}

/* promtool, or NULL after marking the test skipped. Only outside CI: CI
 * installs it (tools/deps.sh), and a check that silently skips there proves
 * nothing. */
static char *
find_promtool (void)
{
  char *promtool = g_find_program_in_path ("promtool");

  if (promtool == NULL && g_getenv ("CI") != NULL)
    g_error ("promtool not found although CI is set (tools/deps.sh installs Debian's prometheus)");
  if (promtool == NULL)
    g_test_skip ("promtool not found: install Debian's package prometheus (tools/deps.sh)");
  return promtool;
}

/* `promtool check metrics` reads @text from stdin: it must parse it and have
 * no lint complaint (it prints nothing and exits 0). */
static void
assert_promtool_accepts (const char *promtool, const char *text)
{
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
      G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;

  process = g_subprocess_launcher_spawn (launcher, &error, promtool, "check", "metrics", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, text, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, FLEET_WAIT_MS);
  g_subprocess_communicate_utf8_finish (process, result, &out, NULL, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_if_exited (process) || g_subprocess_get_exit_status (process) != 0 ||
      *out != '\0')
    g_error ("promtool check metrics complains:\n%s\nabout:\n%s", out, text);
}

typedef struct
{
  Stm32Sim *sim;
  Stm32Daemon *daemon;
  char *dir;
  char *config;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer data)
{
  fixture->dir = g_dir_make_tmp ("stm32-metrics-XXXXXX", NULL);
  g_assert_nonnull (fixture->dir);
  fixture->config = g_build_filename (fixture->dir, "stm32d.conf", NULL);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GDir) dir = NULL;
  const char *name;

  g_clear_pointer (&fixture->daemon, stm32_daemon_stop);
  g_clear_pointer (&fixture->sim, stm32_sim_stop);
  dir = g_dir_open (fixture->dir, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (fixture->dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->config);
}

/* A port nothing listens on: bound, then closed. */
static guint16
closed_port (void)
{
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_socket_bind (socket, any, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* Connects, transacts, times out, is reset on request, and is refused: each
 * moves its own counter, under the link it happened on. */
static void
test_counters (Fixture *fixture, gconstpointer data)
{
  Stm32DbusLink1 *board, *nobody;
  g_autofree char *text = NULL, *reply = NULL, *sum = NULL;
  g_autoptr (GError) error = NULL;

  fixture->sim = stm32_sim_start ("--delay-marks", NULL);
  stm32_test_write_file (fixture->config,
                         "[Link board]\nHost=127.0.0.1\nPort=%u\nAutoconnect=false\n"
                         "CloseMode=reset\nReplyGrace=100\n"
                         "[Link nobody]\nHost=127.0.0.1\nPort=%u\nAutoconnect=false\n",
                         stm32_sim_get_port (fixture->sim), closed_port ());
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  board = stm32_daemon_get_link (fixture->daemon, "board");
  nobody = stm32_daemon_get_link (fixture->daemon, "nobody");

  text = metrics ();
  g_assert_cmpuint (sample_uint (text, "stm32d_link_state{link=\"board\",state=\"disconnected\"}"),
                    ==, 1);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_state{link=\"board\",state=\"connected\"}"),
                    ==, 0);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_connects_total{link=\"board\"}"), ==, 0);
  /* Every reason is there before it first happens. */
  g_assert_cmpuint (
      sample_uint (text, "stm32d_link_failures_total{link=\"nobody\",reason=\"refused\"}"), ==, 0);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_resets_sent_total{link=\"board\"}"), ==, 0);
  g_clear_pointer (&text, g_free);

  g_assert_true (stm32_daemon_link_connect (board, &error));
  g_assert_no_error (error);
  /* The board answers 30 ms late: no round trip can fall at or below 25 ms. */
  reply = stm32_daemon_link_transact (board, "~30 ping", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "~30 ping");
  /* Never answered: the caller's 50 ms run out. */
  g_assert_null (stm32_daemon_link_transact (board, "~- lost", 50, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Timeout", STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  stm32_daemon_link_disconnect (board);
  g_assert_false (stm32_daemon_link_connect (nobody, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Refused", STM32_ERROR_REFUSED);
  g_clear_error (&error);
  stm32_daemon_link_disconnect (nobody);
  /* Counters are published at most five times a second: wait for the bus to have them. */
  stm32_test_wait_until (stm32_dbus_link1_get_resets_sent (board) == 1 &&
                             stm32_dbus_link1_get_transact_timeouts (board) == 1 &&
                             stm32_dbus_link1_get_connect_failures (nobody) >= 1,
                         WAIT_MS);

  text = metrics ();
  g_assert_cmpuint (sample_uint (text, "stm32d_link_state{link=\"board\",state=\"disconnected\"}"),
                    ==, 1);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_connects_total{link=\"board\"}"), ==, 1);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_disconnects_total{link=\"board\"}"), ==, 1);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_sent_frames_total{link=\"board\"}"), ==, 2);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_sent_bytes_total{link=\"board\"}"), ==,
                    strlen ("~30 ping\n~- lost\n"));
  g_assert_cmpuint (sample_uint (text, "stm32d_link_received_frames_total{link=\"board\"}"), ==,
                    1);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_received_bytes_total{link=\"board\"}"), ==,
                    strlen ("~30 ping\n"));
  g_assert_cmpuint (sample_uint (text, "stm32d_link_transact_timeouts_total{link=\"board\"}"), ==,
                    1);
  /* CloseMode=reset: the close was our RST, not a failure. */
  g_assert_cmpuint (sample_uint (text, "stm32d_link_resets_sent_total{link=\"board\"}"), ==, 1);
  g_assert_cmpuint (
      sample_uint (text, "stm32d_link_failures_total{link=\"board\",reason=\"reset\"}"), ==, 0);
  g_assert_cmpuint (
      sample_uint (text,
                   "stm32d_link_transact_round_trip_seconds_bucket{link=\"board\",le=\"0.025\"}"),
      ==, 0);
  g_assert_cmpuint (
      sample_uint (text,
                   "stm32d_link_transact_round_trip_seconds_bucket{link=\"board\",le=\"+Inf\"}"),
      ==, 1);
  g_assert_cmpuint (
      sample_uint (text, "stm32d_link_transact_round_trip_seconds_count{link=\"board\"}"), ==, 1);
  sum = sample (text, "stm32d_link_transact_round_trip_seconds_sum{link=\"board\"}");
  g_assert_cmpfloat (g_ascii_strtod (sum, NULL), >=, 0.030);

  g_assert_cmpuint (sample_uint (text, "stm32d_link_connects_total{link=\"nobody\"}"), ==, 0);
  g_assert_cmpuint (
      sample_uint (text, "stm32d_link_failures_total{link=\"nobody\",reason=\"refused\"}"), >=, 1);
  g_assert_cmpuint (
      sample_uint (text, "stm32d_link_failures_total{link=\"nobody\",reason=\"refused\"}"), ==,
      sample_uint (text, "stm32d_link_connect_failures_total{link=\"nobody\"}"));
  g_assert_cmpuint (
      sample_uint (text, "stm32d_link_failures_total{link=\"nobody\",reason=\"timeout\"}"), ==, 0);
}

/* Firmware that ignores EOF: the first closes wait for a FIN that never
 * comes and end with a RST, then stm32d learns to reset at once; every one
 * of them is a RST sent. */
static void
test_learned_reset (Fixture *fixture, gconstpointer data)
{
  Stm32DbusLink1 *board;
  g_autofree char *text = NULL;
  const guint cycles = 4;

  fixture->sim = stm32_sim_start ("--mode", "leak", "--slots", "0", NULL);
  stm32_test_write_file (fixture->config,
                         "[Link board]\nHost=127.0.0.1\nPort=%u\nAutoconnect=false\n"
                         "CloseTimeout=200\n",
                         stm32_sim_get_port (fixture->sim));
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  board = stm32_daemon_get_link (fixture->daemon, "board");
  for (guint i = 0; i < cycles; i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_true (stm32_daemon_link_connect (board, &error));
      g_assert_no_error (error);
      stm32_daemon_link_disconnect (board);
    }
  g_assert_cmpstr (stm32_dbus_link1_get_close_strategy (board), ==, "learned-reset");
  stm32_test_wait_until (stm32_dbus_link1_get_resets_sent (board) == cycles, WAIT_MS);

  text = metrics ();
  g_assert_cmpuint (sample_uint (text, "stm32d_link_resets_sent_total{link=\"board\"}"), ==,
                    cycles);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_disconnects_total{link=\"board\"}"), ==,
                    cycles);
}

/* Label values and help text that need escaping come out escaped, as the
 * parser reads them back. Link names cannot need it (the config allows
 * A-Z a-z 0-9 _), so the writer itself is given such values. */
static void
test_escaping (void)
{
  g_autoptr (GString) out = g_string_new (NULL);
  const char *const labels[] = { "link", "a\"b\\c\nd", "state", "ünïcode", NULL };
  g_autofree char *promtool = NULL;
  g_autofree char *tiny = stm32ctl_metrics_seconds (100);
  g_autofree char *whole = stm32ctl_metrics_seconds (10000000);
  g_autofree char *mixed = stm32ctl_metrics_seconds (2500001);

  stm32ctl_metrics_family (out, "x_state", "gauge", NULL, "Help with \\ and\nnewline \"quoted\".");
  stm32ctl_metrics_sample_uint (out, "x_state", labels, 1);
  stm32ctl_metrics_end (out);
  g_assert_cmpstr (out->str, ==,
                   "# HELP x_state Help with \\\\ and\\nnewline \"quoted\".\n"
                   "# TYPE x_state gauge\n"
                   "x_state{link=\"a\\\"b\\\\c\\nd\",state=\"ünïcode\"} 1\n"
                   "# EOF\n");
  g_assert_cmpstr (tiny, ==, "0.0001");
  g_assert_cmpstr (whole, ==, "10");
  g_assert_cmpstr (mixed, ==, "2.500001");

  promtool = find_promtool ();
  if (promtool != NULL)
    assert_promtool_accepts (promtool, out->str);
}

/* @n links to @n boards of one simulator (--boards: one port each, as
 * stm32d allows one link per board), all connected; each has made one
 * transaction, so the histograms are not all zero. */
static void
start_fleet (Fixture *fixture, guint n)
{
  g_autoptr (GString) config = g_string_new (NULL);
  g_autofree char *boards = g_strdup_printf ("%u", n);

  fixture->sim = stm32_sim_start ("--boards", boards, "--slots", "0", "-q", NULL);
  for (guint i = 0; i < n; i++)
    {
      guint port = stm32_sim_get_port (fixture->sim);

      /* The harness took the first board's "listening"; the others follow it. */
      if (i > 0)
        {
          g_autoptr (JsonObject) listening =
              stm32_sim_wait_event (fixture->sim, "listening", WAIT_MS);

          port = (guint) json_object_get_int_member (listening, "port");
        }
      g_string_append_printf (config, "[Link board_%03u]\nHost=127.0.0.1\nPort=%u\n", i, port);
    }
  stm32_test_write_file (fixture->config, "%s", config->str);
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("board_%03u", i);
      Stm32DbusLink1 *link = stm32_daemon_get_link (fixture->daemon, name);
      g_autofree char *reply = NULL;
      g_autoptr (GError) error = NULL;

      stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), FLEET_WAIT_MS);
      reply = stm32_daemon_link_transact (link, "ping", 30000, &error);
      g_assert_no_error (error);
      stm32_test_wait_until (stm32_dbus_link1_get_round_trip_sum (link) > 0, WAIT_MS);
    }
}

static void
test_promtool (Fixture *fixture, gconstpointer data)
{
  guint n = GPOINTER_TO_UINT (data);
  g_autofree char *promtool = find_promtool ();
  g_autofree char *text = NULL, *last = NULL;

  if (promtool == NULL)
    return;
  start_fleet (fixture, n);
  text = metrics ();
  last = g_strdup_printf ("board_%03u", n - 1);
  g_assert_cmpuint (sample_uint (text, "stm32d_link_transact_round_trip_seconds_count"
                                       "{link=\"board_000\"}"),
                    ==, 1);
  {
    g_autofree char *series =
        g_strdup_printf ("stm32d_link_state{link=\"%s\",state=\"connected\"}", last);

    g_assert_cmpuint (sample_uint (text, series), ==, 1);
  }
  g_assert_true (g_str_has_suffix (text, "\n# EOF\n"));
  assert_promtool_accepts (promtool, text);
}

/* --output replaces the file whole, readable by the collector's user, and
 * leaves it alone when there is nothing true to write. */
static void
test_output (Fixture *fixture, gconstpointer data)
{
  g_autofree char *file = g_build_filename (fixture->dir, "stm32d.prom", NULL);
  g_autofree char *printed = NULL, *written = NULL, *err = NULL, *missing = NULL;
  g_autoptr (GDir) dir = NULL;
  g_autoptr (GError) error = NULL;
  struct stat st;
  guint entries = 0;

  fixture->sim = stm32_sim_start ("--reply", "echo", NULL);
  stm32_test_write_file (fixture->config, "[Link board]\nHost=127.0.0.1\nPort=%u\nAutoconnect=false\n",
                         stm32_sim_get_port (fixture->sim));
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  stm32_daemon_get_link (fixture->daemon, "board");
  stm32_test_write_file (file, "old\n");

  printed = metrics ();
  g_assert_cmpint (run_ctl (NULL, &err, "metrics", "--output", file, NULL), ==, 0);
  g_assert_cmpstr (err, ==, "");
  g_file_get_contents (file, &written, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (written, ==, printed);
  g_assert_cmpint (g_stat (file, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0644);
  /* The config, the file, and no temporary file left beside them. */
  dir = g_dir_open (fixture->dir, 0, &error);
  g_assert_no_error (error);
  while (g_dir_read_name (dir) != NULL)
    entries++;
  g_assert_cmpuint (entries, ==, 2);

  /* stm32d gone: exit status 5, and the last true numbers stay. */
  g_clear_pointer (&fixture->daemon, stm32_daemon_stop);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl (NULL, &err, "metrics", "--output", file, NULL), ==, 5);
  g_assert_nonnull (strstr (err, "not running"));
  g_clear_pointer (&written, g_free);
  g_file_get_contents (file, &written, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (written, ==, printed);

  /* A directory that does not exist is named in the error. */
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  stm32_daemon_get_link (fixture->daemon, "board");
  missing = g_build_filename (fixture->dir, "no-such-dir", "stm32d.prom", NULL);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_ctl (NULL, &err, "metrics", "--output", missing, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "no-such-dir"));
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  g_test_add ("/metrics/counters", Fixture, NULL, fixture_setup, test_counters, fixture_teardown);
  g_test_add ("/metrics/learned-reset", Fixture, NULL, fixture_setup, test_learned_reset,
              fixture_teardown);
  g_test_add_func ("/metrics/escaping", test_escaping);
  g_test_add ("/metrics/output", Fixture, NULL, fixture_setup, test_output, fixture_teardown);
  g_test_add ("/metrics/promtool-1", Fixture, GUINT_TO_POINTER (1), fixture_setup, test_promtool,
              fixture_teardown);
  g_test_add ("/metrics/promtool-256", Fixture, GUINT_TO_POINTER (256), fixture_setup,
              test_promtool, fixture_teardown);
  return stm32_daemon_test_run ();
}
