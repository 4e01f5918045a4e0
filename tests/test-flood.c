/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A board that floods stm32d with frames faster than the bus takes them
 * (issue: 1,000-byte lines grew stm32d by 100 MB/s). The bus is stopped
 * (SIGSTOP on its daemon) for a while during the flood, the extreme of a bus
 * that falls behind: stm32d must stop reading from the board rather than
 * queue frames, stay within the memory bound of stm32d(8) above idle, and
 * afterwards deliver every frame, once, in order — with no one listening for
 * Received, and to a deliberately slow listener — and its watchdogs must
 * not take the board it holds back for dead. */

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-names.h"
#include "test-util.h"

#define WAIT_MS 10000
/* Generous: the flood crosses ASan's stm32d and a dbus-daemon on two shared cores. */
#define FLOOD_MS 120000
#define FRAME_SIZE 1000
/* How long the bus stays stopped: stm32d under ASan reads tens of MB in this
 * time when nothing holds it back. */
#define BUS_STOPPED_MS 3000
/* stm32d(8): with a flooding link, stm32d's RSS stays within 32 MiB above
 * idle; ASan's quarantine (limited to 8 MiB for the daemon here, below) and
 * redzones get 16 MiB more. */
#define RSS_BOUND_KIB ((32 + 16) * 1024)
/* The slow listener takes each frame this late: about a tenth of the board's pace. */
#define SLOW_LISTENER_US "300"

typedef struct
{
  guint64 bytes;
  gboolean listener;
  gboolean watchdogs; /* IdleTimeout and a heartbeat, both far shorter than BUS_STOPPED_MS */
} FloodCase;

static guint64
read_status_kib (GPid pid, const char *field)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *contents = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *key = g_strconcat ("\n", field, ":", NULL);
  const char *line;

  g_file_get_contents (path, &contents, NULL, &error);
  g_assert_no_error (error);
  line = strstr (contents, key);
  g_assert_nonnull (line);
  return g_ascii_strtoull (line + strlen (key), NULL, 10);
}

static guint
bus_daemon_pid (GDBusConnection *bus)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
      "GetConnectionUnixProcessID", g_variant_new ("(s)", "org.freedesktop.DBus"),
      G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, &error);
  guint pid;

  g_assert_no_error (error);
  g_variant_get (reply, "(u)", &pid);
  return pid;
}

static guint64
link_counter (GDBusConnection *bus, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
      bus, STM32_DBUS_NAME, STM32_DBUS_LINK_PATH_PREFIX "default",
      "org.freedesktop.DBus.Properties", "Get",
      g_variant_new ("(ss)", "org.stm32d.Link1", name), G_VARIANT_TYPE ("(v)"),
      G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, &error);
  g_autoptr (GVariant) value = NULL;

  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  return g_variant_get_uint64 (value);
}

/* The slow listener, started and subscribed. */
static GSubprocess *
start_listener (guint64 frames, GDataInputStream **output)
{
  g_autofree char *path = stm32_test_build_path ("tests/flood-listener");
  g_autofree char *expected = g_strdup_printf ("%" G_GUINT64_FORMAT, frames);
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autofree char *line = NULL;
  GSubprocess *listener = g_subprocess_launcher_spawn (
      launcher, &error, path, STM32_DBUS_LINK_PATH_PREFIX "default", expected,
      SLOW_LISTENER_US, NULL);

  g_assert_no_error (error);
  *output = g_data_input_stream_new (g_subprocess_get_stdout_pipe (listener));
  g_data_input_stream_read_line_async (*output, G_PRIORITY_DEFAULT, NULL, stm32_test_store_result,
                                       &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  line = g_data_input_stream_read_line_finish (*output, result, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "ready");
  return listener;
}

/* What the listener got: every frame, each the next one. */
static void
check_listener (GSubprocess *listener, GDataInputStream *output, guint64 frames)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *expected = g_strdup_printf ("%" G_GUINT64_FORMAT " 0", frames);

  g_data_input_stream_read_line_async (output, G_PRIORITY_DEFAULT, NULL, stm32_test_store_result,
                                       &result);
  stm32_test_wait_until (result != NULL, FLOOD_MS);
  line = g_data_input_stream_read_line_finish (output, result, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, expected);
  g_subprocess_wait_check (listener, NULL, &error);
  g_assert_no_error (error);
}

/* While the bus is stopped, the board's flood must stall: stm32d stops
 * reading instead of queueing frames it cannot hand on. The bus runs again
 * before anything is asserted, so a failure leaves no stopped process. */
