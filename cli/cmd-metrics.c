/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-round-trip.h"
#include "stm32ctl-openmetrics.h"
#include "stm32ctl.h"

/* Link1.State's values (dbus/org.stm32d.Link1.xml). */
static const char *const states[] = { "disconnected", "connecting", "connected", "closing",
                                      "waiting" };

typedef guint64 (*CounterFunc) (Stm32ClientLink *link);

/* The link's plain counters; "_total" is part of the name (stm32ctl-openmetrics.h). */
static const struct
{
  const char *name;
  CounterFunc get;
  const char *help;
} counters[] = {
  { "stm32d_link_connects_total", stm32_client_link_get_connects, "Connections established." },
  { "stm32d_link_connect_failures_total", stm32_client_link_get_connect_failures,
    "Connection attempts that never got connected." },
  { "stm32d_link_disconnects_total", stm32_client_link_get_disconnects,
    "Established connections that ended, for any reason." },
  { "stm32d_link_sent_bytes_total", stm32_client_link_get_bytes_sent,
    "Bytes the board's TCP stack acknowledged, framing included." },
  { "stm32d_link_received_bytes_total", stm32_client_link_get_bytes_received,
    "Bytes read from the board." },
  { "stm32d_link_sent_frames_total", stm32_client_link_get_frames_sent,
    "Frames the board's TCP stack acknowledged, heartbeats included." },
  { "stm32d_link_received_frames_total", stm32_client_link_get_frames_received,
    "Frames received from the board." },
  { "stm32d_link_resets_sent_total", stm32_client_link_get_resets_sent,
    "Connections stm32d ended with a RST: the board did not answer its FIN in time, a "
    "learned or forced reset, or replies out of step." },
  { "stm32d_link_transact_timeouts_total", stm32_client_link_get_transact_timeouts,
    "Transactions whose caller got no reply in time." },
  { "stm32d_link_late_replies_total", stm32_client_link_get_late_replies,
    "Replies that came after their transaction's caller stopped waiting." },
};

static void
write_states (GString *out, GPtrArray *links)
{
  stm32ctl_metrics_family (out, "stm32d_link_state", "gauge", NULL,
                           "1 for the link's state, 0 for the others.");
  for (guint i = 0; i < links->len; i++)
    {
      Stm32ClientLink *link = links->pdata[i];
      const char *state = stm32_client_link_get_state (link);

      for (guint s = 0; s < G_N_ELEMENTS (states); s++)
        {
          const char *const labels[] = { "link",  stm32_client_link_get_name (link),
                                         "state", states[s],
                                         NULL };

          stm32ctl_metrics_sample_uint (out, "stm32d_link_state", labels,
                                        g_strcmp0 (state, states[s]) == 0);
        }
    }
}

static void
write_failures (GString *out, GPtrArray *links)
{
  stm32ctl_metrics_family (out, "stm32d_link_failures_total", "counter", NULL,
                           "Attempts and connections that ended for a reason other than a "
                           "requested close, by reason (stm32ctl(1), Last error).");
  for (guint i = 0; i < links->len; i++)
    {
      Stm32ClientLink *link = links->pdata[i];
      g_autoptr (GVariant) failures = stm32_client_link_dup_failures (link);
      GVariantIter iter;
      const char *reason;
      guint64 count;

      g_variant_iter_init (&iter, failures);
      while (g_variant_iter_next (&iter, "{&st}", &reason, &count))
        {
          const char *const labels[] = { "link", stm32_client_link_get_name (link), "reason",
                                         reason, NULL };

          stm32ctl_metrics_sample_uint (out, "stm32d_link_failures_total", labels, count);
        }
    }
}

/* A histogram rather than a summary: its buckets add up across links and
 * PCs (histogram_quantile() over a whole test floor), where a summary's
 * quantiles cannot be combined, and it costs stm32d 17 counters, no window. */
