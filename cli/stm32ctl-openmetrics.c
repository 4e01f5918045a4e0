/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl-openmetrics.h"

/* HELP text escapes backslash and line feed; label values also double quotes. */
static void
append_escaped (GString *out, const char *text, gboolean quotes)
{
  for (const char *p = text; *p != '\0'; p++)
    {
      if (*p == '\\')
        g_string_append (out, "\\\\");
      else if (*p == '\n')
        g_string_append (out, "\\n");
      else if (*p == '"' && quotes)
        g_string_append (out, "\\\"");
      else
        g_string_append_c (out, *p);
    }
}

void
stm32ctl_metrics_family (GString *out, const char *name, const char *type, const char *unit,
                         const char *help)
{
  g_string_append_printf (out, "# HELP %s ", name);
  append_escaped (out, help, FALSE);
  g_string_append_printf (out, "\n# TYPE %s %s\n", name, type);
  if (unit != NULL && *unit != '\0')
    g_string_append_printf (out, "# UNIT %s %s\n", name, unit);
}

void
stm32ctl_metrics_sample (GString *out, const char *name, const char *const *labels,
                         const char *value)
{
  g_string_append (out, name);
  for (guint i = 0; labels != NULL && labels[i] != NULL; i += 2)
    {
      g_string_append_printf (out, "%s%s=\"", i == 0 ? "{" : ",", labels[i]);
      append_escaped (out, labels[i + 1], TRUE);
      g_string_append_c (out, '"');
    }
  if (labels != NULL && labels[0] != NULL)
    g_string_append_c (out, '}');
  g_string_append_printf (out, " %s\n", value);
}

void
stm32ctl_metrics_sample_uint (GString *out, const char *name, const char *const *labels,
                              guint64 value)
{
  char text[24];

  g_snprintf (text, sizeof text, "%" G_GUINT64_FORMAT, value);
  stm32ctl_metrics_sample (out, name, labels, text);
}

char *
stm32ctl_metrics_seconds (guint64 us)
{
  GString *text = g_string_new (NULL);
  guint64 fraction = us % G_USEC_PER_SEC;

  g_string_printf (text, "%" G_GUINT64_FORMAT, us / G_USEC_PER_SEC);
  if (fraction != 0)
    {
      g_string_append_printf (text, ".%06" G_GUINT64_FORMAT, fraction);
      while (text->str[text->len - 1] == '0')
        g_string_truncate (text, text->len - 1);
    }
  return g_string_free (text, FALSE);
}

void
stm32ctl_metrics_end (GString *out)
{
  g_string_append (out, "# EOF\n");
}
