/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the transaction channel's packets (dbus/stm32-channel-wire.c):
 * any bytes, as a request and as a reply. The parsers must agree exactly
 * with GLib's own g_variant_is_normal_form() (they replace it for speed),
 * and what they accept must encode back to the same bytes, within the
 * overheads stm32d sizes its socket buffers by.
 */
#include <stdint.h>
#include <stdlib.h>

#include "stm32-channel-wire.h"

static void
check_request (GBytes *packet)
{
  g_autoptr (GVariant) value =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayu)"), packet, FALSE));
  g_autoptr (GBytes) frame = NULL;
  g_autoptr (GBytes) again = NULL;
  guint32 timeout_ms;
  gboolean parsed = stm32_channel_request_parse (packet, &frame, &timeout_ms);

  if (parsed != g_variant_is_normal_form (value))
    abort ();
  if (!parsed)
    return;
  again = stm32_channel_request_new (frame, timeout_ms);
  if (!g_bytes_equal (again, packet) ||
      g_bytes_get_size (packet) > g_bytes_get_size (frame) + STM32_CHANNEL_REQUEST_OVERHEAD)
    abort ();
}

static void
check_reply (GBytes *packet)
{
  g_autoptr (GVariant) value =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayss)"), packet, FALSE));
  g_autoptr (GBytes) frame = NULL;
  g_autoptr (GBytes) again = NULL;
  g_autofree char *name = NULL;
  g_autofree char *message = NULL;
  gboolean parsed = stm32_channel_reply_parse (packet, &frame, &name, &message);

  if (parsed != g_variant_is_normal_form (value))
    abort ();
  if (!parsed)
    return;
  again = stm32_channel_reply_new (frame, name, message);
  if (!g_bytes_equal (again, packet) ||
      (name[0] == '\0' && message[0] == '\0' &&
       g_bytes_get_size (packet) > g_bytes_get_size (frame) + STM32_CHANNEL_REPLY_OVERHEAD))
    abort ();
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) packet = g_bytes_new (data, size);

  check_request (packet);
  check_reply (packet);
  return 0;
}
