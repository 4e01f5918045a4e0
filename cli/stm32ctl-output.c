/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl-output.h"

#include <stdio.h>
#include <unistd.h>

typedef struct
{
  char *key;
  char *label;
  char *text;
  JsonNode *value;
} Field;

struct _Stm32CtlOutput
{
  gboolean json;
  GPtrArray *records; /* GPtrArray of Field */
};

static void
field_free (Field *field)
{
  g_free (field->key);
  g_free (field->label);
  g_free (field->text);
  json_node_unref (field->value);
  g_free (field);
}

Stm32CtlOutput *
stm32ctl_output_new (gboolean json)
{
  Stm32CtlOutput *self = g_new0 (Stm32CtlOutput, 1);

  self->json = json;
  self->records = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  return self;
}

void
stm32ctl_output_free (Stm32CtlOutput *self)
{
  if (self == NULL)
    return;
  g_ptr_array_unref (self->records);
  g_free (self);
}

void
stm32ctl_output_record (Stm32CtlOutput *self)
{
  g_ptr_array_add (self->records, g_ptr_array_new_with_free_func ((GDestroyNotify) field_free));
}

static void
add_field (Stm32CtlOutput *self, const char *key, const char *label, const char *text,
           JsonNode *value)
{
  Field *field = g_new0 (Field, 1);

  if (self->records->len == 0)
    stm32ctl_output_record (self);
  field->key = g_strdup (key);
  field->label = g_strdup (label);
  field->text = g_strdup (text);
  field->value = value;
  g_ptr_array_add (g_ptr_array_index (self->records, self->records->len - 1), field);
}

void
stm32ctl_output_string (Stm32CtlOutput *self, const char *key, const char *label, const char *value)
{
  JsonNode *node = json_node_new (JSON_NODE_VALUE);

  json_node_set_string (node, value ? value : "");
  add_field (self, key, label, value && *value ? value : "-", node);
}

void
stm32ctl_output_string_text (Stm32CtlOutput *self, const char *key, const char *label,
                             const char *value, const char *text)
{
  JsonNode *node = json_node_new (JSON_NODE_VALUE);

  json_node_set_string (node, value ? value : "");
  add_field (self, key, label, text, node);
}

void
stm32ctl_output_uint (Stm32CtlOutput *self, const char *key, const char *label, guint64 value,
                      const char *text)
{
  JsonNode *node = json_node_new (JSON_NODE_VALUE);
  g_autofree char *plain = g_strdup_printf ("%" G_GUINT64_FORMAT, value);

  /* JSON numbers are doubles in most readers; counters stay exact below 2^53. */
  json_node_set_int (node, (gint64) MIN (value, (guint64) G_MAXINT64));
  add_field (self, key, label, text ? text : plain, node);
}

void
stm32ctl_output_int (Stm32CtlOutput *self, const char *key, const char *label, gint64 value,
                     const char *text)
{
  JsonNode *node = json_node_new (JSON_NODE_VALUE);
  g_autofree char *plain = g_strdup_printf ("%" G_GINT64_FORMAT, value);

  json_node_set_int (node, value);
  add_field (self, key, label, text ? text : plain, node);
}

void
stm32ctl_output_bool (Stm32CtlOutput *self, const char *key, const char *label, gboolean value)
{
  JsonNode *node = json_node_new (JSON_NODE_VALUE);

  json_node_set_boolean (node, value);
  add_field (self, key, label, value ? "yes" : "no", node);
}

void
stm32ctl_output_null (Stm32CtlOutput *self, const char *key, const char *label, const char *text)
{
  add_field (self, key, label, text, json_node_init_null (json_node_alloc ()));
}

void
stm32ctl_output_node (Stm32CtlOutput *self, const char *key, JsonNode *node)
{
  add_field (self, key, NULL, "", node);
}

static JsonNode *
record_to_json (GPtrArray *record)
{
  JsonObject *object = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  for (guint i = 0; i < record->len; i++)
    {
      Field *field = g_ptr_array_index (record, i);

      json_object_set_member (object, field->key, json_node_ref (field->value));
    }
  json_node_take_object (node, object);
  return node;
}

JsonNode *
stm32ctl_output_to_json (Stm32CtlOutput *self, gboolean as_array)
{
  JsonNode *root;

  if (as_array)
    {
      JsonArray *array = json_array_new ();

      for (guint i = 0; i < self->records->len; i++)
        json_array_add_element (array, record_to_json (g_ptr_array_index (self->records, i)));
      root = json_node_new (JSON_NODE_ARRAY);
      json_node_take_array (root, array);
      return root;
    }
  return self->records->len ? record_to_json (g_ptr_array_index (self->records, 0))
                            : json_node_init_object (json_node_alloc (), json_object_new ());
}

