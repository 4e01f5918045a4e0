/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Runs the thread-default main context until @deadline_us (monotonic) or one
 * event was dispatched, whichever comes first. Never sleeps past the deadline. */
void stm32_test_iterate (gint64 deadline_us);

/* Waits for a condition by running the main context, bounded in time; fails
 * the test with the condition's text if it is not met in @timeout_ms. */
#define stm32_test_wait_until(cond, timeout_ms)                                                    \
  G_STMT_START                                                                                     \
  {                                                                                                \
    gint64 _stm32_deadline = g_get_monotonic_time () + (gint64) (timeout_ms) *1000;                \
    while (!(cond) && g_get_monotonic_time () < _stm32_deadline)                                   \
      stm32_test_iterate (_stm32_deadline);                                                        \
    if (!(cond))                                                                                   \
      g_error ("%s:%d: timed out after %u ms waiting for: %s", __FILE__, __LINE__,                 \
               (guint) (timeout_ms), #cond);                                                       \
  }                                                                                                \
  G_STMT_END

/* For long runs whose length depends on the machine's load: fails only when
 * @progress (an integer expression) stood still for @stall_ms, so a loaded
 * machine slows the run without failing it; meson's timeout still bounds it. */
#define stm32_test_wait_progressing(cond, progress, stall_ms)                                      \
  G_STMT_START                                                                                     \
  {                                                                                                \
    guint64 _stm32_seen = (progress);                                                              \
    gint64 _stm32_stall = g_get_monotonic_time () + (gint64) (stall_ms) *1000;                     \
    while (!(cond))                                                                                \
      {                                                                                            \
        if (g_get_monotonic_time () >= _stm32_stall)                                               \
          g_error ("%s:%d: no progress in %u ms (%s = %" G_GUINT64_FORMAT ") waiting for: %s",     \
                   __FILE__, __LINE__, (guint) (stall_ms), #progress, _stm32_seen, #cond);         \
        stm32_test_iterate (_stm32_stall);                                                         \
        if ((guint64) (progress) != _stm32_seen)                                                   \
          {                                                                                        \
            _stm32_seen = (progress);                                                              \
            _stm32_stall = g_get_monotonic_time () + (gint64) (stall_ms) *1000;                    \
          }                                                                                        \
      }                                                                                            \
  }                                                                                                \
  G_STMT_END

/* For conditions no event announces (another process's fds, a release only
 * the daemon sees): a 10 ms timer keeps the main context turning while
 * stm32_test_wait_until checks, still bounded. */
guint stm32_test_tick_start (void);
#define stm32_test_poll_until(cond, timeout_ms)                                                    \
  G_STMT_START                                                                                     \
  {                                                                                                \
    guint _stm32_tick = stm32_test_tick_start ();                                                  \
    stm32_test_wait_until (cond, timeout_ms);                                                      \
    g_source_remove (_stm32_tick);                                                                 \
  }                                                                                                \
  G_STMT_END

/* A GAsyncReadyCallback that stores a reference to the result in the
 * GAsyncResult * that @user_data points to, for bounded waits on it. */
void stm32_test_store_result (GObject *source, GAsyncResult *result, gpointer user_data);

/* A GBusNameAppearedCallback that sets the gboolean @user_data points to. */
void stm32_test_name_appeared (GDBusConnection *connection, const char *name, const char *owner,
                               gpointer user_data);

/* Writes the formatted text to @path, failing the test if it cannot. */
void stm32_test_write_file (const char *path, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* Number of open file descriptors of process @pid (from /proc/PID/fd). */
guint stm32_test_count_process_fds (GPid pid);
/* Number of open file descriptors of this process, not counting the one
 * used to list them. */
guint stm32_test_count_fds (void);

/* What /proc says of a process: its memory, fds, context switches and CPU
 * time, every thread's counted (GDBus runs a worker thread beside the main one). */
typedef struct
{
  double rss_kib;        /* VmRSS */
  guint fds;             /* entries of /proc/PID/fd */
  guint64 ctxt_switches; /* voluntary + nonvoluntary */
  double cpu_s;          /* user + system, in clock ticks (10 ms) */
} Stm32ProcessStat;

gboolean stm32_test_read_process_stat (GPid pid, Stm32ProcessStat *stat, GError **error);

/* Sends @signum to @process; for SIGSTOP, returns once every thread of it is
 * stopped, and for SIGCONT once none is, failing after @timeout_ms.
 * g_subprocess_send_signal() only queues the kill() for GLib's worker thread,
 * and each thread of the target stops only when it next runs: a call made
 * right after it could still be answered. Other signals are only sent. */
void stm32_test_send_signal (GSubprocess *process, int signum, guint timeout_ms);

/* A launcher whose children get SIGKILL when the test process dies (even by
 * abort()): a child the test stopped (SIGSTOP) or failed to end never
 * outlives it. */
GSubprocessLauncher *stm32_test_launcher_new (GSubprocessFlags flags);

/* Path of a built program, from G_TEST_BUILDDIR-relative @relpath under the build root. */
char *stm32_test_build_path (const char *relpath);

G_END_DECLS
