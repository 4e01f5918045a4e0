/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "stm32ctl.h"

typedef struct
{
  gboolean hex;
  const char *only; /* link name, or NULL for every link */
} Monitor;

static void
print_line (const char *link, const char *what, const char *detail)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%H:%M:%S.%f");

  /* Microseconds are noise; milliseconds order a burst of frames. */
  stamp[12] = '\0';
  g_print ("%s %s %s %s\n", stamp, link, what, detail);
  /* A pipe reader (a script, a test) sees each event as it happens. */
  fflush (stdout);
}

static void
on_received (Stm32ClientLink *link, GBytes *frame, Monitor *monitor)
{
  g_autofree char *text = stm32ctl_format_frame (frame, monitor->hex);

  print_line (stm32_client_link_get_name (link), "frame", text);
}

static void
on_state (Stm32ClientLink *link, GParamSpec *pspec, Monitor *monitor)
{
  const char *error = stm32_client_link_get_last_error (link);
  g_autofree char *detail =
      g_str_equal (error, "none")
          ? g_strdup (stm32_client_link_get_state (link))
          : g_strdup_printf ("%s (%s: %s)", stm32_client_link_get_state (link), error,
                             stm32_client_link_get_last_error_message (link));

  print_line (stm32_client_link_get_name (link), "state", detail);
}

static void
watch_link (Stm32ClientLink *link, Monitor *monitor)
{
  if (monitor->only != NULL && !g_str_equal (monitor->only, stm32_client_link_get_name (link)))
    return;
  g_signal_connect (link, "received", G_CALLBACK (on_received), monitor);
  g_signal_connect (link, "notify::state", G_CALLBACK (on_state), monitor);
}

static void
on_link_added (Stm32Client *client, Stm32ClientLink *link, Monitor *monitor)
{
  print_line (stm32_client_link_get_name (link), "added", stm32_client_link_get_state (link));
  watch_link (link, monitor);
}

static void
on_link_removed (Stm32Client *client, Stm32ClientLink *link, Monitor *monitor)
{
  g_signal_handlers_disconnect_by_data (link, monitor);
  print_line (stm32_client_link_get_name (link), "removed", "");
}

static void
on_running (Stm32Client *client, GParamSpec *pspec, Monitor *monitor)
{
  print_line ("stm32d", stm32_client_is_running (client) ? "running" : "stopped", "");
}

int
stm32ctl_cmd_monitor (Stm32Ctl *ctl, int argc, char **argv)
{
  Monitor monitor = { 0 };
  const GOptionEntry entries[] = {
    { "hex", 'x', 0, G_OPTION_ARG_NONE, &monitor.hex, "Print frames as hex", NULL }, { NULL }
  };
  g_autoptr (GList) links = NULL;
  Stm32Client *client;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("monitor", NULL,
                       "Print every frame the boards send on their own (not the replies to "
                       "transactions, which go to their callers) and every change of link "
                       "state, as they happen, until Ctrl-C. Without -l, every link.",
                       entries, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("monitor", "unexpected argument “%s”", argv[1]);
  client = stm32ctl_client (ctl, &error);
  if (client == NULL)
    return stm32ctl_fail (error);
  if (ctl->link_name != NULL && stm32_client_find_link (client, ctl->link_name, &error) == NULL)
    return stm32ctl_fail (error);
  monitor.only = ctl->link_name;

  /* Listening first, then where things stand: nothing can fall in between. */
  links = stm32_client_get_links (client);
  for (GList *l = links; l != NULL; l = l->next)
    {
      watch_link (l->data, &monitor);
      if (monitor.only == NULL || g_str_equal (monitor.only, stm32_client_link_get_name (l->data)))
        on_state (l->data, NULL, &monitor);
    }
  g_signal_connect (client, "link-added", G_CALLBACK (on_link_added), &monitor);
  g_signal_connect (client, "link-removed", G_CALLBACK (on_link_removed), &monitor);
  g_signal_connect (client, "notify::running", G_CALLBACK (on_running), &monitor);
  if (!stm32_client_is_running (client))
    print_line ("stm32d", "stopped", "(waiting for it to start)");
  stm32ctl_run_until_interrupted ();

  g_signal_handlers_disconnect_by_data (client, &monitor);
  g_clear_pointer (&links, g_list_free);
  links = stm32_client_get_links (client);
  for (GList *l = links; l != NULL; l = l->next)
    g_signal_handlers_disconnect_by_data (l->data, &monitor);
  return STM32CTL_EXIT_OK;
}
