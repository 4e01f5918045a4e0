/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer harness for one framing's decoder and encoder, chosen at build
 * time with -DFUZZ_FRAMING=STM32_FRAMING_<NAME> (tests/fuzz/meson.build).
 *
 * Input: byte 0 picks MaxFrame, byte 1 seeds the split points, the rest is
 * what the board sent. Checked for every input:
 *  - the decoder never holds more than one frame's worth of bytes;
 *  - splitting the input anywhere changes nothing (frames, error);
 *  - a failed decoder stays failed;
 *  - the decoded frames encode again and decode to themselves;
 *  - the input taken as one frame either encodes and decodes to itself or is
 *    refused with FrameTooLarge / InvalidFrame for a reason that holds. */

#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "stm32-error.h"
#include "stm32-framer.h"

#ifndef FUZZ_FRAMING
#error "build with -DFUZZ_FRAMING=STM32_FRAMING_..."
#endif

#define IS_LINE (FUZZ_FRAMING == STM32_FRAMING_LINE || FUZZ_FRAMING == STM32_FRAMING_JSON)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

typedef struct
{
  GPtrArray *frames;
  int code; /* 0 if every feed succeeded */
} Outcome;

static void
outcome_clear (Outcome *o)
{
  g_clear_pointer (&o->frames, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Outcome, outcome_clear)

static gsize
pending_bound (gsize max_frame)
{
  switch (FUZZ_FRAMING)
    {
    case STM32_FRAMING_RAW:
      return 0;
    case STM32_FRAMING_LINE:
    case STM32_FRAMING_JSON:
      return max_frame + 1;
    case STM32_FRAMING_U16BE:
      return 2 + max_frame - 1;
    case STM32_FRAMING_U32BE:
    default:
      return 4 + max_frame - 1;
    }
}

/* Feed sizes from 1 to 128 bytes, drawn from a xorshift seeded by the input;
 * seed 0 feeds everything at once. */
static gsize
next_split (guint32 *state, gsize left)
{
  guint32 x = *state;

  if (x == 0)
    return left;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return MIN (left, 1 + (x >> 8) % (1u << (x & 7)));
}

static void
decode (const guint8 *data, gsize len, gsize max_frame, guint32 seed, Outcome *out)
{
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (FUZZ_FRAMING, max_frame);
  g_autoptr (GPtrArray) after = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;
  gsize off = 0;

  out->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  out->code = 0;
  while (off < len && error == NULL)
    {
      gsize n = next_split (&seed, len - off);

      if (!stm32_decoder_feed (decoder, data + off, n, out->frames, &error))
        g_assert_nonnull (error);
      g_assert_cmpuint (stm32_decoder_pending (decoder), <=, pending_bound (max_frame));
      off += n;
    }
  if (error == NULL)
    return;

  g_assert_true (g_error_matches (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE) ||
                 g_error_matches (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME));
  out->code = error->code;
  g_clear_error (&error);
  g_assert_false (stm32_decoder_feed (decoder, (const guint8 *) "\n", 1, after, &error));
  g_assert_error (error, STM32_ERROR, out->code);
  g_assert_cmpuint (after->len, ==, 0);
  g_assert_cmpuint (stm32_decoder_pending (decoder), ==, 0);
}

static GBytes *
concat (GPtrArray *frames)
{
  GByteArray *all = g_byte_array_new ();

  for (guint i = 0; i < frames->len; i++)
    g_byte_array_append (all, g_bytes_get_data (frames->pdata[i], NULL),
                         g_bytes_get_size (frames->pdata[i]));
  return g_byte_array_free_to_bytes (all);
}

/* Raw frames are the reads themselves, so only the byte stream must agree. */
static void
assert_same_frames (GPtrArray *a, GPtrArray *b)
{
  if (FUZZ_FRAMING == STM32_FRAMING_RAW)
    {
      g_autoptr (GBytes) ca = concat (a);
      g_autoptr (GBytes) cb = concat (b);

      g_assert_true (g_bytes_equal (ca, cb));
      return;
    }
  g_assert_cmpuint (a->len, ==, b->len);
  for (guint i = 0; i < a->len; i++)
    g_assert_true (g_bytes_equal (a->pdata[i], b->pdata[i]));
}

static void
check_frames (GPtrArray *frames, gsize max_frame)
{
  for (guint i = 0; i < frames->len; i++)
    {
      gsize n = g_bytes_get_size (frames->pdata[i]);

      g_assert_cmpuint (n, <=, max_frame);
      g_assert_true (FUZZ_FRAMING != STM32_FRAMING_RAW || n > 0);
      g_assert_true (!IS_LINE || n == 0 ||
                     memchr (g_bytes_get_data (frames->pdata[i], NULL), '\n', n) == NULL);
    }
}

/* The one frame a decoder delivers that may not be sent: a line that came
 * as "...\r\r\n", which an encoder cannot reproduce. */
static gboolean
ends_in_cr (GBytes *frame)
{
  gsize n;
  const guint8 *p = g_bytes_get_data (frame, &n);

  return IS_LINE && n > 0 && p[n - 1] == '\r';
}

static void
check_reencode (GPtrArray *frames, gsize max_frame)
{
  g_autoptr (GPtrArray) sendable = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GByteArray) wire = g_byte_array_new ();
  g_auto (Outcome) again = { 0 };

  for (guint i = 0; i < frames->len; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GBytes) enc =
          stm32_frame_encode (FUZZ_FRAMING, max_frame, frames->pdata[i], &error);

      if (enc == NULL)
        {
          g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME);
          g_assert_true (ends_in_cr (frames->pdata[i]));
          continue;
        }
      g_ptr_array_add (sendable, g_bytes_ref (frames->pdata[i]));
      g_byte_array_append (wire, g_bytes_get_data (enc, NULL), g_bytes_get_size (enc));
    }
  decode (wire->data, wire->len, max_frame, 0, &again);
  g_assert_cmpint (again.code, ==, 0);
  assert_same_frames (sendable, again.frames);
}

