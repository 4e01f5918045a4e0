/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-util.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static gboolean
deadline_reached (gpointer user_data)
{
  gboolean *reached = user_data;

  *reached = TRUE;
  return G_SOURCE_REMOVE;
}

void
stm32_test_iterate (gint64 deadline_us)
{
  gint64 remaining_ms = (deadline_us - g_get_monotonic_time () + 999) / 1000;
  gboolean reached = FALSE;
  guint timer;

  if (remaining_ms <= 0)
    {
      g_main_context_iteration (NULL, FALSE);
      return;
    }
  /* The timer only bounds the wait; any other event ends the iteration first. */
  timer = g_timeout_add ((guint) remaining_ms, deadline_reached, &reached);
  g_main_context_iteration (NULL, TRUE);
  if (!reached)
    g_source_remove (timer);
}

static gboolean
count_process_fds (GPid pid, guint *n, GError **error)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", (int) pid);
  g_autoptr (GDir) dir = g_dir_open (path, 0, error);

  if (dir == NULL)
    return FALSE;
  *n = 0;
  while (g_dir_read_name (dir) != NULL)
    (*n)++;
  return TRUE;
}

guint
stm32_test_count_process_fds (GPid pid)
{
  g_autoptr (GError) error = NULL;
  guint n = 0;

  count_process_fds (pid, &n, &error);
  g_assert_no_error (error);
  return n;
}

guint
stm32_test_count_fds (void)
{
  /* The directory handle we read them through is one of them. */
  return stm32_test_count_process_fds (getpid ()) - 1;
}

void
stm32_test_name_appeared (GDBusConnection *connection, const char *name, const char *owner,
                          gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
}

static void
die_with_parent (gpointer user_data)
{
  /* Runs in the child between fork and exec: async-signal-safe calls only.
   * A parent that died before prctl() took effect left us reparented. */
  if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid () != GPOINTER_TO_INT (user_data))
    _exit (127);
}

GSubprocessLauncher *
stm32_test_launcher_new (GSubprocessFlags flags)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);

  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, GINT_TO_POINTER (getpid ()),
                                         NULL);
  return launcher;
}

char *
stm32_test_build_path (const char *relpath)
{
  const char *builddir = g_getenv ("G_TEST_BUILDDIR");

  g_assert_nonnull (builddir);
  /* G_TEST_BUILDDIR is <build>/tests; programs are named from the build root. */
  return g_build_filename (builddir, "..", relpath, NULL);
}

static gboolean
tick (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

guint
stm32_test_tick_start (void)
{
  return g_timeout_add (10, tick, NULL);
}

void
stm32_test_store_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

void
stm32_test_write_file (const char *path, const char *format, ...)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
}

/* Adds up a task's context switches from its status file; a thread that just
 * ended counts nothing. */
static guint64
task_ctxt_switches (const char *status_path)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  guint64 n = 0;

  if (!g_file_get_contents (status_path, &text, NULL, NULL))
    return 0;
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    if (g_str_has_prefix (*l, "voluntary_ctxt_switches:"))
      n += g_ascii_strtoull (*l + strlen ("voluntary_ctxt_switches:"), NULL, 10);
    else if (g_str_has_prefix (*l, "nonvoluntary_ctxt_switches:"))
      n += g_ascii_strtoull (*l + strlen ("nonvoluntary_ctxt_switches:"), NULL, 10);
  return n;
}

static gboolean
read_ctxt_switches (GPid pid, guint64 *n, GError **error)
{
  /* The process's own status counts its main thread only. */
  g_autofree char *task_dir = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr (GDir) tasks = g_dir_open (task_dir, 0, error);

  if (tasks == NULL)
    return FALSE;
  *n = 0;
  for (const char *tid; (tid = g_dir_read_name (tasks)) != NULL;)
    {
      g_autofree char *path = g_build_filename (task_dir, tid, "status", NULL);

      *n += task_ctxt_switches (path);
    }
  return TRUE;
}

