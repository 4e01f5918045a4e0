/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-args.h"

#include <gio/gio.h>

gboolean
sim_parse_uint (const char *text, guint *value, GError **error)
{
  guint64 v;

  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXINT, &v, error))
    return FALSE;
  *value = (guint) v;
  return TRUE;
}

gboolean
sim_parse_on_off (const char *text, const char *on, const char *off, gboolean *value,
                  GError **error)
{
  if (g_str_equal (text, on) || g_str_equal (text, off))
    {
      *value = g_str_equal (text, on);
      return TRUE;
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "“%s” is not %s or %s", text, on,
               off);
  return FALSE;
}

int
sim_parse_choice (const char *option, const char *value, const char *const *choices, GError **error)
{
  g_autofree char *joined = NULL;

  if (value == NULL)
    return 0;
  for (int i = 0; choices[i] != NULL; i++)
    if (g_str_equal (value, choices[i]))
      return i;
  joined = g_strjoinv ("|", (char **) choices);
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s: “%s” is not one of %s", option,
               value, joined);
  return -1;
}

gboolean
sim_check_range (const char *option, int value, int min, int max, GError **error)
{
  if (value >= min && value <= max)
    return TRUE;
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s: %d is not in %d…%d", option,
               value, min, max);
  return FALSE;
}
