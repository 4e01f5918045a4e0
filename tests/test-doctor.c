/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Link1.Diagnose and `stm32ctl doctor` against the board simulator: each
 * failure mode of the simulator produces its finding, with the evidence and
 * the fix a user reads; a healthy board gets a clean bill of health; the
 * probe measures the capacity the simulator was given and leaves every slot
 * it opened released; another process holding the board is named by pid and
 * command.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <unistd.h>

#include "daemon-harness.h"
#include "sandbox-harness.h"
#include "sim-harness.h"
#include "stm32-error.h"
#include "test-util.h"

#define WAIT_MS 10000
/* A probe with BusyWindow 100 ms takes about a second against the simulator. */
#define PROBE_WAIT_MS 20000

typedef struct
{
  Stm32Sim *sim;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;
  char *dir;
  char *config;
} Bench;

/* Starts stm32d with one link, "board", to the simulator: short timeouts so
 * that every test runs in a few seconds (BusyWindow 100 ms unless @extra
 * sets it), then @extra config lines. */
static void
bench_start_by (Bench *bench, GSubprocessLauncher *launcher, Stm32Sim *sim, const char *extra)
{
  gboolean own_window = extra != NULL && strstr (extra, "BusyWindow=") != NULL;

  bench->sim = sim;
  bench->dir = g_dir_make_tmp ("stm32-doctor-XXXXXX", NULL);
  bench->config = g_build_filename (bench->dir, "stm32d.conf", NULL);
  stm32_test_write_file (bench->config,
                         "[Link board]\nHost=127.0.0.1\nPort=%u\nCloseTimeout=50\n%s"
                         "BusyBackoff=100\nRetryMin=50\nRetryMax=100\nConnectTimeout=1000\n%s",
                         stm32_sim_get_port (sim), own_window ? "" : "BusyWindow=100\n",
                         extra ? extra : "");
  bench->daemon = stm32_daemon_start_by (launcher, "--config", bench->config, NULL);
  bench->link = stm32_daemon_get_link (bench->daemon, "board");
}

static void
bench_start (Bench *bench, Stm32Sim *sim, const char *extra)
{
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (G_SUBPROCESS_FLAGS_NONE);

  bench_start_by (bench, launcher, sim, extra);
}

static void
bench_stop (Bench *bench)
{
  stm32_daemon_stop (bench->daemon);
  stm32_sim_stop (bench->sim);
  g_unlink (bench->config);
  g_rmdir (bench->dir);
  g_free (bench->config);
  g_free (bench->dir);
}

/* A test's bench, as its fixture data: the simulator's options and the lines
 * bench_start() adds to the link's config. */
typedef struct
{
  const char *const *board;
  const char *extra;
} BenchSpec;

/* Fixture data that lives as long as main(). */
#define SPEC(extra_lines, ...)                                                                     \
  (&(const BenchSpec){ (const char *const[]){ __VA_ARGS__, NULL }, (extra_lines) })

static void
bench_setup (Bench *bench, gconstpointer data)
{
  const BenchSpec *spec = data;

  bench_start (bench, stm32_sim_startv (spec->board), spec->extra);
}

static void
bench_teardown (Bench *bench, gconstpointer data)
{
  bench_stop (bench);
}

static void
add_test (const char *path, const BenchSpec *spec, void (*test) (Bench *, gconstpointer))
{
  g_test_add (path, Bench, spec, bench_setup, test, bench_teardown);
}

/* Runs stm32ctl --session ARGS…; its exit status, and its stdout in @out. */
static int run_ctl (char **out, const char *first_arg, ...) G_GNUC_NULL_TERMINATED;
/* The same, started by @launcher. */
static int run_ctl_by (GSubprocessLauncher *launcher, char **out, const char *first_arg,
                       ...) G_GNUC_NULL_TERMINATED;

static GVariant *
diagnose (Stm32DbusLink1 *link, GVariant *options, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  GVariant *report = NULL;

  if (options == NULL)
    options = g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0);
  stm32_dbus_link1_call_diagnose (link, options, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, PROBE_WAIT_MS);
  if (!stm32_dbus_link1_call_diagnose_finish (link, &report, result, error))
    return NULL;
  return report;
}

static GVariant *
diagnose_ok (Stm32DbusLink1 *link, GVariant *options)
{
  g_autoptr (GError) error = NULL;
  GVariant *report = diagnose (link, options, &error);

  g_assert_no_error (error);
  g_assert_nonnull (report);
  return report;
}

static GVariant *
probe_options (guint max)
{
  GVariantDict options;

  g_variant_dict_init (&options, NULL);
  g_variant_dict_insert (&options, "probe", "b", TRUE);
  g_variant_dict_insert (&options, "probe-max", "u", max);
  return g_variant_dict_end (&options);
}

