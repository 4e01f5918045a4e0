/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <unistd.h>

#include "stm32ctl.h"

static void
describe_link (Stm32CtlOutput *output, Stm32ClientLink *link)
{
  const char *state = stm32_client_link_get_state (link);
  guint64 since = stm32_client_link_get_connected_since (link);
  g_autofree char *endpoint = stm32ctl_link_endpoint (link);
  g_autofree char *state_text = stm32ctl_output_state (state);
  g_autofree char *since_text = since ? stm32ctl_output_since (since) : g_strdup ("-");
  g_autofree char *retry_text = g_strdup_printf ("%u ms", stm32_client_link_get_retry_in (link));
  g_autofree char *close_wait = g_strdup_printf ("%u ms", stm32_client_link_get_close_wait (link));
  g_autofree char *sent = NULL, *received = NULL, *sent_bytes = NULL, *received_bytes = NULL;

  sent_bytes = stm32ctl_output_bytes (stm32_client_link_get_bytes_sent (link));
  received_bytes = stm32ctl_output_bytes (stm32_client_link_get_bytes_received (link));
  sent = g_strdup_printf ("%" G_GUINT64_FORMAT " frames, %s",
                          stm32_client_link_get_frames_sent (link), sent_bytes);
  received = g_strdup_printf ("%" G_GUINT64_FORMAT " frames, %s",
                              stm32_client_link_get_frames_received (link), received_bytes);

  stm32ctl_output_record (output);
  stm32ctl_output_string (output, "name", "Link", stm32_client_link_get_name (link));
  stm32ctl_output_string_text (output, "state", "State", state, state_text);
  stm32ctl_output_string (output, "endpoint", "Board", endpoint);
  stm32ctl_output_string (output, "framing", "Framing", stm32_client_link_get_framing (link));
  stm32ctl_output_bool (output, "autoconnect", "Autoconnect",
                        stm32_client_link_get_autoconnect (link));
  stm32ctl_output_uint (output, "connected_since", "Since", since, since_text);
  stm32ctl_output_string (output, "local_address", "Local",
                          stm32_client_link_get_local_address (link));
  stm32ctl_output_string (output, "remote_address", "Remote",
                          stm32_client_link_get_remote_address (link));
  stm32ctl_output_uint (output, "retry_in_ms", "Retry in", stm32_client_link_get_retry_in (link),
                        g_str_equal (state, "waiting") ? retry_text : "-");
  stm32ctl_output_string (output, "last_error", "Last error",
                          stm32_client_link_get_last_error (link));
  stm32ctl_output_string (output, "last_error_message", "Error message",
                          stm32_client_link_get_last_error_message (link));
  stm32ctl_output_uint (output, "frames_sent", "Sent", stm32_client_link_get_frames_sent (link),
                        sent);
  stm32ctl_output_uint (output, "frames_received", "Received",
                        stm32_client_link_get_frames_received (link), received);
  stm32ctl_output_uint (output, "bytes_sent", NULL, stm32_client_link_get_bytes_sent (link), NULL);
  stm32ctl_output_uint (output, "bytes_received", NULL, stm32_client_link_get_bytes_received (link),
                        NULL);
  stm32ctl_output_uint (output, "connects", "Connects", stm32_client_link_get_connects (link),
                        NULL);
  stm32ctl_output_uint (output, "disconnects", "Disconnects",
                        stm32_client_link_get_disconnects (link), NULL);
  stm32ctl_output_uint (output, "connect_failures", "Failed attempts",
                        stm32_client_link_get_connect_failures (link), NULL);
  stm32ctl_output_uint (output, "late_replies", "Late replies",
                        stm32_client_link_get_late_replies (link), NULL);
  stm32ctl_output_string (output, "close_strategy", "Next close",
                          stm32_client_link_get_close_strategy (link));
  stm32ctl_output_string (output, "close_strategy_reason", "Because",
                          stm32_client_link_get_close_strategy_reason (link));
  stm32ctl_output_uint (output, "close_wait_ms", "Close wait",
                        stm32_client_link_get_close_wait (link), close_wait);
}

static void
print_status (Stm32ClientLink *link, gboolean json)
{
  g_autoptr (Stm32CtlOutput) output = stm32ctl_output_new (json);

  describe_link (output, link);
  stm32ctl_output_print (output, FALSE);
}

/* One line of the table of every link: the fields of describe_link() that
 * tell a healthy board from one that needs a look. */
static void
describe_row (Stm32CtlOutput *output, Stm32ClientLink *link)
{
  g_autofree char *endpoint = stm32ctl_link_endpoint (link);

  stm32ctl_output_record (output);
  stm32ctl_output_string (output, "name", "Name", stm32_client_link_get_name (link));
  stm32ctl_output_string (output, "state", "State", stm32_client_link_get_state (link));
  stm32ctl_output_string (output, "endpoint", "Board", endpoint);
  stm32ctl_output_uint (output, "connects", "Connects", stm32_client_link_get_connects (link),
                        NULL);
  stm32ctl_output_uint (output, "connect_failures", "Failed",
                        stm32_client_link_get_connect_failures (link), NULL);
  stm32ctl_output_uint (output, "frames_sent", "Sent", stm32_client_link_get_frames_sent (link),
                        NULL);
  stm32ctl_output_uint (output, "frames_received", "Received",
                        stm32_client_link_get_frames_received (link), NULL);
  stm32ctl_output_string (output, "last_error", "Last error",
                          stm32_client_link_get_last_error (link));
}

