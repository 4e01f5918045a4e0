/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The flood section (issue 18): a board streaming 1,000-byte lines as fast
 * as TCP takes them. stm32d's peak RSS, and how far above idle it went, with
 * no Received listener on the bus, a slow one and a fast one (each run with
 * its own board and stm32d), beside a direct client reading the same flood
 * in a process of its own (stm32-bench-flood-reader); and how long the flood
 * took to drain either way. stm32d(8) bounds the growth at 32 MiB above
 * idle: the bound is printed beside the figure, not asserted.
 *
 * The bench reaches stm32d here through a private connection that listens to
 * PropertiesChanged only: libstm32client's object manager receives every
 * signal stm32d sends, Received too, and would be a listener itself. */
#include <math.h>
#include <string.h>

#include "bench.h"
#include "stm32-names.h"
#include "test-util.h"

#define FLOOD_FRAME_SIZE 1000
/* stm32d(8): with a flooding link, stm32d stays within this above idle. */
#define FLOOD_BOUND_KIB (32 * 1024)
/* The slow listener takes each frame this late (flood-listener's argument). */
#define FLOOD_SLOW_US "100"

typedef struct
{
  const char *name;
  const char *listener_us; /* NULL: nobody listens to Received */
} FloodCase;

/* What one run measured; times from the flood command on. */
typedef struct
{
  guint64 idle_kib;  /* the reader (stm32d or the direct client) before the flood */
  guint64 peak_kib;  /* its VmHWM, reset at idle for stm32d */
  double seconds;    /* until the client read the last frame (no listener: stm32d) */
  double stm32d_s;   /* until stm32d counted the last frame */
  guint64 bus_kib;   /* dbus-daemon's peak above its RSS at the start */
} FloodRun;

static gboolean
status_kib (GPid pid, const char *field, guint64 *kib, GError **error)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *contents = NULL;
  g_autofree char *key = g_strconcat ("\n", field, ":", NULL);
  const char *line;

  if (!g_file_get_contents (path, &contents, NULL, error))
    return FALSE;
  line = strstr (contents, key);
  if (line == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s has no %s", path, field);
      return FALSE;
    }
  *kib = g_ascii_strtoull (line + strlen (key), NULL, 10);
  return TRUE;
}

/* Sets the process's VmHWM to its VmRSS (proc(5), clear_refs "5"): its peak
 * from now on, whatever it used before. */
static gboolean
reset_peak (GPid pid, GError **error)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/clear_refs", (int) pid);

  return g_file_set_contents_full (path, "5", 1, G_FILE_SET_CONTENTS_NONE, 0, error);
}

typedef struct
{
  GCancellable *cancellable;
  char *line;
  GError *error;
  gboolean done;
  gint64 at_ns;
} LineWait;

static void
on_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  LineWait *w = user_data;

  w->at_ns = bench_now_ns ();
  w->line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL,
                                                  &w->error);
  if (w->line == NULL && w->error == NULL)
    g_set_error (&w->error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "it printed nothing");
  w->done = TRUE;
}

static void
line_wait_start (LineWait *w, GDataInputStream *out)
{
  memset (w, 0, sizeof *w);
  w->cancellable = g_cancellable_new ();
  g_data_input_stream_read_line_async (out, G_PRIORITY_DEFAULT, w->cancellable, on_line, w);
}

/* Waits at most @timeout_ms more for the line; the read is over when this returns. */
static gboolean
line_wait_finish (LineWait *w, const char *who, guint timeout_ms, GError **error)
{
  if (!bench_wait_until (&w->done, timeout_ms))
    {
      g_cancellable_cancel (w->cancellable);
      bench_wait_until (&w->done, BENCH_WAIT_MS);
      g_clear_error (&w->error);
      g_set_error (&w->error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "no answer in %u ms",
                   timeout_ms);
    }
  g_clear_object (&w->cancellable);
  if (w->error != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&w->error), "%s: ", who);
      return FALSE;
    }
  return TRUE;
}

static GSubprocess *
spawn_piped (GDataInputStream **out, GError **error, const char *const *argv)
{
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  GSubprocess *process = g_subprocess_launcher_spawnv (launcher, argv, error);

  if (process != NULL)
    *out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  return process;
}

/* Its line's second word as a number ("ready 1234"). */
static guint64
line_number (const char *line)
{
  const char *space = strchr (line, ' ');

  return space != NULL ? g_ascii_strtoull (space + 1, NULL, 10) : 0;
}

static void
flood_start (Stm32Sim *sim, guint64 bytes, gint64 *t0)
{
  g_autofree char *command = g_strdup_printf ("flood %" G_GUINT64_FORMAT " %u", bytes,
                                              FLOOD_FRAME_SIZE);

  *t0 = bench_now_ns ();
  stm32_sim_command (sim, command);
}

/* The baseline: the direct client connects, the board floods it, it reads
 * every line. */