/* The finding with @id, or NULL. */
static GVariant *
find_finding (GVariant *report, const char *id)
{
  g_autoptr (GVariant) findings = g_variant_lookup_value (report, "findings", NULL);

  g_assert_nonnull (findings);
  for (gsize i = 0; i < g_variant_n_children (findings); i++)
    {
      g_autoptr (GVariant) finding = g_variant_get_child_value (findings, i);
      const char *finding_id = NULL;

      g_assert_true (g_variant_lookup (finding, "id", "&s", &finding_id));
      if (g_str_equal (finding_id, id))
        return g_steal_pointer (&finding);
    }
  return NULL;
}

/* The finding with @id, which must be there with every member a user reads. */
static GVariant *
expect_finding (GVariant *report, const char *id, const char *severity, const char *side)
{
  GVariant *finding = find_finding (report, id);
  const char *value = NULL;
  gboolean healthy = TRUE;

  if (finding == NULL)
    {
      g_autofree char *text = g_variant_print (report, FALSE);

      g_error ("no finding “%s” in %s", id, text);
    }
  g_assert_true (g_variant_lookup (finding, "severity", "&s", &value));
  g_assert_cmpstr (value, ==, severity);
  g_assert_true (g_variant_lookup (finding, "side", "&s", &value));
  g_assert_cmpstr (value, ==, side);
  for (guint i = 0; i < 3; i++)
    {
      const char *key = (const char *[]){ "title", "evidence", "fix" }[i];

      g_assert_true (g_variant_lookup (finding, key, "&s", &value));
      g_assert_cmpstr (value, !=, "");
    }
  g_assert_true (g_variant_lookup (report, "healthy", "b", &healthy));
  if (!g_str_equal (severity, "info"))
    g_assert_false (healthy);
  return finding;
}

static void
assert_contains (GVariant *finding, const char *key, const char *text)
{
  const char *value = NULL;

  g_assert_true (g_variant_lookup (finding, key, "&s", &value));
  if (strstr (value, text) == NULL)
    g_error ("%s “%s” does not mention “%s”", key, value, text);
}

static guint64
link_disconnects (Stm32DbusLink1 *link)
{
  return stm32_dbus_link1_get_disconnects (link);
}

static gint64
sim_slots_in_use (Stm32Sim *sim)
{
  g_autoptr (JsonObject) status = stm32_sim_status (sim);

  return json_object_get_int_member (status, "slots_in_use");
}

/* ---- a healthy board ------------------------------------------------------------------ */

/* The census's sockets that a process holds, without the orphans (inode 0:
 * TIME_WAIT, FIN_WAIT_2…). The simulator listens on a port the kernel picked,
 * which may have been another test's board a moment before (tests share the
 * loopback): that board's closed connections linger for up to a minute,
 * rightly in the census (same address, same port) but none of this test's
 * doing. */
static GPtrArray *
census_held (GVariant *report)
{
  g_autoptr (GVariant) census =
      g_variant_lookup_value (report, "census", G_VARIANT_TYPE ("aa{sv}"));
  GPtrArray *held = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);

  g_assert_nonnull (census);
  for (gsize i = 0; i < g_variant_n_children (census); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (census, i);
      guint64 inode = 0;

      g_assert_true (g_variant_lookup (entry, "inode", "t", &inode));
      if (inode != 0)
        g_ptr_array_add (held, g_steal_pointer (&entry));
    }
  return held;
}

static void
test_healthy (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL;
  g_autoptr (GVariant) findings = NULL, summary = NULL, probe = NULL;
  g_autoptr (GPtrArray) census = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) reply = NULL;
  gboolean healthy = FALSE, ours = FALSE;
  const char *state = NULL, *local = NULL;
  guint32 attempts = 99;

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);
  stm32_dbus_link1_call_transact (bench->link, stm32_daemon_bytes ("ping"), 2000, NULL,
                                  stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_transact_finish (bench->link, &reply, result, NULL));

  report = diagnose_ok (bench->link, NULL);
  g_assert_true (g_variant_lookup (report, "healthy", "b", &healthy));
  g_assert_true (healthy);
  findings = g_variant_lookup_value (report, "findings", G_VARIANT_TYPE ("aa{sv}"));
  g_assert_cmpuint (g_variant_n_children (findings), ==, 0);
  /* Passive: no probe unless asked. */
  probe = g_variant_lookup_value (report, "probe", NULL);
  g_assert_null (probe);
  summary = g_variant_lookup_value (report, "history-summary", G_VARIANT_TYPE_VARDICT);
  g_assert_true (g_variant_lookup (summary, "attempts", "u", &attempts));
  g_assert_cmpuint (attempts, ==, 0); /* the one attempt is still under way */

  /* The census sees the link's own socket, and knows it is the daemon's. */
  census = census_held (report);
  g_assert_cmpuint (census->len, ==, 1);
  {
    GVariant *entry = census->pdata[0];
    const char *command = NULL;

    g_assert_true (g_variant_lookup (entry, "state", "&s", &state));
    g_assert_true (g_variant_lookup (entry, "local", "&s", &local));
    g_assert_true (g_variant_lookup (entry, "ours", "b", &ours));
    g_assert_cmpstr (state, ==, "ESTABLISHED");
    g_assert_cmpstr (local, ==, stm32_dbus_link1_get_local_address (bench->link));
    g_assert_true (ours);
    g_assert_true (g_variant_lookup (entry, "command", "&s", &command));
    g_assert_cmpstr (command, ==, "stm32d");
  }
}

