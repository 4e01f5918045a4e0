/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-send-wire.h"

#include <string.h>

void
stm32_send_wire_append (GByteArray *packet, GBytes *frame)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (frame, &size);
  guint32 length = (guint32) size;

  g_return_if_fail (size <= G_MAXUINT32);
  g_byte_array_append (packet, (const guint8 *) &length, sizeof length);
  g_byte_array_append (packet, data, size);
}

GBytes *
stm32_send_wire_next (GBytes *packet, gsize *offset, gboolean *malformed)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (packet, &size);
  guint32 length;

  *malformed = FALSE;
  if (*offset >= size)
    return NULL;
  /* Untrusted: every length is checked against what is left. */
  if (size - *offset < sizeof length)
    {
      *malformed = TRUE;
      return NULL;
    }
  memcpy (&length, data + *offset, sizeof length);
  if (size - *offset - sizeof length < length)
    {
      *malformed = TRUE;
      return NULL;
    }
  *offset += sizeof length + length;
  return g_bytes_new_from_bytes (packet, *offset - length, length);
}

GBytes *
stm32_send_wire_answer_new (guint32 count, const char *error_name, const char *message)
{
  g_autoptr (GVariant) answer =
      g_variant_ref_sink (g_variant_new ("(uss)", count, error_name, message));

  return g_variant_get_data_as_bytes (answer);
}

gboolean
stm32_send_wire_answer_parse (GBytes *packet, guint32 *count, char **error_name, char **message)
{
  g_autoptr (GVariant) answer =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(uss)"), packet, FALSE));
  g_autoptr (GBytes) normal = NULL;
  const char *name, *text;
  guint32 n;

  /* Untrusted: GLib reads any bytes safely, giving defaults where they make
   * no sense; only the normal form, re-encoded byte for byte, is accepted. */
  g_variant_get (answer, "(u&s&s)", &n, &name, &text);
  normal = stm32_send_wire_answer_new (n, name, text);
  if (n == 0 || !g_bytes_equal (packet, normal))
    return FALSE;
  *count = n;
  *error_name = g_strdup (name);
  *message = g_strdup (text);
  return TRUE;
}
