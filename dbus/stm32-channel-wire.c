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

GBytes *
stm32_channel_request_new (GBytes *frame, guint32 timeout_ms)
{
  return serialize (g_variant_new ("(@ayu)", bytestring (frame), timeout_ms));
}

gboolean
stm32_channel_request_parse (GBytes *packet, GBytes **frame, guint32 *timeout_ms)
{
  /* Untrusted: GLib reads any bytes safely, giving defaults where they make no sense. */
  g_autoptr (GVariant) request =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayu)"), packet, FALSE));
  g_autoptr (GVariant) frame_value = NULL;
  g_autoptr (GBytes) frame_bytes = NULL;
  guint32 timeout;

  g_variant_get (request, "(@ayu)", &frame_value, &timeout);
  frame_bytes = g_variant_get_data_as_bytes (frame_value);
  if (!same_bytes (packet, g_variant_new ("(@ayu)", bytestring (frame_bytes), timeout)))
    return FALSE;
  *frame = g_steal_pointer (&frame_bytes);
  *timeout_ms = timeout;
  return TRUE;
}

GBytes *
stm32_channel_reply_new (GBytes *frame, const char *error_name, const char *message)
{
  return serialize (g_variant_new ("(@ayss)", bytestring (frame), error_name, message));
}

gboolean
stm32_channel_reply_parse (GBytes *packet, GBytes **frame, char **error_name, char **message)
{
  g_autoptr (GVariant) reply =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayss)"), packet, FALSE));
  g_autoptr (GVariant) frame_value = NULL;
  g_autoptr (GBytes) frame_bytes = NULL;
  const char *name, *text;

  g_variant_get (reply, "(@ay&s&s)", &frame_value, &name, &text);
  frame_bytes = g_variant_get_data_as_bytes (frame_value);
  if (!same_bytes (packet, g_variant_new ("(@ayss)", bytestring (frame_bytes), name, text)))
    return FALSE;
  *frame = g_steal_pointer (&frame_bytes);
  *error_name = g_strdup (name);
  *message = g_strdup (text);
  return TRUE;
}