static gboolean
flood_direct (const BenchConfig *config, guint64 bytes, guint64 frames, guint timeout_ms,
              FloodRun *run, GError **error)
{
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, "--slots", "0", NULL);
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (sim));
  g_autofree char *count = g_strdup_printf ("%" G_GUINT64_FORMAT, frames);
  const char *argv[] = { config->flood_reader, port, count, NULL };
  g_autoptr (GDataInputStream) out = NULL;
  g_autoptr (GSubprocess) reader = spawn_piped (&out, error, argv);
  LineWait w;
  gint64 t0;
  gboolean ok;

  if (reader == NULL)
    return FALSE;
  line_wait_start (&w, out);
  ok = line_wait_finish (&w, "stm32-bench-flood-reader", BENCH_WAIT_MS, error);
  if (ok)
    run->idle_kib = line_number (w.line);
  g_free (w.line);
  if (!ok)
    return FALSE;
  stm32_sim_expect (sim, "accepted", BENCH_WAIT_MS);
  line_wait_start (&w, out);
  flood_start (sim, bytes, &t0);
  ok = line_wait_finish (&w, "stm32-bench-flood-reader", timeout_ms, error);
  if (ok)
    {
      run->peak_kib = line_number (w.line);
      run->seconds = run->stm32d_s = (w.at_ns - t0) / 1e9;
    }
  g_free (w.line);
  return ok && g_subprocess_wait_check (reader, NULL, error);
}

typedef struct
{
  guint64 want;
  gboolean done;
  gint64 at_ns;
} CounterWait;

static void
on_properties_changed (GDBusConnection *connection, const char *sender, const char *path,
                       const char *iface, const char *signal, GVariant *parameters,
                       gpointer user_data)
{
  CounterWait *w = user_data;
  g_autoptr (GVariant) changed = g_variant_get_child_value (parameters, 1);
  guint64 frames;

  if (!w->done && g_variant_lookup (changed, "FramesReceived", "t", &frames) &&
      frames >= w->want)
    {
      w->done = TRUE;
      w->at_ns = bench_now_ns ();
    }
}

static guint
bus_daemon_pid (GDBusConnection *bus, GError **error)
{
  g_autoptr (GVariant) reply = g_dbus_connection_call_sync (
      bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
      "GetConnectionUnixProcessID", g_variant_new ("(s)", "org.freedesktop.DBus"),
      G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, BENCH_WAIT_MS, NULL, error);
  guint pid = 0;

  if (reply != NULL)
    g_variant_get (reply, "(u)", &pid);
  return pid;
}

/* The flood through stm32d, @flood->listener_us deciding who listens. */
static gboolean
flood_stm32d (const BenchConfig *config, const FloodCase *flood, GDBusConnection *bus,
              guint64 bytes, guint64 frames, guint timeout_ms, FloodRun *run, GError **error)
{
  g_autoptr (Stm32Sim) sim = bench_sim_start (config, "--slots", "0", NULL);
  g_autoptr (BenchDaemon) d = bench_daemon_spawn (config, stm32_sim_get_port (sim), NULL, error);
  g_autofree char *count = g_strdup_printf ("%" G_GUINT64_FORMAT, frames);
  const char *argv[] = { config->flood_listener, STM32_DBUS_LINK_PATH_PREFIX BENCH_LINK_NAME,
                         count, flood->listener_us, NULL };
  g_autoptr (GDataInputStream) out = NULL;
  g_autoptr (GSubprocess) listener = NULL;
  g_autofree char *expected = g_strdup_printf ("%" G_GUINT64_FORMAT " 0", frames);
  CounterWait counter = { frames, FALSE, 0 };
  LineWait w = { 0 };
  guint subscription;
  guint64 bus_idle_kib, bus_peak_kib;
  GPid pid, bus_pid;
  gint64 t0;
  gboolean ok;

  if (d == NULL || (bus_pid = bus_daemon_pid (bus, error)) == 0)
    return FALSE;
  pid = bench_daemon_get_pid (d);
  stm32_sim_expect (sim, "accepted", BENCH_WAIT_MS);
  if (flood->listener_us != NULL)
    {
      if ((listener = spawn_piped (&out, error, argv)) == NULL)
        return FALSE;
      line_wait_start (&w, out);
      ok = line_wait_finish (&w, "flood-listener", BENCH_WAIT_MS, error);
      g_free (w.line);
      if (!ok)
        return FALSE;
    }
  subscription = g_dbus_connection_signal_subscribe (
      bus, STM32_DBUS_NAME, "org.freedesktop.DBus.Properties", "PropertiesChanged",
      STM32_DBUS_LINK_PATH_PREFIX BENCH_LINK_NAME, STM32_DBUS_LINK_INTERFACE,
      G_DBUS_SIGNAL_FLAGS_NONE, on_properties_changed, &counter, NULL);
  if (!status_kib (pid, "VmRSS", &run->idle_kib, error) || !reset_peak (pid, error) ||
      !status_kib (bus_pid, "VmRSS", &bus_idle_kib, error) || !reset_peak (bus_pid, error))
    {
      g_dbus_connection_signal_unsubscribe (bus, subscription);
      return FALSE;
    }
  if (listener != NULL)
    line_wait_start (&w, out);
  flood_start (sim, bytes, &t0);
  ok = bench_wait_until (&counter.done, timeout_ms);
  g_dbus_connection_signal_unsubscribe (bus, subscription);
  if (!ok)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                 "stm32d did not count %" G_GUINT64_FORMAT " frames in %u ms", frames,
                 timeout_ms);
  run->stm32d_s = run->seconds = (counter.at_ns - t0) / 1e9;
  if (listener != NULL)
    {
      /* Waited for even after a failure: the read points at @w. */
      ok = line_wait_finish (&w, "flood-listener", ok ? timeout_ms : 0, ok ? error : NULL) && ok;
      if (ok && g_strcmp0 (w.line, expected) != 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "flood-listener: got “%s” (frames, out of order), not “%s”", w.line,
                       expected);
          ok = FALSE;
        }
      run->seconds = (w.at_ns - t0) / 1e9;
      g_free (w.line);
    }
  if (!ok || !status_kib (pid, "VmHWM", &run->peak_kib, error) ||
      !status_kib (bus_pid, "VmHWM", &bus_peak_kib, error))
    return FALSE;
  run->bus_kib = bus_peak_kib - MIN (bus_peak_kib, bus_idle_kib);
  return listener == NULL || g_subprocess_wait_check (listener, NULL, error);
}