/* /proc/PID/@file's text, or NULL with @error. */
static char *
read_proc_file (GPid pid, const char *file, GError **error)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/%s", (int) pid, file);
  char *text = NULL;

  return g_file_get_contents (path, &text, NULL, error) ? text : NULL;
}

static gboolean
read_rss_kib (GPid pid, double *rss_kib, GError **error)
{
  g_autofree char *text = read_proc_file (pid, "status", error);
  g_auto (GStrv) lines = NULL;

  if (text == NULL)
    return FALSE;
  *rss_kib = 0;
  lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    if (g_str_has_prefix (*l, "VmRSS:"))
      *rss_kib = g_ascii_strtod (*l + strlen ("VmRSS:"), NULL);
  return TRUE;
}

static gboolean
read_cpu_s (GPid pid, double *cpu_s, GError **error)
{
  g_autofree char *text = read_proc_file (pid, "stat", error);
  g_auto (GStrv) fields = NULL;
  const char *after_comm;

  if (text == NULL)
    return FALSE;
  /* utime and stime are fields 14 and 15, counted past the ")" that ends
   * comm (which may hold spaces). */
  after_comm = strrchr (text, ')');
  fields = g_strsplit (after_comm != NULL ? after_comm + 2 : text, " ", 16);
  *cpu_s = 0;
  if (g_strv_length (fields) >= 14)
    *cpu_s = (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) /
             sysconf (_SC_CLK_TCK);
  return TRUE;
}

gboolean
stm32_test_read_process_stat (GPid pid, Stm32ProcessStat *stat, GError **error)
{
  memset (stat, 0, sizeof *stat);
  return read_rss_kib (pid, &stat->rss_kib, error) &&
         read_ctxt_switches (pid, &stat->ctxt_switches, error) &&
         read_cpu_s (pid, &stat->cpu_s, error) && count_process_fds (pid, &stat->fds, error);
}

/* The state letter of each thread of @pid (/proc/PID/task/TID/stat, the
 * field after the ")" that ends comm), counted into @stopped ('T') and @threads.
 * A thread that ends while we look is not counted. */
static void
count_stopped_threads (GPid pid, guint *stopped, guint *threads)
{
  g_autofree char *task_dir = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr (GDir) tasks = g_dir_open (task_dir, 0, NULL);

  *stopped = *threads = 0;
  if (tasks == NULL)
    return;
  for (const char *tid; (tid = g_dir_read_name (tasks)) != NULL;)
    {
      g_autofree char *path = g_build_filename (task_dir, tid, "stat", NULL);
      g_autofree char *text = NULL;
      const char *after_comm;

      if (!g_file_get_contents (path, &text, NULL, NULL))
        continue;
      after_comm = strrchr (text, ')');
      if (after_comm == NULL || after_comm[1] != ' ' || after_comm[2] == '\0')
        continue;
      (*threads)++;
      if (after_comm[2] == 'T')
        (*stopped)++;
    }
}

static gboolean
all_threads_stopped (GPid pid)
{
  guint stopped, threads;

  count_stopped_threads (pid, &stopped, &threads);
  return threads > 0 && stopped == threads;
}

static gboolean
no_thread_stopped (GPid pid)
{
  guint stopped, threads;

  count_stopped_threads (pid, &stopped, &threads);
  return stopped == 0;
}

void
stm32_test_send_signal (GSubprocess *process, int signum, guint timeout_ms)
{
  const char *id = g_subprocess_get_identifier (process);
  GPid pid;

  g_assert_nonnull (id);
  pid = (GPid) g_ascii_strtoll (id, NULL, 10);
  g_subprocess_send_signal (process, signum);
  /* No event says a process stopped or went on: its threads' states are looked at. */
  if (signum == SIGSTOP)
    stm32_test_poll_until (all_threads_stopped (pid), timeout_ms);
  else if (signum == SIGCONT)
    stm32_test_poll_until (no_thread_stopped (pid), timeout_ms);
}