static void
stop_bus_during_flood (Stm32Sim *sim, const char *flood_command, GPid daemon_pid,
                       guint64 idle_kib)
{
  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  guint bus_pid = bus_daemon_pid (bus);
  gint64 until;
  guint tick;
  guint64 rss_kib = 0;
  gboolean got_through = FALSE;

  g_assert_cmpint (kill ((pid_t) bus_pid, SIGSTOP), ==, 0);
  stm32_sim_command (sim, flood_command);
  until = g_get_monotonic_time () + (gint64) BUS_STOPPED_MS * 1000;
  tick = stm32_test_tick_start ();
  while (g_get_monotonic_time () < until && rss_kib <= idle_kib + RSS_BOUND_KIB && !got_through)
    {
      rss_kib = MAX (rss_kib, read_status_kib (daemon_pid, "VmRSS"));
      got_through = stm32_sim_count_events (sim, "flood-done") > 0;
      stm32_test_iterate (until);
    }
  g_source_remove (tick);
  g_assert_cmpint (kill ((pid_t) bus_pid, SIGCONT), ==, 0);
  if (rss_kib > idle_kib + RSS_BOUND_KIB || got_through)
    g_error ("while the bus was stopped stm32d grew to %" G_GUINT64_FORMAT
             " KiB from %" G_GUINT64_FORMAT " KiB idle%s",
             rss_kib, idle_kib,
             got_through ? " and the flood ended (flood-done)"
                         : ": it queues what the bus cannot take");
}

static void
test_flood (gconstpointer data)
{
  const FloodCase *flood = data;
  guint64 frames = (flood->bytes + FRAME_SIZE - 1) / FRAME_SIZE;
  Stm32Sim *sim = stm32_sim_start ("--quiet", "--slots", "0", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  g_autofree char *stm32d = stm32_test_build_path ("daemon/stm32d");
  g_autofree char *config = NULL;
  const char *argv[] = { stm32d, "--session", "--host", "127.0.0.1", "--port", port, NULL };
  g_autofree char *command = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_autoptr (GSubprocess) listener = NULL;
  g_autoptr (GDataInputStream) listener_output = NULL;
  g_autoptr (JsonObject) done = NULL;
  Stm32Daemon *daemon;
  GPid pid;
  guint64 idle_kib, peak_kib;

  g_assert_no_error (error);
  if (flood->watchdogs)
    {
      int fd = g_file_open_tmp ("stm32d-flood-XXXXXX.conf", &config, &error);

      g_assert_no_error (error);
      close (fd);
      stm32_test_write_file (config,
                             "[Link default]\nHost=127.0.0.1\nPort=%s\nIdleTimeout=500\n"
                             "Heartbeat=ping\nHeartbeatInterval=200\nHeartbeatTimeout=500\n",
                             port);
      argv[2] = "--config";
      argv[3] = config;
      argv[4] = NULL;
    }
  /* No harness proxies: they would listen to Received themselves. */
  daemon = stm32_daemon_spawn (argv, G_SUBPROCESS_FLAGS_NONE);
  pid = stm32_daemon_get_pid (daemon);
  stm32_sim_expect (sim, "accepted", WAIT_MS);
  if (flood->listener)
    listener = start_listener (frames, &listener_output);
  idle_kib = read_status_kib (pid, "VmRSS");
  command = g_strdup_printf ("flood %" G_GUINT64_FORMAT " %u", flood->bytes, FRAME_SIZE);
  stop_bus_during_flood (sim, command, pid, idle_kib);

  done = stm32_sim_wait_event (sim, "flood-done", FLOOD_MS);
  g_assert_cmpint (json_object_get_int_member (done, "frames"), ==, (gint64) frames);
  g_assert_true (json_object_get_boolean_member (done, "complete"));
  /* Counted as received by stm32d: none lost between the board and the bus
   * (and the board's answers to heartbeats besides). */
  if (flood->watchdogs)
    stm32_test_poll_until (link_counter (bus, "FramesReceived") >= frames, FLOOD_MS);
  else
    stm32_test_poll_until (link_counter (bus, "FramesReceived") == frames, FLOOD_MS);
  /* Held back, the board was never taken for dead: one connection throughout. */
  g_assert_cmpuint (link_counter (bus, "Connects"), ==, 1);
  if (flood->listener)
    check_listener (listener, listener_output, frames);
  peak_kib = read_status_kib (pid, "VmHWM");
  g_test_message ("stm32d: %" G_GUINT64_FORMAT " KiB idle, peak %" G_GUINT64_FORMAT
                  " KiB (%" G_GUINT64_FORMAT " KiB above idle)",
                  idle_kib, peak_kib, peak_kib - idle_kib);
  g_assert_cmpuint (peak_kib, <=, idle_kib + RSS_BOUND_KIB);
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
  if (config != NULL)
    g_unlink (config);
}

int
main (int argc, char **argv)
{
  static const FloodCase no_listener = { 64 * 1000 * 1000, FALSE, FALSE };
  static const FloodCase slow_listener = { 32 * 1000 * 1000, TRUE, FALSE };
  static const FloodCase watchdogs = { 16 * 1000 * 1000, FALSE, TRUE };
  g_autofree char *asan = g_strdup_printf ("%s:quarantine_size_mb=8", g_getenv ("ASAN_OPTIONS") != NULL ? g_getenv ("ASAN_OPTIONS") : "");

  /* ASan keeps 256 MiB of freed memory by default: that, not stm32d, would
   * be measured. The daemon inherits this. */
  g_setenv ("ASAN_OPTIONS", asan, TRUE);
  stm32_daemon_test_init (&argc, &argv);
  g_test_add_data_func ("/flood/no-listener", &no_listener, test_flood);
  g_test_add_data_func ("/flood/slow-listener", &slow_listener, test_flood);
  g_test_add_data_func ("/flood/watchdogs-held-back", &watchdogs, test_flood);
  return stm32_daemon_test_run ();
}