static void
write_round_trips (GString *out, GPtrArray *links)
{
  const char *name = "stm32d_link_transact_round_trip_seconds";

  stm32ctl_metrics_family (out, name, "histogram", "seconds",
                           "Answered transactions by round trip, from the request starting out "
                           "to its reply.");
  for (guint i = 0; i < links->len; i++)
    {
      Stm32ClientLink *link = links->pdata[i];
      const char *link_name = stm32_client_link_get_name (link);
      g_autoptr (GVariant) round_trips = stm32_client_link_dup_round_trips (link);
      g_autofree char *sum = stm32ctl_metrics_seconds (stm32_client_link_get_round_trip_sum (link));
      const char *const link_label[] = { "link", link_name, NULL };
      gsize n = 0;
      const guint64 *counts = g_variant_get_fixed_array (round_trips, &n, sizeof (guint64));
      guint64 total = 0;

      /* An older stm32d without RoundTrips reads as no transactions yet. */
      if (n != STM32_ROUND_TRIP_N_BUCKETS)
        n = 0;
      for (guint b = 0; b < STM32_ROUND_TRIP_N_BUCKETS; b++)
        {
          gboolean last = b == STM32_ROUND_TRIP_N_BUCKETS - 1;
          g_autofree char *le =
              last ? g_strdup ("+Inf") : stm32ctl_metrics_seconds (stm32_round_trip_bounds_us[b]);
          const char *const labels[] = { "link", link_name, "le", le, NULL };

          total = n > 0 ? counts[b] : 0;
          stm32ctl_metrics_sample_uint (out, "stm32d_link_transact_round_trip_seconds_bucket",
                                        labels, total);
        }
      stm32ctl_metrics_sample (out, "stm32d_link_transact_round_trip_seconds_sum", link_label,
                               n > 0 ? sum : "0");
      stm32ctl_metrics_sample_uint (out, "stm32d_link_transact_round_trip_seconds_count",
                                    link_label, total);
    }
}

static char *
metrics_text (GPtrArray *links)
{
  GString *out = g_string_new (NULL);

  write_states (out, links);
  for (guint c = 0; c < G_N_ELEMENTS (counters); c++)
    {
      stm32ctl_metrics_family (out, counters[c].name, "counter", NULL, counters[c].help);
      for (guint i = 0; i < links->len; i++)
        {
          const char *const labels[] = { "link", stm32_client_link_get_name (links->pdata[i]),
                                         NULL };

          stm32ctl_metrics_sample_uint (out, counters[c].name, labels,
                                        counters[c].get (links->pdata[i]));
        }
    }
  write_failures (out, links);
  write_round_trips (out, links);
  stm32ctl_metrics_end (out);
  return g_string_free (out, FALSE);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (stm32_client_link_get_name (*(Stm32ClientLink **) a),
                    stm32_client_link_get_name (*(Stm32ClientLink **) b));
}

int
stm32ctl_cmd_metrics (Stm32Ctl *ctl, int argc, char **argv)
{
  g_autofree char *output = NULL;
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
      "Replace FILE atomically (a temporary file in its directory, renamed over it) instead of "
      "printing",
      "FILE" },
    { NULL }
  };
  g_autoptr (GPtrArray) links = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree char *text = NULL;
  Stm32Client *client;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("metrics", NULL,
                       "Print every link's state and counters as OpenMetrics text, for "
                       "node_exporter's textfile collector.",
                       entries, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("metrics", "unexpected argument “%s”", argv[1]);
  if (output != NULL && *output == '\0')
    return stm32ctl_usage ("metrics", "--output needs a file name");
  client = stm32ctl_client (ctl, &error);
  if (client == NULL)
    return stm32ctl_fail (error);
  if (!stm32_client_is_running (client))
    return stm32ctl_fail (g_error_new_literal (STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING,
                                               "stm32d is not running"));
  if (ctl->link_name != NULL)
    {
      Stm32ClientLink *link = stm32ctl_link (ctl, &error);

      if (link == NULL)
        return stm32ctl_fail (error);
      g_ptr_array_add (links, g_object_ref (link));
    }
  else
    {
      g_autoptr (GList) all = stm32_client_get_links (client);

      for (GList *l = all; l != NULL; l = l->next)
        g_ptr_array_add (links, g_object_ref (l->data));
    }
  g_ptr_array_sort (links, compare_names);

  text = metrics_text (links);
  if (output == NULL)
    {
      g_print ("%s", text);
      return STM32CTL_EXIT_OK;
    }
  /* node_exporter reads the directory at any moment: it must see the old
   * file or the new one, never half of one. Readable by its user (0644). */
  if (!g_file_set_contents_full (output, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, &error))
    return stm32ctl_fail (error);
  return STM32CTL_EXIT_OK;
}