/* ---- the board's close and slots ------------------------------------------------------- */

/* Firmware that ignores recv() == 0: every close we start needs our RST. */
static void
test_leaky_firmware (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL, finding = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);
  stm32_daemon_link_disconnect (bench->link);

  report = diagnose_ok (bench->link, NULL);
  finding = expect_finding (report, "board-ignores-eof", "error", "board");
  assert_contains (finding, "evidence", "1 of 1 closes");
  assert_contains (finding, "evidence", "CloseTimeout (50 ms)");
  /* Says plainly that only the firmware can fix it, and why. */
  assert_contains (finding, "fix", "Only the firmware can fix this");
  assert_contains (finding, "fix", "recv()");
  assert_contains (finding, "fix", "MEMP_NUM_NETCONN");
}

static void
on_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GSocketConnection **) user_data =
      g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, NULL);
}

/* Someone else holds the board's only slot: the link is accepted and dropped
 * again and again. */
static void
test_server_busy (void)
{
  Stm32Sim *sim = stm32_sim_start ("--slots", "1", NULL);
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) occupant = NULL;
  g_autoptr (GVariant) report = NULL, finding = NULL, competing = NULL, pids = NULL;
  Bench bench = { 0 };
  gint32 pid = 0;

  g_socket_client_connect_to_host_async (client, "127.0.0.1", stm32_sim_get_port (sim), NULL,
                                         on_connected, &occupant);
  stm32_test_wait_until (occupant != NULL, WAIT_MS);
  stm32_sim_expect (sim, "accepted", WAIT_MS);
  bench_start (&bench, sim, NULL);
  stm32_test_wait_until (
      stm32_dbus_link1_get_connect_failures (bench.link) + link_disconnects (bench.link) >= 2,
      WAIT_MS);

  report = diagnose_ok (bench.link, NULL);
  finding = find_finding (report, "server-busy");
  g_assert_nonnull (finding);
  assert_contains (finding, "evidence", "accepted and then closed or reset within BusyWindow");
  assert_contains (finding, "fix", "MEMP_NUM_NETCONN");
  assert_contains (finding, "workaround", "BusyBackoff");
  /* The occupant is this test program, and the doctor names it. */
  competing = expect_finding (report, "competing-client", "error", "pc");
  pids = g_variant_lookup_value (competing, "pids", G_VARIANT_TYPE ("ai"));
  g_assert_nonnull (pids);
  g_variant_get_child (pids, 0, "i", &pid);
  g_assert_cmpint (pid, ==, getpid ());
  g_io_stream_close (G_IO_STREAM (occupant), NULL, NULL);
  bench_stop (&bench);
}

/* ---- what the board says about traffic --------------------------------------------------- */

/* The board closes every connection after 300 ms without traffic. */
static void
test_idle_timeout (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL, finding = NULL;
  guint32 interval = 0;
  const char *fix = NULL, *suggested;

  stm32_test_wait_until (link_disconnects (bench->link) >= 3, WAIT_MS);

  report = diagnose_ok (bench->link, NULL);
  finding = expect_finding (report, "board-idle-timeout", "warning", "pc");
  g_assert_true (g_variant_lookup (finding, "interval-ms", "u", &interval));
  g_assert_cmpuint (interval, >=, 280);
  g_assert_cmpuint (interval, <=, 450);
  assert_contains (finding, "title", "without traffic");
  /* A heartbeat shorter than the board's interval is the fix. */
  g_assert_true (g_variant_lookup (finding, "fix", "&s", &fix));
  suggested = strstr (fix, "HeartbeatInterval=");
  g_assert_nonnull (suggested);
  g_assert_cmpuint (g_ascii_strtoull (suggested + strlen ("HeartbeatInterval="), NULL, 10), <,
                    interval);
  assert_contains (finding, "fix", "Heartbeat=");
  g_assert_null (find_finding (report, "board-rejects-frames"));
}

/* The board expects JSON and hangs up on anything else. */
static void
test_rejects_frames (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL, finding = NULL;
  g_autoptr (GAsyncResult) result = NULL;

  /* BusyWindow=0: the board's close right after connecting must not pass for a full table. */
  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);
  stm32_dbus_link1_call_send (bench->link, stm32_daemon_bytes ("not json"), NULL,
                              stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  stm32_sim_expect (bench->sim, "malformed", WAIT_MS);
  stm32_test_wait_until (link_disconnects (bench->link) >= 1, WAIT_MS);

  report = diagnose_ok (bench->link, NULL);
  finding = expect_finding (report, "board-rejects-frames", "warning", "pc");
  assert_contains (finding, "fix", "Framing= (now line)");
  assert_contains (finding, "workaround", "firmware");
  g_assert_null (find_finding (report, "board-idle-timeout"));
}

