/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

static char *
format_time (gint64 us)
{
  g_autoptr (GDateTime) when = NULL;

  if (us == 0)
    return g_strdup ("-");
  when = g_date_time_new_from_unix_local (us / G_USEC_PER_SEC);
  return g_date_time_format (when, "%m-%d %H:%M:%S");
}

static void
describe_attempt (Stm32CtlOutput *output, GVariant *attempt)
{
  gint64 started = 0, connected = 0, closed = 0;
  guint64 sent = 0, received = 0;
  const char *closed_by = "", *reason = "", *detector = "none", *error = "";
  const char *close = "none";
  gint64 fin_delay = -1;
  gboolean aborted = FALSE;
  g_autofree char *started_text = NULL, *lasted = NULL, *fin_text = NULL;

  g_variant_lookup (attempt, "started", "x", &started);
  g_variant_lookup (attempt, "connected", "x", &connected);
  g_variant_lookup (attempt, "closed", "x", &closed);
  g_variant_lookup (attempt, "bytes-sent", "t", &sent);
  g_variant_lookup (attempt, "bytes-received", "t", &received);
  g_variant_lookup (attempt, "closed-by", "&s", &closed_by);
  g_variant_lookup (attempt, "reason", "&s", &reason);
  g_variant_lookup (attempt, "detector", "&s", &detector);
  g_variant_lookup (attempt, "aborted", "b", &aborted);
  g_variant_lookup (attempt, "error", "&s", &error);
  g_variant_lookup (attempt, "close", "&s", &close);
  g_variant_lookup (attempt, "fin-delay", "x", &fin_delay);
  fin_text = fin_delay >= 0 ? g_strdup_printf ("%.1f ms", fin_delay / 1e3) : g_strdup ("-");
  started_text = format_time (started);
  lasted = connected ? g_strdup_printf ("%.3f s", (closed - connected) / 1e6) : g_strdup ("-");

  stm32ctl_output_record (output);
  stm32ctl_output_int (output, "started", "Started", started, started_text);
  stm32ctl_output_int (output, "connected", "Connected", connected, connected ? "yes" : "no");
  stm32ctl_output_int (output, "closed", "Lasted", closed, lasted);
  stm32ctl_output_string (output, "reason", "Reason", reason);
  stm32ctl_output_string (output, "detector", "Detected by", detector);
  stm32ctl_output_string (output, "closed_by", "Closed by", closed_by);
  stm32ctl_output_bool (output, "aborted", "RST", aborted);
  stm32ctl_output_string (output, "close", "Close", close);
  stm32ctl_output_int (output, "fin_delay_us", "FIN after", fin_delay, fin_text);
  stm32ctl_output_uint (output, "bytes_sent", "Sent", sent, NULL);
  stm32ctl_output_uint (output, "bytes_received", "Received", received, NULL);
  stm32ctl_output_string (output, "error", "Error", error);
}

int
stm32ctl_cmd_history (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
                                   { NULL } };
  g_autoptr (Stm32CtlOutput) output = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) history = NULL;
  Stm32ClientLink *link;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("history", NULL,
                       "Show the link's recent connection attempts, oldest first: how long each "
                       "lasted, why it ended, what noticed it, who closed it (RST: ended by our "
                       "reset).",
                       entries, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("history", "unexpected argument “%s”", argv[1]);
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  stm32_client_link_get_history (link, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  history = stm32_client_link_get_history_finish (link, result, &error);
  if (history == NULL)
    return stm32ctl_fail (error);
  output = stm32ctl_output_new (json);
  for (gsize i = 0; i < g_variant_n_children (history); i++)
    {
      g_autoptr (GVariant) attempt = g_variant_get_child_value (history, i);

      describe_attempt (output, attempt);
    }
  if (!json && g_variant_n_children (history) == 0)
    g_print ("No connection attempts yet.\n");
  else
    stm32ctl_output_print (output, TRUE);
  return STM32CTL_EXIT_OK;
}