static void
check_encode_refusal (const guint8 *data, gsize len, gsize max_frame, const GError *error)
{
  gsize limit = FUZZ_FRAMING == STM32_FRAMING_U16BE ? MIN (max_frame, G_MAXUINT16) : max_frame;

  if (error->code == STM32_ERROR_FRAME_TOO_LARGE)
    {
      g_assert_cmpuint (len, >, limit);
      return;
    }
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME);
  g_assert_cmpuint (len, <=, limit);
  if (FUZZ_FRAMING == STM32_FRAMING_RAW)
    g_assert_cmpuint (len, ==, 0);
  else if (FUZZ_FRAMING == STM32_FRAMING_LINE)
    g_assert_true (len > 0 && (memchr (data, '\n', len) != NULL || data[len - 1] == '\r'));
  else
    g_assert_true (FUZZ_FRAMING == STM32_FRAMING_JSON);
}

static void
check_encode (const guint8 *data, gsize len, gsize max_frame)
{
  g_autoptr (GBytes) frame = g_bytes_new (data, len);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) enc = stm32_frame_encode (FUZZ_FRAMING, max_frame, frame, &error);
  g_autoptr (GPtrArray) expected = g_ptr_array_new ();
  g_auto (Outcome) back = { 0 };

  if (enc == NULL)
    {
      check_encode_refusal (data, len, max_frame, error);
      return;
    }
  g_ptr_array_add (expected, frame);
  decode (g_bytes_get_data (enc, NULL), g_bytes_get_size (enc), max_frame, 0, &back);
  g_assert_cmpint (back.code, ==, 0);
  assert_same_frames (expected, back.frames);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const gsize max_frames[] = { 1, 2, 3, 4, 7, 16, 64, 255, 256, 1000, 4096, 65535, 65536 };
  g_auto (Outcome) split = { 0 };
  g_auto (Outcome) whole = { 0 };
  gsize max_frame;

  if (size < 2)
    return 0;
  max_frame = max_frames[data[0] % G_N_ELEMENTS (max_frames)];
  decode (data + 2, size - 2, max_frame, data[1] | 0x100u, &split);
  decode (data + 2, size - 2, max_frame, 0, &whole);

  g_assert_cmpint (split.code, ==, whole.code);
  assert_same_frames (split.frames, whole.frames);
  if (FUZZ_FRAMING == STM32_FRAMING_RAW)
    {
      g_autoptr (GBytes) stream = concat (whole.frames);

      g_assert_cmpmem (g_bytes_get_data (stream, NULL), g_bytes_get_size (stream), data + 2,
                       size - 2);
    }
  check_frames (split.frames, max_frame);
  check_reencode (split.frames, max_frame);
  check_encode (data + 2, size - 2, max_frame);
  return 0;
}
