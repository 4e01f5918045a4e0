/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <glib.h>

#include "stm32-channel-wire.h"

/*
 * The transaction channel's parsers stand in for GLib's
 * g_variant_is_normal_form(): whatever the other process sends, each must
 * give GLib's verdict. tests/fuzz/fuzz-channel-wire.c searches for a
 * disagreement; these cases pin the shapes where one was found or is most
 * likely: the shortest packets (an empty one has no data pointer at all)
 * and the sizes where the framing offsets change width.
 */

static gboolean
glib_says_normal (const char *type, GBytes *packet)
{
  g_autoptr (GVariant) value =
      g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (type), packet, FALSE));

  return g_variant_is_normal_form (value);
}

static void
assert_agrees_with_glib (GBytes *packet)
{
  g_autoptr (GBytes) request_frame = NULL;
  g_autoptr (GBytes) reply_frame = NULL;
  g_autofree char *name = NULL;
  g_autofree char *message = NULL;
  guint32 timeout_ms = 0;

  g_assert_cmpint (stm32_channel_request_parse (packet, &request_frame, &timeout_ms), ==,
                   glib_says_normal ("(ayu)", packet));
  g_assert_cmpint (stm32_channel_reply_parse (packet, &reply_frame, &name, &message), ==,
                   glib_says_normal ("(ayss)", packet));
}

/* Every packet of up to two bytes, and the empty one as GBytes makes it
 * from no data at all. */
static void
test_short_packets (void)
{
  g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);

  g_assert_null (g_bytes_get_data (empty, NULL));
  assert_agrees_with_glib (empty);
  for (guint value = 0; value < 256; value++)
    {
      guint8 byte = (guint8) value;
      g_autoptr (GBytes) packet = g_bytes_new (&byte, 1);

      assert_agrees_with_glib (packet);
    }
  for (guint value = 0; value < 65536; value++)
    {
      guint8 bytes[2] = { (guint8) value, (guint8) (value >> 8) };
      g_autoptr (GBytes) packet = g_bytes_new (bytes, sizeof bytes);

      assert_agrees_with_glib (packet);
    }
}

/* A packet one byte short, one byte long, or with any one byte of its
 * padding and offsets changed is judged as GLib judges it. */
static void
assert_neighbours_agree (GBytes *packet, gsize frame_size)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (packet, &size);
  g_autofree guint8 *copy = g_malloc0 (size + 1);
  g_autoptr (GBytes) shorter = g_bytes_new (data, size - 1);
  g_autoptr (GBytes) longer = NULL;

  memcpy (copy, data, size);
  longer = g_bytes_new (copy, size + 1);
  assert_agrees_with_glib (packet);
  assert_agrees_with_glib (shorter);
  assert_agrees_with_glib (longer);
  for (gsize at = frame_size; at < size; at++)
    {
      g_autoptr (GBytes) changed = NULL;

      copy[at] ^= 0x5a;
      changed = g_bytes_new (copy, size);
      assert_agrees_with_glib (changed);
      copy[at] ^= 0x5a;
    }
}

static void
test_offset_widths (void)
{
  /* Around 256 and 65,536 bytes, where an offset grows from 1 to 2 to 4 bytes. */
  static const gsize ranges[][2] = { { 0, 12 }, { 236, 260 }, { 65520, 65540 } };
  g_autofree guint8 *frame_data = g_malloc (65540);

  for (gsize i = 0; i < 65540; i++)
    frame_data[i] = (guint8) g_test_rand_int ();
  for (guint r = 0; r < G_N_ELEMENTS (ranges); r++)
    for (gsize frame_size = ranges[r][0]; frame_size < ranges[r][1]; frame_size++)
      {
        g_autoptr (GBytes) frame = g_bytes_new (frame_data, frame_size);
        g_autoptr (GBytes) request = stm32_channel_request_new (frame, 0x01020304);
        g_autoptr (GBytes) reply = stm32_channel_reply_new (frame, "", "");
        g_autoptr (GBytes) error_reply =
            stm32_channel_reply_new (frame, "org.stm32d.Error.Timeout", "no reply in 5 ms");
        g_autoptr (GBytes) parsed = NULL;
        guint32 timeout_ms = 0;

        g_assert_true (stm32_channel_request_parse (request, &parsed, &timeout_ms));
        g_assert_true (g_bytes_equal (parsed, frame));
        g_assert_cmpuint (timeout_ms, ==, 0x01020304);
        assert_neighbours_agree (request, frame_size);
        assert_neighbours_agree (reply, frame_size);
        assert_neighbours_agree (error_reply, frame_size);
      }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/channel-wire/short-packets", test_short_packets);
  g_test_add_func ("/channel-wire/offset-widths", test_offset_widths);
  return g_test_run ();
}