/* A hung firmware: the stack ACKs, nothing answers; the heartbeat notices,
 * and the history says so: that, not the message, is how the doctor tells. */
static void
test_blackhole (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL, finding = NULL, history = NULL, last = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *table = NULL;
  const char *detector = NULL;

  stm32_test_wait_until (link_disconnects (bench->link) >= 1, WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_get_history_sync (bench->link, &history, NULL, &error));
  g_assert_no_error (error);
  last = g_variant_get_child_value (history, 0);
  g_assert_true (g_variant_lookup (last, "detector", "&s", &detector));
  g_assert_cmpstr (detector, ==, "heartbeat");
  g_assert_cmpint (run_ctl (&table, "history", NULL), ==, 0);
  g_assert_nonnull (strstr (table, "DETECTED BY"));
  g_assert_nonnull (strstr (table, "heartbeat"));

  report = diagnose_ok (bench->link, NULL);
  finding = find_finding (report, "dead-peer");
  g_assert_nonnull (finding);
  assert_contains (finding, "title", "firmware stopped answering");
  assert_contains (finding, "evidence", "HeartbeatTimeout");
  assert_contains (finding, "evidence", "detected by heartbeat");
  assert_contains (finding, "fix", "watchdog");
}

/* ---- another program --------------------------------------------------------------------- */

/* A direct client, like an old GUI: a bash holding a connection to the board. */
static void
test_competing_client (Bench *bench, gconstpointer spec)
{
  g_autoptr (GSubprocess) bash = NULL;
  g_autoptr (GVariant) report = NULL, finding = NULL, pids = NULL;
  g_autoptr (GPtrArray) census = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) exited = NULL;
  g_autofree char *script = NULL, *named = NULL;
  gint32 first_pid = 0;
  int pid;
  gboolean found = FALSE;

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);
  script =
      g_strdup_printf ("exec 3<>/dev/tcp/127.0.0.1/%u; read -r", stm32_sim_get_port (bench->sim));
  bash = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE, &error, "bash", "-c", script, NULL);
  g_assert_no_error (error);
  pid = (int) g_ascii_strtoll (g_subprocess_get_identifier (bash), NULL, 10);
  stm32_test_wait_until (sim_slots_in_use (bench->sim) == 2, WAIT_MS);

  report = diagnose_ok (bench->link, NULL);
  finding = expect_finding (report, "competing-client", "warning", "pc");
  named = g_strdup_printf ("pid %d (bash", pid);
  assert_contains (finding, "evidence", named);
  assert_contains (finding, "evidence", "ESTABLISHED");
  assert_contains (finding, "fix", named);
  pids = g_variant_lookup_value (finding, "pids", G_VARIANT_TYPE ("ai"));
  g_variant_get_child (pids, 0, "i", &first_pid);
  g_assert_cmpint (first_pid, ==, pid);

  /* The census lists it, with its owner, beside the daemon's own socket. */
  census = census_held (report);
  g_assert_cmpuint (census->len, ==, 2);
  for (guint i = 0; i < census->len; i++)
    {
      GVariant *entry = census->pdata[i];
      gint32 entry_pid = 0;
      gboolean ours = TRUE;
      const char *command = NULL;

      if (!g_variant_lookup (entry, "pid", "i", &entry_pid) || entry_pid != pid)
        continue;
      found = TRUE;
      g_assert_true (g_variant_lookup (entry, "ours", "b", &ours));
      g_assert_false (ours);
      g_assert_true (g_variant_lookup (entry, "command", "&s", &command));
      g_assert_cmpstr (command, ==, "bash");
    }
  g_assert_true (found);

  /* EOF on its stdin ends it, and its connection with it. */
  g_output_stream_close (g_subprocess_get_stdin_pipe (bash), NULL, NULL);
  g_subprocess_wait_async (bash, NULL, stm32_test_store_result, &exited);
  stm32_test_wait_until (exited != NULL, WAIT_MS);
  stm32_test_wait_until (sim_slots_in_use (bench->sim) == 1, WAIT_MS);
}

/* @text with every run of white space as one space: stm32ctl wraps its lines. */
static char *
unwrap (const char *text)
{
  g_autoptr (GRegex) space = g_regex_new ("\\s+", 0, 0, NULL);

  return g_regex_replace_literal (space, text, -1, 0, " ", 0, NULL);
}