/* "3 links: 2 connected, 1 waiting": the line to read first among thousands. */
static void
print_summary (GList *links)
{
  /* "other" counts any state this stm32ctl does not know yet. */
  static const char *const states[] = { "connected", "connecting",   "closing",
                                        "waiting",   "disconnected", NULL };
  const guint n_states = G_N_ELEMENTS (states) - 1;
  g_autoptr (GString) text = g_string_new (NULL);
  guint counted = 0;

  g_string_printf (text, "%u links", g_list_length (links));
  for (guint s = 0; s <= n_states; s++)
    {
      guint count = 0;

      for (GList *l = links; l != NULL; l = l->next)
        {
          const char *state = stm32_client_link_get_state (l->data);

          count += s < n_states ? g_str_equal (state, states[s]) : !g_strv_contains (states, state);
        }
      if (count > 0)
        g_string_append_printf (text, "%s%u %s", counted++ ? ", " : ": ", count,
                                s < n_states ? states[s] : "other");
    }
  g_print ("%s\n\n", text->str);
}

/* Every link: with --json an array of the objects one link's status prints,
 * else a summary line and a table. */
static void
print_all (GList *links, gboolean json)
{
  g_autoptr (Stm32CtlOutput) output = stm32ctl_output_new (json);

  if (!json)
    print_summary (links);
  for (GList *l = links; l != NULL; l = l->next)
    if (json)
      describe_link (output, l->data);
    else
      describe_row (output, l->data);
  stm32ctl_output_print (output, TRUE);
}

typedef struct
{
  Stm32Client *client; /* every link, or NULL for @link alone */
  Stm32ClientLink *link;
  gboolean json;
  guint pending;
} Watch;

static void
watch_print (Watch *watch)
{
  g_autoptr (GList) links = NULL;

  if (watch->client == NULL)
    {
      print_status (watch->link, watch->json);
      return;
    }
  links = stm32_client_get_links (watch->client);
  print_all (links, watch->json);
}

static gboolean
on_redraw (gpointer user_data)
{
  Watch *watch = user_data;

  watch->pending = 0;
  /* On a terminal the status is redrawn in place; piped, each change follows the last. */
  if (!watch->json && isatty (STDOUT_FILENO))
    g_print ("\033[H\033[2J");
  else
    g_print ("\n");
  watch_print (watch);
  return G_SOURCE_REMOVE;
}

/* Changes often come in bursts (state, error and counters together): one redraw each. */
static void
on_changed (GObject *object, GParamSpec *pspec, Watch *watch)
{
  if (watch->pending == 0)
    watch->pending = g_timeout_add (50, on_redraw, watch);
}

static void
on_link_added (Stm32Client *client, Stm32ClientLink *link, Watch *watch)
{
  g_signal_connect (link, "notify", G_CALLBACK (on_changed), watch);
  on_changed (G_OBJECT (link), NULL, watch);
}

static void
on_link_removed (Stm32Client *client, Stm32ClientLink *link, Watch *watch)
{
  g_signal_handlers_disconnect_by_data (link, watch);
  on_changed (G_OBJECT (link), NULL, watch);
}

static void
watch_until_interrupted (Watch *watch, GList *links)
{
  for (GList *l = links; l != NULL; l = l->next)
    g_signal_connect (l->data, "notify", G_CALLBACK (on_changed), watch);
  if (watch->client != NULL)
    {
      g_signal_connect (watch->client, "link-added", G_CALLBACK (on_link_added), watch);
      g_signal_connect (watch->client, "link-removed", G_CALLBACK (on_link_removed), watch);
    }
  stm32ctl_run_until_interrupted ();
  if (watch->client != NULL)
    {
      g_autoptr (GList) now = stm32_client_get_links (watch->client);

      g_signal_handlers_disconnect_by_data (watch->client, watch);
      for (GList *l = now; l != NULL; l = l->next)
        g_signal_handlers_disconnect_by_data (l->data, watch);
    }
  else
    g_signal_handlers_disconnect_by_data (watch->link, watch);
  g_clear_handle_id (&watch->pending, g_source_remove);
}

int
stm32ctl_cmd_status (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE, watch_mode = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
                                   { "watch", 'w', 0, G_OPTION_ARG_NONE, &watch_mode,
                                     "Keep printing as it changes, until Ctrl-C", NULL },
                                   { NULL } };
  g_autoptr (GList) links = NULL;
  GError *error = NULL;
  Watch watch = { 0 };
  int status;

  if (!stm32ctl_parse ("status", "[LINK]",
                       "Show a link's state, endpoint, last error and counters; without a link "
                       "and with several, a summary and a table of them all.",
                       entries, &argc, &argv, &status) ||
      !stm32ctl_take_link_argument (ctl, "status", argc, argv, &status))
    return status;
  links = stm32ctl_links (ctl, &error);
  if (links == NULL)
    return stm32ctl_fail (error);
  watch.json = json;
  if (links->next == NULL)
    watch.link = links->data;
  else
    watch.client = ctl->client;
  watch_print (&watch);
  if (watch_mode)
    watch_until_interrupted (&watch, links);
  return STM32CTL_EXIT_OK;
}
