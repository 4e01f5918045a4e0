/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-channel-wire.h"

#include <string.h>

static GVariant *
bytestring (GBytes *frame)
{
  return g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, frame, TRUE);
}

static GBytes *
serialize (GVariant *floating)
{
  g_autoptr (GVariant) value = g_variant_ref_sink (floating);

  return g_variant_get_data_as_bytes (value);
}

/* Whether @packet is exactly the normal form @floating serializes to. */
static gboolean
same_bytes (GBytes *packet, GVariant *floating)
{
  g_autoptr (GBytes) normal = serialize (floating);

  return g_bytes_equal (packet, normal);
}

/* Tuples are built and taken apart child by child, not through format
 * strings: GLib scans and checks a format string at every call, and on the
 * channel that was most of what the wire cost per transaction. */
static GVariant *
request_value (GBytes *frame, guint32 timeout_ms)
{
  GVariant *children[] = { bytestring (frame), g_variant_new_uint32 (timeout_ms) };

  return g_variant_new_tuple (children, G_N_ELEMENTS (children));
}

static GVariant *
reply_value (GBytes *frame, const char *error_name, const char *message)
{
  GVariant *children[] = { bytestring (frame), g_variant_new_string (error_name),
                           g_variant_new_string (message) };

  return g_variant_new_tuple (children, G_N_ELEMENTS (children));
}

static GBytes *
child_bytes (GVariant *tuple, gsize index)
{
  g_autoptr (GVariant) child = g_variant_get_child_value (tuple, index);

  return g_variant_get_data_as_bytes (child);
}

GBytes *
stm32_channel_request_new (GBytes *frame, guint32 timeout_ms)
{
  return serialize (request_value (frame, timeout_ms));
}

gboolean
stm32_channel_request_parse (GBytes *packet, GBytes **frame, guint32 *timeout_ms)
{
  /* Untrusted: GLib reads any bytes safely, giving defaults where they make no sense. */
  g_autoptr (GVariant) request =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayu)"), packet, FALSE));
  g_autoptr (GVariant) timeout_value = g_variant_get_child_value (request, 1);
  g_autoptr (GBytes) frame_bytes = child_bytes (request, 0);
  guint32 timeout = g_variant_get_uint32 (timeout_value);

  if (!same_bytes (packet, request_value (frame_bytes, timeout)))
    return FALSE;
  *frame = g_steal_pointer (&frame_bytes);
  *timeout_ms = timeout;
  return TRUE;
}

GBytes *
stm32_channel_reply_new (GBytes *frame, const char *error_name, const char *message)
{
  return serialize (reply_value (frame, error_name, message));
}

gboolean
stm32_channel_reply_parse (GBytes *packet, GBytes **frame, char **error_name, char **message)
{
  g_autoptr (GVariant) reply =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayss)"), packet, FALSE));
  g_autoptr (GVariant) name_value = g_variant_get_child_value (reply, 1);
  g_autoptr (GVariant) text_value = g_variant_get_child_value (reply, 2);
  g_autoptr (GBytes) frame_bytes = child_bytes (reply, 0);
  const char *name = g_variant_get_string (name_value, NULL);
  const char *text = g_variant_get_string (text_value, NULL);

  if (!same_bytes (packet, reply_value (frame_bytes, name, text)))
    return FALSE;
  *frame = g_steal_pointer (&frame_bytes);
  *error_name = g_strdup (name);
  *message = g_strdup (text);
  return TRUE;
}
