/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-reply.h"

#include <gio/gio.h>

/* A script is test input, not a data set; anything larger is a mistake. */
#define SIM_SCRIPT_MAX (1024 * 1024)

struct _SimReply
{
  gboolean echo;
  gboolean delay_marks;
  GHashTable *script; /* GBytes request → GBytes reply */
};

/* Decodes the script's escapes so that binary framings can be scripted too. */
static GBytes *
unescape (const char *text, GError **error)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();

  for (const char *p = text; *p != '\0'; p++)
    {
      guint8 c = (guint8) *p;

      if (*p == '\\')
        {
          p++;
          if (*p == '\\')
            c = '\\';
          else if (*p == 't')
            c = '\t';
          else if (*p == 'n')
            c = '\n';
          else if (*p == 'r')
            c = '\r';
          else if (*p == 'x' && g_ascii_isxdigit (p[1]) && g_ascii_isxdigit (p[2]))
            {
              c = (guint8) (g_ascii_xdigit_value (p[1]) * 16 + g_ascii_xdigit_value (p[2]));
              p += 2;
            }
          else
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "unknown escape “\\%.1s” (use \\\\ \\t \\n \\r \\xHH)", p);
              return NULL;
            }
        }
      g_byte_array_append (bytes, &c, 1);
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&bytes));
}

static gboolean
parse_line (SimReply *self, const char *line, GError **error)
{
  const char *tab = strchr (line, '\t');
  g_autofree char *request_text = NULL;
  g_autoptr (GBytes) request = NULL;
  g_autoptr (GBytes) reply = NULL;

  if (tab == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "expected REQUEST<TAB>REPLY");
      return FALSE;
    }
  request_text = g_strndup (line, tab - line);
  request = unescape (request_text, error);
  if (request == NULL)
    return FALSE;
  reply = unescape (tab + 1, error);
  if (reply == NULL)
    return FALSE;
  g_hash_table_replace (self->script, g_steal_pointer (&request), g_steal_pointer (&reply));
  return TRUE;
}

static gboolean
load_script (SimReply *self, const char *path, GError **error)
{
  g_autofree char *contents = NULL;
  g_auto (GStrv) lines = NULL;
  gsize length;

  if (!g_file_get_contents (path, &contents, &length, error))
    return FALSE;
  if (length > SIM_SCRIPT_MAX)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: larger than %d bytes", path,
                   SIM_SCRIPT_MAX);
      return FALSE;
    }
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autoptr (GError) local_error = NULL;
      char *line = lines[i];
      gsize len = strlen (line);

      if (len > 0 && line[len - 1] == '\r')
        line[len - 1] = '\0';
      if (line[0] == '\0' || line[0] == '#')
        continue;
      if (!parse_line (self, line, &local_error))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s:%u: %s", path, i + 1,
                       local_error->message);
          return FALSE;
        }
    }
  return TRUE;
}

SimReply *
sim_reply_new (gboolean echo, const char *script_path, gboolean delay_marks, GError **error)
{
  g_autoptr (SimReply) self = g_new0 (SimReply, 1);

  self->echo = echo;
  self->delay_marks = delay_marks;
  self->script = g_hash_table_new_full (g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref,
                                        (GDestroyNotify) g_bytes_unref);
  if (script_path != NULL && !load_script (self, script_path, error))
    return NULL;
  return g_steal_pointer (&self);
}

void
sim_reply_free (SimReply *self)
{
  if (self == NULL)
    return;
  g_hash_table_unref (self->script);
  g_free (self);
}

/* "~MS " or "~- " at the start of @request: FALSE for never, else @delay_ms. */
static gboolean
read_delay_mark (GBytes *request, guint *delay_ms)
{
  gsize size;
  const char *data = g_bytes_get_data (request, &size);
  const char *end = data != NULL ? memchr (data, ' ', size) : NULL;
  g_autofree char *mark = NULL;
  guint64 ms;

  *delay_ms = 0;
  if (size < 3 || data[0] != '~' || end == NULL)
    return TRUE;
  mark = g_strndup (data + 1, (gsize) (end - data - 1));
  if (g_str_equal (mark, "-"))
    return FALSE;
  if (g_ascii_string_to_unsigned (mark, 10, 0, 600000, &ms, NULL))
    *delay_ms = (guint) ms;
  return TRUE;
}

GBytes *
sim_reply_answer (SimReply *self, GBytes *request, guint *delay_ms)
{
  GBytes *reply = g_hash_table_lookup (self->script, request);

  *delay_ms = 0;
  if (self->delay_marks && !read_delay_mark (request, delay_ms))
    return NULL;

  if (reply != NULL)
    return g_bytes_ref (reply);
  return self->echo ? g_bytes_ref (request) : NULL;
}
