/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-util.h"

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

guint
stm32_test_count_process_fds (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", (int) pid);
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

guint
stm32_test_count_fds (void)
{
  /* The directory handle we read them through is one of them. */
  return stm32_test_count_process_fds (getpid ()) - 1;
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
