/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-link-types.h"

#include <glib-object.h>

#include "stm32-error.h"

const char *
stm32_enum_to_string (GType enum_type, int value)
{
  g_autoptr (GEnumClass) klass = g_type_class_ref (enum_type);
  GEnumValue *ev = g_enum_get_value (klass, value);

  return ev ? ev->value_nick : "unknown";
}

gboolean
stm32_enum_from_string (GType enum_type, const char *nick, int *value, GError **error)
{
  g_autoptr (GEnumClass) klass = g_type_class_ref (enum_type);
  GEnumValue *ev = nick ? g_enum_get_value_by_nick (klass, nick) : NULL;

  if (ev == NULL)
    {
      g_autoptr (GString) choices = g_string_new (NULL);

      for (guint i = 0; i < klass->n_values; i++)
        g_string_append_printf (choices, "%s%s", i ? ", " : "", klass->values[i].value_nick);
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, "“%s” is not one of: %s",
                   nick ? nick : "(null)", choices->str);
      return FALSE;
    }
  *value = ev->value;
  return TRUE;
}