/* The census entry of @pid in a `stm32ctl doctor --json` report, or NULL. */
static JsonObject *
json_census_entry (JsonObject *root, int pid)
{
  JsonArray *census = json_object_get_array_member (root, "census");

  for (guint i = 0; i < json_array_get_length (census); i++)
    {
      JsonObject *entry = json_array_get_object_element (census, i);

      if (!json_object_get_null_member (entry, "pid") &&
          json_object_get_int_member (entry, "pid") == pid)
        return entry;
    }
  return NULL;
}

/* stm32d confined as its unit confines it (sandbox-harness.h) and a lab
 * user's program holding one of the board's slots: stm32d cannot name it,
 * `stm32ctl doctor` run as root does, and one that cannot see it either
 * says how to. */
static void
test_competing_client_sandboxed (void)
{
  g_autofree char *why = stm32_sandbox_unavailable ();
  g_autoptr (GSubprocessLauncher) confined = NULL, nobody = NULL;
  g_autoptr (GSubprocess) bash = NULL;
  g_autoptr (GVariant) report = NULL, finding = NULL, census = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) exited = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *script = NULL, *named = NULL, *out = NULL, *text = NULL, *json = NULL;
  g_autofree char *blind_out = NULL, *blind = NULL;
  JsonObject *root, *entry, *competing = NULL;
  JsonArray *findings, *pids;
  Bench bench;
  int pid;

  if (why != NULL)
    {
      g_test_skip (why);
      return;
    }
  confined = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  stm32_sandbox_confine (confined);
  bench_start_by (&bench, confined, stm32_sim_start ("--reply", "echo", NULL), NULL);
  stm32_test_wait_until (stm32_daemon_link_state_is (bench.link, "connected"), WAIT_MS);

  nobody = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE);
  stm32_sandbox_as_nobody (nobody);
  script =
      g_strdup_printf ("exec 3<>/dev/tcp/127.0.0.1/%u; read -r", stm32_sim_get_port (bench.sim));
  bash = g_subprocess_launcher_spawn (nobody, &error, "bash", "-c", script, NULL);
  g_assert_no_error (error);
  pid = (int) g_ascii_strtoll (g_subprocess_get_identifier (bash), NULL, 10);
  stm32_test_wait_until (sim_slots_in_use (bench.sim) == 2, WAIT_MS);
  named = g_strdup_printf ("pid %d (bash)", pid);

  /* stm32d sees a socket and a uid, not who holds it. */
  report = diagnose_ok (bench.link, NULL);
  finding = expect_finding (report, "competing-client", "warning", "pc");
  assert_contains (finding, "evidence", "that stm32d may not inspect");
  assert_contains (finding, "fix", "stm32ctl doctor, run as root");
  g_assert_null (g_variant_lookup_value (finding, "pids", NULL));
  census = g_variant_lookup_value (report, "census", G_VARIANT_TYPE ("aa{sv}"));
  for (gsize i = 0; i < g_variant_n_children (census); i++)
    {
      g_autoptr (GVariant) socket = g_variant_get_child_value (census, i);
      gboolean ours = TRUE;

      g_assert_true (g_variant_lookup (socket, "ours", "b", &ours));
      g_assert_true (ours || g_variant_lookup_value (socket, "pid", NULL) == NULL);
    }

  /* stm32ctl, run as root, names it, in text and in JSON. */
  g_assert_cmpint (run_ctl (&out, "doctor", NULL), ==, 8);
  text = unwrap (out);
  g_assert_nonnull (strstr (text, "Found by stm32ctl:"));
  g_assert_nonnull (strstr (text, named));
  g_assert_null (strstr (text, "Not found:"));
  g_assert_cmpint (run_ctl (&json, "doctor", "--json", NULL), ==, 8);
  json_parser_load_from_data (parser, json, -1, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  entry = json_census_entry (root, pid);
  g_assert_nonnull (entry);
  g_assert_cmpstr (json_object_get_string_member (entry, "command"), ==, "bash");
  g_assert_cmpstr (json_object_get_string_member (entry, "seen_by"), ==, "stm32ctl");
  g_assert_false (json_object_get_boolean_member (entry, "ours"));
  findings = json_object_get_array_member (root, "findings");
  for (guint i = 0; i < json_array_get_length (findings); i++)
    if (g_str_equal (
            json_object_get_string_member (json_array_get_object_element (findings, i), "id"),
            "competing-client"))
      competing = json_array_get_object_element (findings, i);
  g_assert_nonnull (competing);
  pids = json_object_get_array_member (competing, "pids");
  g_assert_cmpuint (json_array_get_length (pids), ==, 1);
  g_assert_cmpint (json_array_get_int_element (pids, 0), ==, pid);

  /* stm32ctl confined like stm32d sees no more: it says so, and how to see. */
  g_assert_cmpint (run_ctl_by (confined, &blind_out, "doctor", NULL), ==, 8);
  blind = unwrap (blind_out);
  g_assert_null (strstr (blind, named));
  g_assert_nonnull (strstr (blind, "Not found: neither stm32d nor stm32ctl may see the program"));
  g_assert_nonnull (strstr (blind, "run stm32ctl doctor as root to see which program"));

  g_output_stream_close (g_subprocess_get_stdin_pipe (bash), NULL, NULL);
  g_subprocess_wait_async (bash, NULL, stm32_test_store_result, &exited);
  stm32_test_wait_until (exited != NULL, WAIT_MS);
  stm32_test_wait_until (sim_slots_in_use (bench.sim) == 1, WAIT_MS);
  bench_stop (&bench);
}

