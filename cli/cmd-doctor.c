/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "stm32ctl-owners.h"
#include "stm32ctl.h"

#define WRAP_COLUMNS 78

typedef struct
{
  const char *severity;
  const char *heading;
  const char *color;
} SeverityGroup;

static const SeverityGroup groups[] = {
  { "error", "Errors", "\033[1;31m" },
  { "warning", "Warnings", "\033[1;33m" },
  { "info", "Notes", "\033[1m" },
};

static const char *
lookup_string (GVariant *dict, const char *key)
{
  const char *value = NULL;

  return g_variant_lookup (dict, key, "&s", &value) ? value : NULL;
}

static guint32
lookup_uint (GVariant *dict, const char *key)
{
  guint32 value = 0;

  g_variant_lookup (dict, key, "u", &value);
  return value;
}

static guint64
lookup_uint64 (GVariant *dict, const char *key)
{
  guint64 value = 0;

  g_variant_lookup (dict, key, "t", &value);
  return value;
}

static gboolean
lookup_bool (GVariant *dict, const char *key)
{
  gboolean value = FALSE;

  g_variant_lookup (dict, key, "b", &value);
  return value;
}

/* "label text…" wrapped at WRAP_COLUMNS, continuation lines under the text. */
static void
print_wrapped (const char *indent, const char *label, const char *text)
{
  g_auto (GStrv) words = g_strsplit (text, " ", -1);
  g_autoptr (GString) line = g_string_new (indent);
  glong hang = g_utf8_strlen (indent, -1) + g_utf8_strlen (label, -1);

  g_string_append (line, label);
  for (guint i = 0, n = 0; words[i] != NULL; i++)
    {
      if (n > 0 && g_utf8_strlen (line->str, -1) + 1 + g_utf8_strlen (words[i], -1) > WRAP_COLUMNS)
        {
          g_print ("%s\n", line->str);
          g_string_truncate (line, 0);
          g_string_append_printf (line, "%*s", (int) hang, "");
          n = 0;
        }
      if (n++ > 0)
        g_string_append_c (line, ' ');
      g_string_append (line, words[i]);
    }
  g_print ("%s\n", line->str);
}

/* Under competing-client: the programs stm32d's sandbox hid from it, as
 * stm32ctl saw them, or that it did not see them either. */
static void
print_owners (GVariant *census)
{
  g_autoptr (GString) found = g_string_new (NULL);
  g_autoptr (GString) unseen = g_string_new (NULL);
  g_autofree char *advice = NULL;

  for (gsize i = 0; i < g_variant_n_children (census); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (census, i);
      const char *seen_by = lookup_string (entry, "seen-by");
      const char *command = lookup_string (entry, "command");
      gint32 pid = 0;

      if (lookup_bool (entry, "ours"))
        continue;
      if (g_strcmp0 (seen_by, "stm32ctl") == 0 && g_variant_lookup (entry, "pid", "i", &pid))
        g_string_append_printf (found, "%spid %d (%s) holds %s", found->len ? "; " : "", pid,
                                command ? command : "?", lookup_string (entry, "local"));
      else if (g_strcmp0 (seen_by, "") == 0 && lookup_uint64 (entry, "inode") != 0)
        g_string_append_printf (unseen, "%s%s", unseen->len ? ", " : "",
                                lookup_string (entry, "local"));
    }
  if (found->len > 0)
    {
      g_string_append (found, " (stm32d's sandbox hides other users' programs from it).");
      print_wrapped ("    ", "Found by stm32ctl: ", found->str);
    }
  if (unseen->len > 0)
    {
      advice = g_strdup_printf ("neither stm32d nor stm32ctl may see the program holding %s: "
                                "run stm32ctl doctor as root to see which program.",
                                unseen->str);
      print_wrapped ("    ", "Not found: ", advice);
    }
}

