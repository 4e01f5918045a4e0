/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "stm32ctl.h"

typedef struct
{
  gboolean hex;
  gboolean json;
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

/* An event for --json: its time and link (NULL: stm32d itself); the caller
 * adds the event's own fields. */
static Stm32CtlOutput *
event_new (Stm32ClientLink *link, const char *event)
{
  Stm32CtlOutput *output = stm32ctl_output_new (TRUE);

  stm32ctl_output_uint (output, "time", NULL, (guint64) g_get_real_time (), NULL);
  if (link != NULL)
    stm32ctl_output_string (output, "link", NULL, stm32_client_link_get_name (link));
  else
    stm32ctl_output_null (output, "link", NULL, NULL);
  stm32ctl_output_string (output, "event", NULL, event);
  return output;
}

/* One JSON object a line (JSON Lines): a reader parses each as it comes. */
static void
event_print (Stm32CtlOutput *output)
{
  g_autoptr (JsonNode) root = stm32ctl_output_to_json (output, FALSE);
  g_autofree char *text = json_to_string (root, FALSE);

  g_print ("%s\n", text);
  fflush (stdout);
  stm32ctl_output_free (output);
}

static void
on_received (Stm32ClientLink *link, GBytes *frame, Monitor *monitor)
{
  g_autofree char *text = NULL;
  Stm32CtlOutput *output;
  gsize len;
  const char *data;

  if (!monitor->json)
    {
      text = stm32ctl_format_frame (frame, monitor->hex);
      print_line (stm32_client_link_get_name (link), "frame", text);
      return;
    }
  /* "hex" is always exact; "text" only where the bytes are UTF-8. */
  data = g_bytes_get_data (frame, &len);
  text = stm32ctl_format_frame (frame, TRUE);
  output = event_new (link, "frame");
  stm32ctl_output_string (output, "hex", NULL, text);
  g_clear_pointer (&text, g_free);
  if (g_utf8_validate_len (data, len, NULL))
    {
      text = g_strndup (data, len);
      stm32ctl_output_string (output, "text", NULL, text);
    }
  else
    stm32ctl_output_null (output, "text", NULL, NULL);
  event_print (output);
}

static void
on_state (Stm32ClientLink *link, GParamSpec *pspec, Monitor *monitor)
{
  const char *error = stm32_client_link_get_last_error (link);
  g_autofree char *detail = NULL;
  Stm32CtlOutput *output;

  if (!monitor->json)
    {
      detail = g_str_equal (error, "none")
                   ? g_strdup (stm32_client_link_get_state (link))
                   : g_strdup_printf ("%s (%s: %s)", stm32_client_link_get_state (link), error,
                                      stm32_client_link_get_last_error_message (link));
      print_line (stm32_client_link_get_name (link), "state", detail);
      return;
    }
  output = event_new (link, "state");
  stm32ctl_output_string (output, "state", NULL, stm32_client_link_get_state (link));
  stm32ctl_output_string (output, "last_error", NULL, error);
  stm32ctl_output_string (output, "last_error_message", NULL,
                          stm32_client_link_get_last_error_message (link));
  event_print (output);
}

static gboolean
is_watched (Stm32ClientLink *link, Monitor *monitor)
{
  return monitor->only == NULL || g_str_equal (monitor->only, stm32_client_link_get_name (link));
}

static void
watch_link (Stm32ClientLink *link, Monitor *monitor)
{
  if (!is_watched (link, monitor))
    return;
  g_signal_connect (link, "received", G_CALLBACK (on_received), monitor);
  g_signal_connect (link, "notify::state", G_CALLBACK (on_state), monitor);
}

/* An event of a link's own or of stm32d's (@link NULL) with no other fields. */
static void
print_event (Monitor *monitor, Stm32ClientLink *link, const char *event, const char *detail)
{
  if (monitor->json)
    event_print (event_new (link, event));
  else
    print_line (link ? stm32_client_link_get_name (link) : "stm32d", event, detail);
}

static void
on_link_added (Stm32Client *client, Stm32ClientLink *link, Monitor *monitor)
{
  Stm32CtlOutput *output;

  if (!is_watched (link, monitor))
    return;
  if (!monitor->json)
    print_line (stm32_client_link_get_name (link), "added", stm32_client_link_get_state (link));
  else
    {
      output = event_new (link, "added");
      stm32ctl_output_string (output, "state", NULL, stm32_client_link_get_state (link));
      event_print (output);
    }
  watch_link (link, monitor);
}

static void
on_link_removed (Stm32Client *client, Stm32ClientLink *link, Monitor *monitor)
{
  g_signal_handlers_disconnect_by_data (link, monitor);
  if (is_watched (link, monitor))
    print_event (monitor, link, "removed", "");
}

static void
on_running (Stm32Client *client, GParamSpec *pspec, Monitor *monitor)
{
  print_event (monitor, NULL, stm32_client_is_running (client) ? "running" : "stopped", "");
}

int
stm32ctl_cmd_monitor (Stm32Ctl *ctl, int argc, char **argv)
{
  Monitor monitor = { 0 };
  const GOptionEntry entries[] = {
    { "hex", 'x', 0, G_OPTION_ARG_NONE, &monitor.hex, "Print frames as hex", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &monitor.json, "Print each event as a line of JSON", NULL },
    { NULL }
  };
  g_autoptr (GList) links = NULL;
  Stm32Client *client;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("monitor", "[LINK]",
                       "Print every frame the boards send on their own (not the replies to "
                       "transactions, which go to their callers) and every change of link "
                       "state, as they happen, until Ctrl-C. Without a link, every link.",
                       entries, &argc, &argv, &status) ||
      !stm32ctl_take_link_argument (ctl, "monitor", argc, argv, &status))
    return status;
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
      if (is_watched (l->data, &monitor))
        on_state (l->data, NULL, &monitor);
    }
  g_signal_connect (client, "link-added", G_CALLBACK (on_link_added), &monitor);
  g_signal_connect (client, "link-removed", G_CALLBACK (on_link_removed), &monitor);
  g_signal_connect (client, "notify::running", G_CALLBACK (on_running), &monitor);
  if (!stm32_client_is_running (client))
    print_event (&monitor, NULL, "stopped", "(waiting for it to start)");
  stm32ctl_run_until_interrupted ();

  g_signal_handlers_disconnect_by_data (client, &monitor);
  g_clear_pointer (&links, g_list_free);
  links = stm32_client_get_links (client);
  for (GList *l = links; l != NULL; l = l->next)
    g_signal_handlers_disconnect_by_data (l->data, &monitor);
  return STM32CTL_EXIT_OK;
}