/* ---- the probe --------------------------------------------------------------------------- */

static guint32
probe_uint (GVariant *probe, const char *key)
{
  guint32 value = G_MAXUINT32;

  g_assert_true (g_variant_lookup (probe, key, "u", &value));
  return value;
}

static gboolean
probe_bool (GVariant *probe, const char *key)
{
  gboolean value = FALSE;

  g_assert_true (g_variant_lookup (probe, key, "b", &value));
  return value;
}

/* A board with three slots, one of them the link's: the probe finds all
 * three and gives back the two it took. */
static void
test_probe_capacity (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL, probe = NULL, findings = NULL;
  const char *limit = NULL;
  guint64 latency = 0;

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);
  g_assert_cmpint (sim_slots_in_use (bench->sim), ==, 1);

  report = diagnose_ok (bench->link, probe_options (8));
  probe = g_variant_lookup_value (report, "probe", G_VARIANT_TYPE_VARDICT);
  g_assert_nonnull (probe);
  g_assert_cmpuint (probe_uint (probe, "cycles"), ==, 3);
  g_assert_cmpuint (probe_uint (probe, "cycles-accepted"), ==, 3);
  g_assert_cmpuint (probe_uint (probe, "closes-reset"), ==, 0);
  g_assert_true (g_variant_lookup (probe, "connect-us-median", "t", &latency));
  g_assert_cmpuint (latency, >, 0);
  g_assert_cmpuint (probe_uint (probe, "held-by-link"), ==, 1);
  g_assert_cmpuint (probe_uint (probe, "extra"), ==, 2);
  g_assert_cmpuint (probe_uint (probe, "capacity"), ==, 3);
  g_assert_true (probe_bool (probe, "capacity-exact"));
  g_assert_true (g_variant_lookup (probe, "limit", "&s", &limit));
  g_assert_cmpstr (limit, ==, "rejected");
  g_assert_true (probe_bool (probe, "released"));
  /* The board really was full once, and turned the probe away. */
  g_assert_cmpuint (stm32_sim_count_events (bench->sim, "rejected"), >=, 1);
  /* Every slot the probe took is free again; the link's is still the link's. */
  stm32_test_wait_until (sim_slots_in_use (bench->sim) == 1, WAIT_MS);
  g_assert_true (stm32_daemon_link_state_is (bench->link, "connected"));
  /* A full table reached on purpose is no finding. */
  findings = g_variant_lookup_value (report, "findings", G_VARIANT_TYPE ("aa{sv}"));
  g_assert_cmpuint (g_variant_n_children (findings), ==, 0);
}

/* Leaky firmware: the probe's closes need RSTs, and still no slot stays taken. */
static void
test_probe_leaky (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL, probe = NULL, finding = NULL;

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);

  report = diagnose_ok (bench->link, probe_options (2));
  probe = g_variant_lookup_value (report, "probe", G_VARIANT_TYPE_VARDICT);
  g_assert_cmpuint (probe_uint (probe, "cycles-accepted"), ==, 3);
  g_assert_cmpuint (probe_uint (probe, "extra"), ==, 2);
  g_assert_false (probe_bool (probe, "capacity-exact")); /* stopped at --max, not at a full table */
  g_assert_cmpuint (probe_uint (probe, "closes-graceful"), ==, 0);
  g_assert_cmpuint (probe_uint (probe, "closes-reset"), ==, 6);
  g_assert_true (probe_bool (probe, "released"));
  finding = expect_finding (report, "board-ignores-eof", "error", "board");
  assert_contains (finding, "evidence", "The probe: 6 of 6 closes needed a RST");
  stm32_test_wait_until (sim_slots_in_use (bench->sim) == 1, WAIT_MS);
}

/* The caller of a probe dies mid-way: the probe ends at once and resets
 * every connection it holds, rather than keep the board's slots. */