static void
print_finding (GVariant *finding, GVariant *census)
{
  const char *side = lookup_string (finding, "side");
  const char *workaround = lookup_string (finding, "workaround");
  gboolean board = g_strcmp0 (side, "board") == 0;
  g_autofree char *title =
      g_strdup_printf ("%s: %s", lookup_string (finding, "id"), lookup_string (finding, "title"));

  g_print ("\n");
  print_wrapped ("  ", "", title);
  print_wrapped ("    ", "Evidence: ", lookup_string (finding, "evidence"));
  print_wrapped ("    ",
                 board ? "Fix on the board: " : "Fix on the PC: ", lookup_string (finding, "fix"));
  if (workaround != NULL)
    print_wrapped ("    ", board ? "Meanwhile on the PC: " : "Or on the board: ", workaround);
  if (g_strcmp0 (lookup_string (finding, "id"), "competing-client") == 0)
    print_owners (census);
}

static void
print_findings (GVariant *findings, GVariant *census, gboolean healthy)
{
  gboolean color = stm32ctl_output_use_color ();

  if (healthy)
    g_print ("\n%sClean bill of health:%s no problems found.\n", color ? "\033[1;32m" : "",
             color ? "\033[0m" : "");
  for (guint g = 0; g < G_N_ELEMENTS (groups); g++)
    {
      guint count = 0;

      for (gsize i = 0; i < g_variant_n_children (findings); i++)
        {
          g_autoptr (GVariant) finding = g_variant_get_child_value (findings, i);

          if (g_strcmp0 (lookup_string (finding, "severity"), groups[g].severity) != 0)
            continue;
          if (count++ == 0)
            g_print ("\n%s%s%s\n", color ? groups[g].color : "", groups[g].heading,
                     color ? "\033[0m" : "");
          print_finding (finding, census);
        }
    }
}

static void
describe_socket (Stm32CtlOutput *output, GVariant *entry)
{
  gint32 pid = 0;
  const char *command = lookup_string (entry, "command");
  gboolean has_pid = g_variant_lookup (entry, "pid", "i", &pid);

  stm32ctl_output_record (output);
  stm32ctl_output_string (output, "state", "State", lookup_string (entry, "state"));
  stm32ctl_output_string (output, "local", "Local", lookup_string (entry, "local"));
  stm32ctl_output_string (output, "remote", "Remote", lookup_string (entry, "remote"));
  if (has_pid)
    stm32ctl_output_int (output, "pid", "Pid", pid, NULL);
  else
    stm32ctl_output_null (output, "pid", "Pid", "-");
  stm32ctl_output_string (output, "command", "Command", command);
  stm32ctl_output_uint (output, "uid", "Uid", lookup_uint (entry, "uid"), NULL);
  stm32ctl_output_bool (output, "ours", "stm32d", lookup_bool (entry, "ours"));
  if (g_strcmp0 (lookup_string (entry, "seen-by"), "") == 0)
    stm32ctl_output_null (output, "seen_by", "Seen by", "-");
  else
    stm32ctl_output_string (output, "seen_by", "Seen by", lookup_string (entry, "seen-by"));
}

static void
print_census (GVariant *report, GVariant *census)
{
  g_autoptr (Stm32CtlOutput) table = stm32ctl_output_new (FALSE);
  const char *error = lookup_string (report, "census-error");

  g_print ("\nThis PC's TCP sockets to %s:\n", lookup_string (report, "endpoint"));
  if (error != NULL)
    {
      g_print ("  unknown: %s\n", error);
      return;
    }
  if (g_variant_n_children (census) == 0)
    {
      g_print ("  none\n");
      return;
    }
  for (gsize i = 0; i < g_variant_n_children (census); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (census, i);

      describe_socket (table, entry);
    }
  stm32ctl_output_print (table, TRUE);
}