static void
report_case (const FloodCase *flood, const FloodRun *run, const FloodRun *direct, guint64 bytes)
{
  guint64 above = run->peak_kib - MIN (run->peak_kib, run->idle_kib);
  guint64 direct_above = direct->peak_kib - MIN (direct->peak_kib, direct->idle_kib);
  g_autofree char *peak = g_strdup_printf ("%s: stm32d peak RSS", flood->name);
  g_autofree char *peak_note = g_strdup_printf (
      "idle %" G_GUINT64_FORMAT " KiB; direct: the client's peak", run->idle_kib);
  g_autofree char *rise = g_strdup_printf ("%s: stm32d RSS above idle", flood->name);
  g_autofree char *rise_note = g_strdup_printf (
      "bound %u KiB (stm32d(8)): %.0f %% of it; direct: the client's", FLOOD_BOUND_KIB,
      100.0 * above / FLOOD_BOUND_KIB);
  g_autofree char *drain = g_strdup_printf ("%s: flood drained", flood->name);
  g_autofree char *drain_note =
      flood->listener_us == NULL
          ? g_strdup_printf ("stm32d counted every frame in %.2f s; direct: read in %.2f s",
                             run->stm32d_s, direct->seconds)
          : g_strdup_printf ("the listener had every frame in %.2f s (stm32d in %.2f s); "
                             "direct: read in %.2f s",
                             run->seconds, run->stm32d_s, direct->seconds);
  g_autofree char *bus = g_strdup_printf ("%s: dbus-daemon RSS growth", flood->name);

  bench_report ("flood", peak, run->peak_kib, direct->peak_kib, "KiB", peak_note);
  bench_report ("flood", rise, above, direct_above, "KiB", rise_note);
  bench_report ("flood", drain, bytes / run->seconds / 1e6, bytes / direct->seconds / 1e6, "MB/s",
                drain_note);
  bench_report ("flood", bus, run->bus_kib, NAN, "KiB",
                "its peak over its RSS at the start: Received it holds for listeners");
}

gboolean
bench_flood (const BenchConfig *config, GError **error)
{
  /* The slow listener last: dbus-daemon holds what it has not taken, and
   * keeps the memory once it is freed, which would hide the next case's
   * growth (one bus serves the whole run). */
  static const FloodCase cases[] = {
    { "no listener", NULL },
    { "fast listener", "0" },
    { "slow listener", FLOOD_SLOW_US },
  };
  guint64 bytes = (config->smoke ? 2 : 400) * G_GUINT64_CONSTANT (1000000);
  guint64 frames = (bytes + FLOOD_FRAME_SIZE - 1) / FLOOD_FRAME_SIZE;
  guint timeout_ms = config->smoke ? 30000 : 600000;
  g_autofree char *address = NULL;
  g_autoptr (GDBusConnection) bus = NULL;
  FloodRun direct = { 0 };

  if (config->flood_reader == NULL || config->flood_listener == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "needs --flood-reader and --flood-listener (bench/run.sh passes them)");
      return FALSE;
    }
  address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (address == NULL)
    return FALSE;
  bus = g_dbus_connection_new_for_address_sync (
      address,
      G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
      NULL, NULL, error);
  if (bus == NULL || !flood_direct (config, bytes, frames, timeout_ms, &direct, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      FloodRun run = { 0 };

      if (!flood_stm32d (config, &cases[i], bus, bytes, frames, timeout_ms, &run, error))
        {
          g_prefix_error (error, "%s: ", cases[i].name);
          return FALSE;
        }
      report_case (&cases[i], &run, &direct, bytes);
    }
  return TRUE;
}