static void
test_probe_caller_leaves (Bench *bench, gconstpointer spec)
{
  g_autoptr (GSubprocess) ctl = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) exited = NULL;
  g_autoptr (GVariant) report = NULL;
  g_autofree char *path = stm32_test_build_path ("cli/stm32ctl");

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);
  ctl = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                          &error, path, "--session", "doctor", "--max", "32", NULL);
  g_assert_no_error (error);
  /* The link's slot and at least two of the probe's extra connections. */
  stm32_test_wait_until (sim_slots_in_use (bench->sim) >= 3, WAIT_MS);
  g_subprocess_force_exit (ctl);
  g_subprocess_wait_async (ctl, NULL, stm32_test_store_result, &exited);
  stm32_test_wait_until (exited != NULL, WAIT_MS);

  /* Reset, not closed gracefully: the probe was cut short, and the board
   * has every slot back long before 32 extra connections could have been made. */
  stm32_test_wait_until (sim_slots_in_use (bench->sim) == 1, WAIT_MS);
  g_assert_cmpint (stm32_sim_released_how (bench->sim, "peer-reset"), >=, 2);
  g_assert_cmpuint (stm32_sim_count_events (bench->sim, "accepted"), <, 1 + 3 + 32);
  g_assert_true (stm32_daemon_link_state_is (bench->link, "connected"));
  /* And the next probe is not refused as Busy. */
  report = diagnose_ok (bench->link, probe_options (1));
}

/* The daemon's pid, from its own socket in the census. */
static int
daemon_pid (GVariant *report)
{
  g_autoptr (GVariant) census = g_variant_lookup_value (report, "census", NULL);

  for (gsize i = 0; i < g_variant_n_children (census); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (census, i);
      gboolean ours = FALSE;
      gint32 pid = 0;

      if (g_variant_lookup (entry, "ours", "b", &ours) && ours &&
          g_variant_lookup (entry, "pid", "i", &pid))
        return pid;
    }
  g_assert_not_reached ();
}

/* Diagnoses and probes leave the daemon with the fds it had: the netlink
 * socket, the census's /proc reads and every probe connection are closed. */
static void
test_no_fd_leak (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) first = NULL;
  guint before;
  int pid;

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);
  /* The first one starts the worker thread and the resolver for good. */
  first = diagnose_ok (bench->link, probe_options (4));
  pid = daemon_pid (first);
  before = stm32_test_count_process_fds (pid);
  for (guint i = 0; i < 2; i++)
    {
      g_variant_unref (diagnose_ok (bench->link, probe_options (4)));
      g_variant_unref (diagnose_ok (bench->link, NULL));
    }
  g_assert_cmpuint (stm32_test_count_process_fds (pid), ==, before);
  stm32_test_wait_until (sim_slots_in_use (bench->sim) == 1, WAIT_MS);
}

/* ---- the interface ------------------------------------------------------------------------ */

static void
expect_invalid_args (Stm32DbusLink1 *link, const char *options_text)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) options =
      g_variant_parse (G_VARIANT_TYPE_VARDICT, options_text, NULL, NULL, &error);
  g_autoptr (GVariant) report = NULL;

  g_assert_no_error (error);
  report = diagnose (link, options, &error);
  g_assert_null (report);
  stm32_daemon_assert_error (error, "org.stm32d.Error.InvalidArgs", STM32_ERROR_INVALID_ARGS);
}

static void
test_invalid_args (Bench *bench, gconstpointer spec)
{
  g_autoptr (GVariant) report = NULL;

  expect_invalid_args (bench->link, "{'colour': <'blue'>}");
  expect_invalid_args (bench->link, "{'probe': <'yes'>}");
  expect_invalid_args (bench->link, "{'probe': <true>, 'probe-max': <0>}");
  expect_invalid_args (bench->link, "{'probe': <true>, 'probe-max': <uint32 0>}");
  expect_invalid_args (bench->link, "{'probe': <true>, 'probe-max': <uint32 33>}");
  /* Nothing was probed: the board saw no connection at all. */
  g_assert_cmpuint (stm32_sim_count_events (bench->sim, "accepted"), ==, 0);
  report = diagnose_ok (bench->link, NULL);
}

/* ---- stm32ctl doctor ------------------------------------------------------------------------ */

static int
run_ctl_v (GSubprocessLauncher *launcher, char **out, const char *first_arg, va_list args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;

  g_ptr_array_add (argv, stm32_test_build_path ("cli/stm32ctl"));
  g_ptr_array_add (argv, g_strdup ("--session"));
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  g_ptr_array_add (argv, NULL);
  g_subprocess_launcher_set_flags (launcher,
                                   G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, PROBE_WAIT_MS);
  g_subprocess_communicate_utf8_finish (process, result, out, &err, &error);
  g_assert_no_error (error);
  g_test_message ("stm32ctl stderr: %s", err);
  g_assert_true (g_subprocess_get_if_exited (process));
  return g_subprocess_get_exit_status (process);
}

static int
run_ctl_by (GSubprocessLauncher *launcher, char **out, const char *first_arg, ...)
{
  va_list args;
  int status;

  va_start (args, first_arg);
  status = run_ctl_v (launcher, out, first_arg, args);
  va_end (args);
  return status;
}

static int
run_ctl (char **out, const char *first_arg, ...)
{
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  va_list args;
  int status;

  va_start (args, first_arg);
  status = run_ctl_v (launcher, out, first_arg, args);
  va_end (args);
  return status;
}

