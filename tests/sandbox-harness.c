/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sandbox-harness.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "test-util.h"

#define NOBODY 65534

/* The children's setup runs between fork() and exec(): only
 * async-signal-safe calls, and a failure is told on stderr and in the exit
 * status. */
static void
child_fail (const char *what)
{
  const char *prefix = "sandbox: cannot ";

  (void) !write (STDERR_FILENO, prefix, strlen (prefix));
  (void) !write (STDERR_FILENO, what, strlen (what));
  (void) !write (STDERR_FILENO, "\n", 1);
  _exit (125);
}

static void
child_write (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  gboolean ok = fd >= 0 && write (fd, text, strlen (text)) == (ssize_t) strlen (text);

  if (fd >= 0)
    close (fd);
  if (!ok)
    child_fail (path);
}

/* Last: changing credentials clears the parent-death signal. A parent
 * that died before prctl() took effect left us reparented. */
static void
child_die_with_parent (gpointer parent)
{
  if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid () != GPOINTER_TO_INT (parent))
    _exit (127);
}

static void
confine_child (gpointer user_data)
{
  /* The mount namespace first, while we are root on the host: mounting a
   * proc instance needs privilege over the PID namespace. */
  if (unshare (CLONE_NEWNS) != 0)
    child_fail ("unshare(CLONE_NEWNS)");
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    child_fail ("make / private");
  if (mount ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
             "hidepid=invisible,subset=pid") != 0)
    child_fail ("mount /proc with hidepid=invisible,subset=pid");
  if (unshare (CLONE_NEWUSER) != 0)
    child_fail ("unshare(CLONE_NEWUSER)");
  /* Only root mapped, to itself: the bus still sees uid 0. */
  child_write ("/proc/self/setgroups", "deny");
  child_write ("/proc/self/uid_map", "0 0 1");
  child_write ("/proc/self/gid_map", "0 0 1");
  child_die_with_parent (user_data);
}

static void
nobody_child (gpointer user_data)
{
  if (setgroups (0, NULL) != 0 || setgid (NOBODY) != 0 || setuid (NOBODY) != 0)
    child_fail ("become nobody");
  child_die_with_parent (user_data);
}

void
stm32_sandbox_confine (GSubprocessLauncher *launcher)
{
  g_subprocess_launcher_set_child_setup (launcher, confine_child, GINT_TO_POINTER (getpid ()),
                                         NULL);
}

void
stm32_sandbox_as_nobody (GSubprocessLauncher *launcher)
{
  g_subprocess_launcher_set_child_setup (launcher, nobody_child, GINT_TO_POINTER (getpid ()), NULL);
}

char *
stm32_sandbox_unavailable (void)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;

  if (geteuid () != 0)
    return g_strdup ("confining stm32d like its unit (namespaces, a /proc mount) needs root");
  /* A trial run: a kernel or container may forbid user namespaces or proc mounts. */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  stm32_sandbox_confine (launcher);
  process = g_subprocess_launcher_spawn (launcher, &error, "true", NULL);
  if (process == NULL)
    return g_strdup_printf ("cannot start a confined process: %s", error->message);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, 10000);
  if (!g_subprocess_communicate_utf8_finish (process, result, NULL, &err, &error))
    return g_strdup_printf ("cannot start a confined process: %s", error->message);
  if (!g_subprocess_get_if_exited (process) || g_subprocess_get_exit_status (process) != 0)
    return g_strdup_printf ("this machine cannot confine a process like stm32d's unit: %s",
                            err ? g_strchomp (err) : "?");
  return NULL;
}