static void
print_json (Stm32CtlOutput *self, gboolean as_array)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = stm32ctl_output_to_json (self, as_array);
  g_autofree char *text = NULL;

  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static void
print_aligned (GPtrArray *record)
{
  glong width = 0;

  for (guint i = 0; i < record->len; i++)
    if (((Field *) record->pdata[i])->label != NULL)
      width = MAX (width, g_utf8_strlen (((Field *) record->pdata[i])->label, -1));
  for (guint i = 0; i < record->len; i++)
    {
      Field *field = g_ptr_array_index (record, i);
      glong pad;

      if (field->label == NULL)
        continue;
      pad = width - g_utf8_strlen (field->label, -1);

      g_print ("%*s%s: %s\n", (int) pad, "", field->label, field->text);
    }
}

static void
print_table (Stm32CtlOutput *self)
{
  GPtrArray *first = g_ptr_array_index (self->records, 0);
  g_autofree glong *widths = g_new0 (glong, first->len);

  for (guint r = 0; r < self->records->len; r++)
    for (guint c = 0; c < first->len; c++)
      {
        Field *field = g_ptr_array_index ((GPtrArray *) self->records->pdata[r], c);

        widths[c] = MAX (widths[c],
                         MAX (g_utf8_strlen (field->label, -1), g_utf8_strlen (field->text, -1)));
      }
  for (guint c = 0; c < first->len; c++)
    {
      g_autofree char *upper = g_utf8_strup (((Field *) first->pdata[c])->label, -1);

      /* The last column is not padded: no trailing blanks. */
      g_print ("%-*s%s", c + 1 < first->len ? (int) widths[c] : 0, upper,
               c + 1 < first->len ? "  " : "\n");
    }
  for (guint r = 0; r < self->records->len; r++)
    for (guint c = 0; c < first->len; c++)
      {
        Field *field = g_ptr_array_index ((GPtrArray *) self->records->pdata[r], c);
        glong pad = widths[c] - g_utf8_strlen (field->text, -1);

        g_print ("%s%*s%s", field->text, c + 1 < first->len ? (int) pad : 0, "",
                 c + 1 < first->len ? "  " : "\n");
      }
}

void
stm32ctl_output_print (Stm32CtlOutput *self, gboolean as_table)
{
  if (self->json)
    print_json (self, as_table);
  else if (as_table && self->records->len > 0)
    print_table (self);
  else
    for (guint i = 0; i < self->records->len; i++)
      {
        if (i > 0)
          g_print ("\n");
        print_aligned (g_ptr_array_index (self->records, i));
      }
  fflush (stdout);
}

gboolean
stm32ctl_output_use_color (void)
{
  const char *no_color = g_getenv ("NO_COLOR");

  /* no-color.org: any non-empty NO_COLOR turns colour off. */
  return isatty (STDOUT_FILENO) && g_strcmp0 (g_getenv ("TERM"), "dumb") != 0 &&
         (no_color == NULL || *no_color == '\0');
}

char *
stm32ctl_output_state (const char *state)
{
  const char *color = g_str_equal (state, "connected")    ? "\033[1;32m"
                      : g_str_equal (state, "waiting")    ? "\033[1;31m"
                      : g_str_equal (state, "connecting") ? "\033[1;33m"
                                                          : "";

  if (!stm32ctl_output_use_color () || *color == '\0')
    return g_strdup (state);
  return g_strdup_printf ("%s%s\033[0m", color, state);
}

char *
stm32ctl_output_since (guint64 since_us)
{
  gint64 seconds = (g_get_real_time () - (gint64) since_us) / G_USEC_PER_SEC;
  g_autoptr (GDateTime) when = g_date_time_new_from_unix_local ((gint64) since_us / G_USEC_PER_SEC);
  g_autofree char *stamp = g_date_time_format (when, "%a %Y-%m-%d %H:%M:%S %Z");

  seconds = MAX (seconds, 0);
  if (seconds < 60)
    return g_strdup_printf ("%s; %" G_GINT64_FORMAT " s ago", stamp, seconds);
  if (seconds < 3600)
    return g_strdup_printf ("%s; %" G_GINT64_FORMAT " min %" G_GINT64_FORMAT " s ago", stamp,
                            seconds / 60, seconds % 60);
  return g_strdup_printf ("%s; %" G_GINT64_FORMAT " h %" G_GINT64_FORMAT " min ago", stamp,
                          seconds / 3600, seconds / 60 % 60);
}

char *
stm32ctl_output_bytes (guint64 bytes)
{
  return g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}
