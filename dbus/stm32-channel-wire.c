/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-channel-wire.h"

#include <string.h>

/*
 * The two tuples are laid out here by GVariant's serialization rules rather
 * than through GVariant: building and taking apart GVariants (type info
 * lookups, a GBytes per child, slice allocations) was most of what the wire
 * cost per transaction, on both sides of the channel and on its critical
 * path. The layout, for a tuple whose children are an "ay", then fixed or
 * string children:
 *
 *   the children, each at its alignment (zero padding between), then the
 *   end offset of every variable-sized child but the last, in reverse order,
 *   little-endian, each as wide as the whole tuple's size needs (1, 2, 4 or
 *   8 bytes: the narrowest that can address it, offsets included).
 *
 * A packet is parsed by reading it that way and encoding what was read
 * again: it is accepted only if that gives the same bytes, i.e. it is the
 * normal form GLib itself would write (the fuzz harness holds the two to
 * each other).
 */

/* How wide the framing offsets of a container of @size bytes are. */
static gsize
offset_size (gsize size)
{
  if (size > G_MAXUINT32)
    return 8;
  if (size > G_MAXUINT16)
    return 4;
  if (size > G_MAXUINT8)
    return 2;
  return size > 0 ? 1 : 0;
}

/* The size of a container with @body bytes and @n_offsets framing offsets. */
static gsize
total_size (gsize body, gsize n_offsets)
{
  if (body + n_offsets <= G_MAXUINT8)
    return body + n_offsets;
  if (body + 2 * n_offsets <= G_MAXUINT16)
    return body + 2 * n_offsets;
  if (body + 4 * n_offsets <= G_MAXUINT32)
    return body + 4 * n_offsets;
  return body + 8 * n_offsets;
}

static void
write_offset (guint8 *at, gsize value, gsize width)
{
  for (gsize i = 0; i < width; i++)
    at[i] = (guint8) (value >> (8 * i));
}

static gsize
read_offset (const guint8 *at, gsize width)
{
  guint64 value = 0;

  for (gsize i = 0; i < width; i++)
    value |= (guint64) at[i] << (8 * i);
  return (gsize) value;
}

GBytes *
stm32_channel_request_new (GBytes *frame, guint32 timeout_ms)
{
  gsize frame_size;
  const guint8 *frame_data = g_bytes_get_data (frame, &frame_size);
  gsize u_at = (frame_size + 3) & ~(gsize) 3;
  gsize body = u_at + sizeof timeout_ms;
  gsize size = total_size (body, 1);
  guint8 *packet = g_malloc0 (size);

  if (frame_size > 0)
    memcpy (packet, frame_data, frame_size);
  /* In the host's byte order, as GVariant keeps a "u". */
  memcpy (packet + u_at, &timeout_ms, sizeof timeout_ms);
  write_offset (packet + body, frame_size, size - body);
  return g_bytes_new_take (packet, size);
}

gboolean
stm32_channel_request_parse (GBytes *packet, GBytes **frame, guint32 *timeout_ms)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (packet, &size);
  gsize width = offset_size (size), frame_size, u_at;
  guint32 timeout;
  g_autoptr (GBytes) frame_bytes = NULL;
  g_autoptr (GBytes) again = NULL;

  /* Untrusted: every offset is checked before it is followed. */
  if (size < width + sizeof timeout)
    return FALSE;
  frame_size = read_offset (data + size - width, width);
  if (frame_size > size - width - sizeof timeout)
    return FALSE;
  u_at = (frame_size + 3) & ~(gsize) 3;
  if (u_at > size - width - sizeof timeout)
    return FALSE;
  memcpy (&timeout, data + u_at, sizeof timeout);
  frame_bytes = g_bytes_new_from_bytes (packet, 0, frame_size);
  again = stm32_channel_request_new (frame_bytes, timeout);
  if (!g_bytes_equal (packet, again))
    return FALSE;
  *frame = g_steal_pointer (&frame_bytes);
  *timeout_ms = timeout;
  return TRUE;
}

GBytes *
stm32_channel_reply_new (GBytes *frame, const char *error_name, const char *message)
{
  gsize frame_size;
  const guint8 *frame_data = g_bytes_get_data (frame, &frame_size);
  gsize name_size = strlen (error_name) + 1, message_size = strlen (message) + 1;
  gsize body = frame_size + name_size + message_size;
  gsize size = total_size (body, 2);
  gsize width = size - body;
  guint8 *packet = g_malloc (size);

  if (frame_size > 0)
    memcpy (packet, frame_data, frame_size);
  memcpy (packet + frame_size, error_name, name_size);
  memcpy (packet + frame_size + name_size, message, message_size);
  /* The first child's end comes last. */
  write_offset (packet + body, frame_size + name_size, width / 2);
  write_offset (packet + body + width / 2, frame_size, width / 2);
  return g_bytes_new_take (packet, size);
}

/* A GVariant "s" in normal form: UTF-8, its only nul at its end. */
static gboolean
is_string (const guint8 *data, gsize size)
{
  return size > 0 && data[size - 1] == '\0' && memchr (data, '\0', size - 1) == NULL &&
         g_utf8_validate ((const char *) data, (gssize) size - 1, NULL);
}

gboolean
stm32_channel_reply_parse (GBytes *packet, GBytes **frame, char **error_name, char **message)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (packet, &size);
  gsize width = offset_size (size), frame_end, name_end;
  g_autoptr (GBytes) frame_bytes = NULL;
  g_autoptr (GBytes) again = NULL;
  const char *name, *text;

  /* Two offsets and two strings' nuls at least; this also keeps an empty
   * packet's NULL data from being offset. */
  if (size < 2 * width + 2)
    return FALSE;
  frame_end = read_offset (data + size - width, width);
  name_end = read_offset (data + size - 2 * width, width);
  if (frame_end > name_end || name_end > size - 2 * width)
    return FALSE;
  name = (const char *) data + frame_end;
  text = (const char *) data + name_end;
  if (!is_string (data + frame_end, name_end - frame_end) ||
      !is_string (data + name_end, size - 2 * width - name_end))
    return FALSE;
  frame_bytes = g_bytes_new_from_bytes (packet, 0, frame_end);
  again = stm32_channel_reply_new (frame_bytes, name, text);
  if (!g_bytes_equal (packet, again))
    return FALSE;
  *frame = g_steal_pointer (&frame_bytes);
  *error_name = g_strdup (name);
  *message = g_strdup (text);
  return TRUE;
}