static void
print_history (GVariant *summary)
{
  g_autoptr (GVariant) reasons = g_variant_lookup_value (summary, "reasons", NULL);
  g_autoptr (GString) text = g_string_new (NULL);
  GVariantIter iter;
  const char *reason;
  guint32 count;
  guint n = 0;
  guint attempts = lookup_uint (summary, "attempts");

  g_string_printf (text, "%u attempt%s, %u connected, %u closed by the board, %u with our RST",
                   attempts, attempts == 1 ? "" : "s", lookup_uint (summary, "connected"),
                   lookup_uint (summary, "closed-by-board"), lookup_uint (summary, "aborted"));
  g_variant_iter_init (&iter, reasons);
  while (g_variant_iter_next (&iter, "{&su}", &reason, &count))
    g_string_append_printf (text, "%s%s %u", n++ ? ", " : "; ended: ", reason, count);
  g_print ("\n");
  print_wrapped ("", "History: ", text->str);
}

static void
print_probe (GVariant *probe)
{
  g_autofree char *latency = NULL, *capacity = NULL, *outcome = NULL;
  const char *error = lookup_string (probe, "error");
  const char *limit = lookup_string (probe, "limit");

  latency = g_strdup_printf ("%.2f / %.2f / %.2f ms (min / median / max)",
                             lookup_uint64 (probe, "connect-us-min") / 1000.0,
                             lookup_uint64 (probe, "connect-us-median") / 1000.0,
                             lookup_uint64 (probe, "connect-us-max") / 1000.0);
  capacity = g_strdup_printf (
      "%s%u connections at once (the link's %u, other programs' %u, the probe's %u); counting "
      "stopped: %s",
      lookup_bool (probe, "capacity-exact") ? "" : "at least ", lookup_uint (probe, "capacity"),
      lookup_uint (probe, "held-by-link"), lookup_uint (probe, "held-by-others"),
      lookup_uint (probe, "extra"), limit);
  outcome =
      g_strdup_printf ("%u of %u stayed up, %u turned away, %u refused, %u timed out",
                       lookup_uint (probe, "cycles-accepted"), lookup_uint (probe, "cycles"),
                       lookup_uint (probe, "cycles-busy"), lookup_uint (probe, "cycles-refused"),
                       lookup_uint (probe, "cycles-timeout"));
  g_print ("\nProbe (%.1f s):\n", lookup_uint (probe, "duration-ms") / 1000.0);
  print_wrapped ("  ", "Cycles: ", outcome);
  print_wrapped ("  ", "Accept latency: ", latency);
  if (g_strcmp0 (limit, "none") != 0)
    {
      print_wrapped ("  ", "Capacity: ", capacity);
      g_print ("  Released afterwards: %s\n", lookup_bool (probe, "released") ? "yes" : "no");
    }
  g_print ("  Closes: %u answered by the board, %u needed our RST\n",
           lookup_uint (probe, "closes-graceful"), lookup_uint (probe, "closes-reset"));
  if (error != NULL)
    print_wrapped ("  ", "Error: ", error);
}

/* ---- --json ------------------------------------------------------------------------ */

static void
describe_finding (Stm32CtlOutput *output, GVariant *finding)
{
  g_autoptr (GVariant) pids = g_variant_lookup_value (finding, "pids", G_VARIANT_TYPE ("ai"));
  JsonArray *array = json_array_new ();
  gsize n = 0;
  const gint32 *values = pids ? g_variant_get_fixed_array (pids, &n, sizeof (gint32)) : NULL;

  for (gsize i = 0; i < n; i++)
    json_array_add_int_element (array, values[i]);
  stm32ctl_output_record (output);
  stm32ctl_output_string (output, "id", NULL, lookup_string (finding, "id"));
  stm32ctl_output_string (output, "severity", NULL, lookup_string (finding, "severity"));
  stm32ctl_output_string (output, "side", NULL, lookup_string (finding, "side"));
  stm32ctl_output_string (output, "title", NULL, lookup_string (finding, "title"));
  stm32ctl_output_string (output, "evidence", NULL, lookup_string (finding, "evidence"));
  stm32ctl_output_string (output, "fix", NULL, lookup_string (finding, "fix"));
  stm32ctl_output_string (output, "workaround", NULL, lookup_string (finding, "workaround"));
  stm32ctl_output_uint (output, "interval_ms", NULL, lookup_uint (finding, "interval-ms"), NULL);
  stm32ctl_output_node (output, "pids", json_node_init_array (json_node_alloc (), array));
  json_array_unref (array);
}