static void
test_ctl (Bench *bench, gconstpointer spec)
{
  g_autofree char *clean = NULL, *sick = NULL, *json = NULL, *probed = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *root, *first, *probe;
  JsonArray *findings;

  stm32_test_wait_until (stm32_daemon_link_state_is (bench->link, "connected"), WAIT_MS);

  /* Healthy so far: exit 0, and the clean bill said so. */
  g_assert_cmpint (run_ctl (&clean, "doctor", NULL), ==, 0);
  g_assert_nonnull (strstr (clean, "Clean bill of health"));
  g_assert_nonnull (strstr (clean, "ESTABLISHED"));
  /* A socket without a pid still has a "Pid" column header. */
  g_assert_null (strstr (clean, "(null)"));

  stm32_daemon_link_disconnect (bench->link);

  /* The link named as an argument; problems found: exit 8, fix on the board. */
  g_assert_cmpint (run_ctl (&sick, "doctor", "board", NULL), ==, 8);
  g_assert_nonnull (strstr (sick, "board-ignores-eof"));
  g_assert_nonnull (strstr (sick, "Fix on the board:"));
  g_assert_nonnull (strstr (sick, "Meanwhile on the PC:"));
  g_assert_null (strstr (sick, "Clean bill of health"));
  g_assert_null (strstr (sick, "(null)"));

  g_assert_cmpint (run_ctl (&json, "doctor", "--json", NULL), ==, 8);
  json_parser_load_from_data (parser, json, -1, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (root, "name"), ==, "board");
  g_assert_false (json_object_get_boolean_member (root, "healthy"));
  findings = json_object_get_array_member (root, "findings");
  first = json_array_get_object_element (findings, 0);
  g_assert_cmpstr (json_object_get_string_member (first, "id"), ==, "board-ignores-eof");
  g_assert_cmpstr (json_object_get_string_member (first, "side"), ==, "board");
  g_assert_cmpint (
      json_object_get_int_member (json_object_get_object_member (root, "history"), "aborted"), ==,
      1);
  g_assert_true (json_object_get_null_member (root, "probe"));

  /* --max implies --probe. */
  g_assert_cmpint (run_ctl (&probed, "doctor", "--json", "--max", "1", NULL), ==, 8);
  g_clear_object (&parser);
  parser = json_parser_new ();
  json_parser_load_from_data (parser, probed, -1, &error);
  g_assert_no_error (error);
  probe =
      json_object_get_object_member (json_node_get_object (json_parser_get_root (parser)), "probe");
  g_assert_nonnull (probe);
  g_assert_cmpint (json_object_get_int_member (probe, "max"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (probe, "cycles"), ==, 3);

  /* Usage errors and a link that does not exist. */
  g_assert_cmpint (run_ctl (NULL, "doctor", "--max", "33", NULL), ==, 2);
  g_assert_cmpint (run_ctl (NULL, "doctor", "a", "b", NULL), ==, 2);
  g_assert_cmpint (run_ctl (NULL, "doctor", "nosuchlink", NULL), ==, 6);
  stm32_test_wait_until (sim_slots_in_use (bench->sim) == 0, WAIT_MS);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  add_test ("/doctor/healthy", SPEC (NULL, "--reply", "echo"), test_healthy);
  add_test ("/doctor/leaky-firmware", SPEC (NULL, "--mode", "leak"), test_leaky_firmware);
  g_test_add_func ("/doctor/server-busy", test_server_busy);
  add_test ("/doctor/idle-timeout", SPEC (NULL, "--idle-timeout", "300"), test_idle_timeout);
  add_test ("/doctor/rejects-frames",
            SPEC ("BusyWindow=0\n", "--framing", "json", "--on-malformed", "close"),
            test_rejects_frames);
  add_test ("/doctor/blackhole",
            SPEC ("Heartbeat=ping\nHeartbeatInterval=100\nHeartbeatTimeout=100\n",
                  "--blackhole-after", "0"),
            test_blackhole);
  add_test ("/doctor/competing-client", SPEC (NULL, "--reply", "echo"), test_competing_client);
  g_test_add_func ("/doctor/competing-client-sandboxed", test_competing_client_sandboxed);
  add_test ("/doctor/probe-capacity", SPEC (NULL, "--slots", "3"), test_probe_capacity);
  add_test ("/doctor/probe-leaky", SPEC (NULL, "--slots", "4", "--mode", "leak"), test_probe_leaky);
  add_test ("/doctor/probe-caller-leaves", SPEC (NULL, "--slots", "0"), test_probe_caller_leaves);
  add_test ("/doctor/no-fd-leak", SPEC (NULL, "--slots", "3", "--mode", "leak"), test_no_fd_leak);
  add_test ("/doctor/invalid-args", SPEC ("Autoconnect=false\n", "--reply", "echo"),
            test_invalid_args);
  add_test ("/doctor/ctl", SPEC (NULL, "--mode", "leak", "--slots", "3"), test_ctl);
  return stm32_daemon_test_run ();
}
