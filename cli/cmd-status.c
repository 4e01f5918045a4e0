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

typedef struct
{
  Stm32ClientLink *link;
  gboolean json;
  guint pending;
} Watch;

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
  print_status (watch->link, watch->json);
  return G_SOURCE_REMOVE;
}

/* Changes often come in bursts (state, error and counters together): one redraw each. */
static void
on_changed (Stm32ClientLink *link, GParamSpec *pspec, Watch *watch)
{
  if (watch->pending == 0)
    watch->pending = g_timeout_add (50, on_redraw, watch);
}

int
stm32ctl_cmd_status (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE, watch_mode = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
                                   { "watch", 'w', 0, G_OPTION_ARG_NONE, &watch_mode,
                                     "Keep printing as it changes, until Ctrl-C", NULL },
                                   { NULL } };
  Stm32ClientLink *link;
  GError *error = NULL;
  Watch watch = { 0 };
  int status;

  if (!stm32ctl_parse ("status", NULL, "Show a link's state, endpoint, last error and counters.",
                       entries, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("status", "unexpected argument “%s”; use -l NAME to choose a link",
                           argv[1]);
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  print_status (link, json);
  if (!watch_mode)
    return STM32CTL_EXIT_OK;

  watch.link = link;
  watch.json = json;
  g_signal_connect (link, "notify", G_CALLBACK (on_changed), &watch);
  stm32ctl_run_until_interrupted ();
  g_signal_handlers_disconnect_by_data (link, &watch);
  g_clear_handle_id (&watch.pending, g_source_remove);
  return STM32CTL_EXIT_OK;
}