static JsonNode *
history_json (GVariant *summary)
{
  g_autoptr (Stm32CtlOutput) output = stm32ctl_output_new (TRUE);
  g_autoptr (GVariant) reasons = g_variant_lookup_value (summary, "reasons", NULL);
  JsonObject *counts = json_object_new ();
  GVariantIter iter;
  const char *reason;
  guint32 count;

  g_variant_iter_init (&iter, reasons);
  while (g_variant_iter_next (&iter, "{&su}", &reason, &count))
    json_object_set_int_member (counts, reason, count);
  stm32ctl_output_uint (output, "attempts", NULL, lookup_uint (summary, "attempts"), NULL);
  stm32ctl_output_uint (output, "connected", NULL, lookup_uint (summary, "connected"), NULL);
  stm32ctl_output_uint (output, "aborted", NULL, lookup_uint (summary, "aborted"), NULL);
  stm32ctl_output_uint (output, "closed_by_board", NULL, lookup_uint (summary, "closed-by-board"),
                        NULL);
  stm32ctl_output_uint (output, "closed_by_pc", NULL, lookup_uint (summary, "closed-by-pc"), NULL);
  stm32ctl_output_node (output, "reasons", json_node_init_object (json_node_alloc (), counts));
  json_object_unref (counts);
  return stm32ctl_output_to_json (output, FALSE);
}

