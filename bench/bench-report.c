/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bench's figures: each one beside its baseline, collected as the
 * sections run and printed at the end as a table or JSON lines. */
#include <math.h>
#include <stdlib.h>

#include <json-glib/json-glib.h>

#include "bench.h"

typedef struct
{
  char *section;
  char *name;
  double value;
  double baseline; /* NAN when there is nothing to compare with */
  double relay;    /* the socat relay's figure, or NAN */
  char *unit;
  char *note;
} Result;

static GPtrArray *results;

static void
result_free (gpointer data)
{
  Result *r = data;
  g_free (r->section);
  g_free (r->name);
  g_free (r->unit);
  g_free (r->note);
  g_free (r);
}

void
bench_report (const char *section, const char *name, double value, double baseline,
              const char *unit, const char *note)
{
  bench_report_with_relay (section, name, value, baseline, NAN, unit, note);
}

void
bench_report_with_relay (const char *section, const char *name, double value, double baseline,
                         double relay, const char *unit, const char *note)
{
  Result *r = g_new0 (Result, 1);
  r->section = g_strdup (section);
  r->name = g_strdup (name);
  r->value = value;
  r->baseline = baseline;
  r->relay = relay;
  r->unit = g_strdup (unit);
  r->note = g_strdup (note ? note : "");
  if (!results)
    results = g_ptr_array_new_with_free_func (result_free);
  g_ptr_array_add (results, r);
  g_printerr ("bench: %s %s: %.3f %s\n", section, name, value, unit);
}

static void
add_ratio (JsonBuilder *b, const char *member, double value, double baseline)
{
  json_builder_set_member_name (b, member);
  if (isnan (baseline) || baseline == 0)
    json_builder_add_null_value (b);
  else
    json_builder_add_double_value (b, value / baseline);
}

static void
add_number (JsonBuilder *b, const char *member, double value)
{
  json_builder_set_member_name (b, member);
  if (isnan (value))
    json_builder_add_null_value (b);
  else
    json_builder_add_double_value (b, value);
}

static void
print_json (const Result *r)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "section");
  json_builder_add_string_value (b, r->section);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, r->name);
  json_builder_set_member_name (b, "value");
  json_builder_add_double_value (b, r->value);
  json_builder_set_member_name (b, "unit");
  json_builder_add_string_value (b, r->unit);
  add_number (b, "baseline", r->baseline);
  add_ratio (b, "ratio", r->value, r->baseline);
  add_number (b, "relay", r->relay);
  add_ratio (b, "relay_ratio", r->value, r->relay);
  json_builder_set_member_name (b, "note");
  json_builder_add_string_value (b, r->note);
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  g_print ("%s\n", text);
}

static char *
format_number (double value)
{
  return isnan (value) ? g_strdup ("-") : g_strdup_printf ("%.3f", value);
}

static char *
format_ratio (double value, double baseline)
{
  return isnan (baseline) || baseline == 0 ? g_strdup ("-")
                                           : g_strdup_printf ("%.2f", value / baseline);
}

static void
print_row (const Result *r)
{
  g_autofree char *base = format_number (r->baseline);
  g_autofree char *ratio = format_ratio (r->value, r->baseline);
  g_autofree char *relay = format_number (r->relay);
  g_autofree char *relay_ratio = format_ratio (r->value, r->relay);
  g_print ("%-10s %-34s %14.3f %14s %8s %14s %8s  %-8s %s\n", r->section, r->name, r->value, base,
           ratio, relay, relay_ratio, r->unit, r->note);
}

void
bench_report_print (gboolean json)
{
  if (!json)
    g_print ("%-10s %-34s %14s %14s %8s %14s %8s  %-8s %s\n", "section", "measure", "stm32d",
             "direct", "ratio", "socat", "/socat", "unit", "note");
  for (guint i = 0; results && i < results->len; i++)
    {
      if (json)
        print_json (results->pdata[i]);
      else
        print_row (results->pdata[i]);
    }
  g_clear_pointer (&results, g_ptr_array_unref);
}

static int
cmp_gint64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return x < y ? -1 : x > y;
}

double
bench_percentile_us (GArray *ns, double p)
{
  if (ns->len == 0)
    return NAN;
  qsort (ns->data, ns->len, sizeof (gint64), cmp_gint64);
  guint i = (guint) (p * (ns->len - 1) + 0.5);
  return g_array_index (ns, gint64, i) / 1000.0;
}