static JsonNode *
probe_json (GVariant *probe)
{
  g_autoptr (Stm32CtlOutput) output = stm32ctl_output_new (TRUE);
  static const char *const counts[][2] = {
    { "cycles", "cycles" },
    { "cycles_accepted", "cycles-accepted" },
    { "cycles_busy", "cycles-busy" },
    { "cycles_refused", "cycles-refused" },
    { "cycles_timeout", "cycles-timeout" },
    { "closes_graceful", "closes-graceful" },
    { "closes_reset", "closes-reset" },
    { "held_by_link", "held-by-link" },
    { "held_by_others", "held-by-others" },
    { "extra", "extra" },
    { "capacity", "capacity" },
    { "max", "max" },
    { "duration_ms", "duration-ms" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (counts); i++)
    stm32ctl_output_uint (output, counts[i][0], NULL, lookup_uint (probe, counts[i][1]), NULL);
  stm32ctl_output_uint (output, "connect_us_min", NULL, lookup_uint64 (probe, "connect-us-min"),
                        NULL);
  stm32ctl_output_uint (output, "connect_us_median", NULL,
                        lookup_uint64 (probe, "connect-us-median"), NULL);
  stm32ctl_output_uint (output, "connect_us_max", NULL, lookup_uint64 (probe, "connect-us-max"),
                        NULL);
  stm32ctl_output_bool (output, "capacity_exact", NULL, lookup_bool (probe, "capacity-exact"));
  stm32ctl_output_string (output, "limit", NULL, lookup_string (probe, "limit"));
  stm32ctl_output_bool (output, "released", NULL, lookup_bool (probe, "released"));
  stm32ctl_output_string (output, "error", NULL, lookup_string (probe, "error"));
  return stm32ctl_output_to_json (output, FALSE);
}

static JsonNode *
records_json (GVariant *list, void (*describe) (Stm32CtlOutput *, GVariant *))
{
  g_autoptr (Stm32CtlOutput) records = stm32ctl_output_new (TRUE);

  for (gsize i = 0; i < g_variant_n_children (list); i++)
    {
      g_autoptr (GVariant) item = g_variant_get_child_value (list, i);

      describe (records, item);
    }
  return stm32ctl_output_to_json (records, TRUE);
}

/* One link's report as a record of @output: an object of --json. */
static void
describe_report (Stm32CtlOutput *output, const char *name, GVariant *report)
{
  g_autoptr (GVariant) findings = g_variant_lookup_value (report, "findings", NULL);
  g_autoptr (GVariant) census = g_variant_lookup_value (report, "census", NULL);
  g_autoptr (GVariant) summary = g_variant_lookup_value (report, "history-summary", NULL);
  g_autoptr (GVariant) probe = g_variant_lookup_value (report, "probe", NULL);

  stm32ctl_output_record (output);
  stm32ctl_output_string (output, "name", NULL, name);
  stm32ctl_output_string (output, "endpoint", NULL, lookup_string (report, "endpoint"));
  stm32ctl_output_bool (output, "healthy", NULL, lookup_bool (report, "healthy"));
  stm32ctl_output_node (output, "findings", records_json (findings, describe_finding));
  stm32ctl_output_node (output, "census", records_json (census, describe_socket));
  stm32ctl_output_string (output, "census_error", NULL, lookup_string (report, "census-error"));
  stm32ctl_output_node (output, "history", history_json (summary));
  stm32ctl_output_node (output, "probe",
                        probe ? probe_json (probe) : json_node_init_null (json_node_alloc ()));
}

/* ---- the command -------------------------------------------------------------------- */

static GVariant *
diagnose_options (gboolean probe, int max)
{
  GVariantDict options;

  g_variant_dict_init (&options, NULL);
  if (probe)
    g_variant_dict_insert (&options, "probe", "b", TRUE);
  if (max > 0)
    g_variant_dict_insert (&options, "probe-max", "u", (guint32) max);
  return g_variant_dict_end (&options);
}

/* One link's report for people. */
static void
print_report (Stm32ClientLink *link, GVariant *report)
{
  g_autoptr (GVariant) findings = g_variant_lookup_value (report, "findings", NULL);
  g_autoptr (GVariant) census = g_variant_lookup_value (report, "census", NULL);
  g_autoptr (GVariant) summary = g_variant_lookup_value (report, "history-summary", NULL);
  g_autoptr (GVariant) probe = g_variant_lookup_value (report, "probe", NULL);

  g_print ("Link %s, board %s\n", stm32_client_link_get_name (link),
           lookup_string (report, "endpoint"));
  print_findings (findings, census, lookup_bool (report, "healthy"));
  print_census (report, census);
  print_history (summary);
  if (probe != NULL)
    print_probe (probe);
  fflush (stdout);
}

typedef struct
{
  gboolean probe;
  int max;
  gboolean json;
} DoctorOptions;

/* Asks stm32d to diagnose @link; the report has stm32ctl's own view of the
 * sockets' owners added. */
static GVariant *
diagnose (Stm32Ctl *ctl, Stm32ClientLink *link, const DoctorOptions *options, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) diagnosed = NULL;
  gboolean probe = options->probe || options->max > 0;

  if (probe && !options->json)
    g_printerr ("Probing %s for a few seconds…\n", stm32_client_link_get_name (link));
  stm32_client_link_diagnose (link, diagnose_options (probe, options->max), ctl->cancellable,
                              stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  diagnosed = stm32_client_link_diagnose_finish (link, result, error);
  return diagnosed ? stm32ctl_owners_fill (diagnosed) : NULL;
}

static int
doctor_one (Stm32Ctl *ctl, Stm32ClientLink *link, const DoctorOptions *options)
{
  g_autoptr (Stm32CtlOutput) output = stm32ctl_output_new (TRUE);
  g_autoptr (GVariant) report = NULL;
  GError *error = NULL;

  report = diagnose (ctl, link, options, &error);
  if (report == NULL)
    return stm32ctl_fail (error);
  if (options->json)
    {
      describe_report (output, stm32_client_link_get_name (link), report);
      stm32ctl_output_print (output, FALSE);
    }
  else
    print_report (link, report);
  return lookup_bool (report, "healthy") ? STM32CTL_EXIT_OK : STM32CTL_EXIT_PROBLEMS;
}

/* How the links fared, for the summary: the names are the links to look at. */
typedef struct
{
  guint links, healthy, unhealthy, failed;
  GString *problems; /* names of the links with problems */
  GString *errors;   /* names of the links that could not be diagnosed */
} Tally;

static void
tally_add (GString *names, guint *count, const char *name)
{
  g_string_append_printf (names, "%s%s", *count > 0 ? ", " : "", name);
  (*count)++;
}

static void
print_summary (const Tally *tally)
{
  g_autoptr (GString) text = g_string_new (NULL);

  g_string_printf (text, "%u links diagnosed, %u without problems", tally->links, tally->healthy);
  if (tally->unhealthy > 0)
    g_string_append_printf (text, "; %u with problems: %s", tally->unhealthy, tally->problems->str);
  if (tally->failed > 0)
    g_string_append_printf (text, "; %u not diagnosed: %s", tally->failed, tally->errors->str);
  g_print ("\n");
  print_wrapped ("", "Summary: ", text->str);
}

/* Every link, one after the other (probes of boards on one network would
 * disturb each other). The exit status is the worst outcome: a link that could
 * not be diagnosed, then one with problems. */
static int
doctor_all (Stm32Ctl *ctl, GList *links, const DoctorOptions *options)
{
  g_autoptr (Stm32CtlOutput) output = stm32ctl_output_new (TRUE);
  g_autoptr (GString) problems = g_string_new (NULL);
  g_autoptr (GString) errors = g_string_new (NULL);
  Tally tally = { .problems = problems, .errors = errors };
  int worst = STM32CTL_EXIT_OK;

  for (GList *l = links; l != NULL; l = l->next, tally.links++)
    {
      const char *name = stm32_client_link_get_name (l->data);
      g_autoptr (GVariant) report = NULL;
      GError *error = NULL;

      report = diagnose (ctl, l->data, options, &error);
      if (report == NULL)
        {
          gboolean cancelled = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
          int code;

          g_prefix_error (&error, "link %s: ", name);
          code = stm32ctl_fail (error);
          if (cancelled)
            return code;
          if (tally.failed == 0)
            worst = code;
          tally_add (errors, &tally.failed, name);
          continue;
        }
      if (options->json)
        describe_report (output, name, report);
      else
        {
          if (l != links)
            g_print ("\n");
          print_report (l->data, report);
        }
      if (lookup_bool (report, "healthy"))
        tally.healthy++;
      else
        {
          tally_add (problems, &tally.unhealthy, name);
          if (tally.failed == 0)
            worst = STM32CTL_EXIT_PROBLEMS;
        }
    }
  if (options->json)
    stm32ctl_output_print (output, TRUE);
  else
    print_summary (&tally);
  return worst;
}

int
stm32ctl_cmd_doctor (Stm32Ctl *ctl, int argc, char **argv)
{
  DoctorOptions options = { 0 };
  const GOptionEntry entries[] = {
    { "probe", 'p', 0, G_OPTION_ARG_NONE, &options.probe,
      "Also probe the board: connect/close cycles and how many connections it holds", NULL },
    { "max", 'm', 0, G_OPTION_ARG_INT, &options.max,
      "Open at most N extra connections when probing (1-32, default 8; implies --probe)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &options.json, "Print JSON", NULL },
    { NULL }
  };
  g_autoptr (GList) links = NULL;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("doctor", "[LINK]",
                       "Say what is wrong with a board's connection and what to change, with the "
                       "evidence: the link's history, this PC's sockets to the board (other "
                       "programs' included) and, with --probe, a short test of the board. "
                       "Without a link and with several, every link, then a summary.",
                       entries, &argc, &argv, &status))
    return status;
  if (argc > 2)
    return stm32ctl_usage ("doctor", "unexpected argument “%s”", argv[2]);
  if (options.max < 0 || options.max > 32)
    return stm32ctl_usage ("doctor", "--max takes 1 to 32, not %d", options.max);
  if (!stm32ctl_take_link_argument (ctl, "doctor", argc, argv, &status))
    return status;
  links = stm32ctl_links (ctl, &error);
  if (links == NULL)
    return stm32ctl_fail (error);
  if (links->next == NULL)
    return doctor_one (ctl, links->data, &options);
  return doctor_all (ctl, links, &options);
}
