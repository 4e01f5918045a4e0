/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <glib.h>

#include "stm32-error.h"
#include "stm32-framer.h"

/* Every random choice comes from g_test_rand_*, so "--seed" replays a failure. */

typedef struct
{
  Stm32Framing framing;
  const char *name;
} FramingCase;

static const FramingCase framing_cases[] = {
  { STM32_FRAMING_RAW, "raw" },     { STM32_FRAMING_LINE, "line" },
  { STM32_FRAMING_U16BE, "u16be" }, { STM32_FRAMING_U32BE, "u32be" },
  { STM32_FRAMING_JSON, "json" },
};

#define N_ROUNDS 150

static GPtrArray *
frame_array_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
}

static GBytes *
bytes_from_string (const char *s)
{
  return g_bytes_new (s, strlen (s));
}

static gsize
prefix_size (Stm32Framing framing)
{
  switch (framing)
    {
    case STM32_FRAMING_U16BE:
      return 2;
    case STM32_FRAMING_U32BE:
      return 4;
    case STM32_FRAMING_RAW:
    case STM32_FRAMING_LINE:
    case STM32_FRAMING_JSON:
    default:
      return 0;
    }
}

/* The most a decoder may hold between feeds: a line plus a '\r' that may
 * belong to its "\r\n" end, or a prefix plus all but the last payload byte. */
static gsize
pending_bound (Stm32Framing framing, gsize max_frame)
{
  if (framing == STM32_FRAMING_RAW)
    return 0;
  if (framing == STM32_FRAMING_LINE || framing == STM32_FRAMING_JSON)
    return max_frame + 1;
  return prefix_size (framing) + max_frame - 1;
}

/* ---- random frames ---- */

static gsize
random_length (gsize min, gsize max)
{
  guint pick = g_test_rand_int_range (0, 10);

  if (max <= min)
    return min;
  if (pick == 0)
    return max;
  if (pick == 1)
    return min;
  if (pick < 4)
    return min + g_test_rand_int_range (0, (gint32) MIN (max - min, (gsize) G_MAXINT32 - 1) + 1);
  return min + g_test_rand_int_range (0, (gint32) MIN (max - min, 40) + 1);
}

/* Any bytes for a line frame except '\n', and no '\r' at the end (see
 * /framer/line/trailing-cr), so that it survives a round trip. */
static GBytes *
random_line (gsize len)
{
  guint8 *data = g_malloc (len + 1);

  for (gsize i = 0; i < len; i++)
    {
      do
        data[i] = (guint8) g_test_rand_int_range (0, 256);
      while (data[i] == '\n' || (i == len - 1 && data[i] == '\r'));
    }
  /* Weighs in some '\r' in the middle, which must be kept. */
  if (len > 2 && g_test_rand_bit ())
    data[g_test_rand_int_range (0, (gint32) len - 1)] = '\r';
  return g_bytes_new_take (data, len);
}

static GBytes *
random_binary (gsize len)
{
  guint8 *data = g_malloc (len + 1);

  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) g_test_rand_int_range (0, 256);
  return g_bytes_new_take (data, len);
}

static void
random_ws (GString *s)
{
  static const char *const ws[] = { "", "", "", " ", "\t", "  \t" };

  g_string_append (s, ws[g_test_rand_int_range (0, G_N_ELEMENTS (ws))]);
}

static void
random_json_string (GString *s)
{
  static const char *const pieces[] = {
    "a",       "Z",   "0",   " ",    "é",   "€",   "😀",       "\\\"",    "\\\\",
    "\\/",     "\\b", "\\f", "\\n",  "\\r", "\\t", "\\u0000", "\\u00e9", "\\uD83D\\uDE00",
    "\\uffff", "'",   "/*",  "\x7f",
  };
  guint n = g_test_rand_int_range (0, 8);

  g_string_append_c (s, '"');
  for (guint i = 0; i < n; i++)
    g_string_append (s, pieces[g_test_rand_int_range (0, G_N_ELEMENTS (pieces))]);
  g_string_append_c (s, '"');
}

static void random_json_value (GString *s, guint depth);

static void
random_json_container (GString *s, guint depth, gboolean object)
{
  guint n = g_test_rand_int_range (0, 4);

  g_string_append_c (s, object ? '{' : '[');
  for (guint i = 0; i < n; i++)
    {
      if (i > 0)
        g_string_append_c (s, ',');
      random_ws (s);
      if (object)
        {
          random_json_string (s);
          random_ws (s);
          g_string_append_c (s, ':');
          random_ws (s);
        }
      random_json_value (s, depth + 1);
      random_ws (s);
    }
  g_string_append_c (s, object ? '}' : ']');
}

static void
random_json_value (GString *s, guint depth)
{
  static const char *const scalars[] = { "null",   "true", "false",  "0",       "-0",          "42",
                                         "-17.25", "1e9",  "2.5E-3", "-0.0e+0", "123456789012" };
  guint kind = g_test_rand_int_range (0, depth < 4 ? 5 : 3);

  if (kind == 0)
    g_string_append (s, scalars[g_test_rand_int_range (0, G_N_ELEMENTS (scalars))]);
  else if (kind == 1)
    g_string_append_printf (s, "%d", g_test_rand_int ());
  else if (kind == 2)
    random_json_string (s);
  else
    random_json_container (s, depth, kind == 3);
}

static GBytes *
random_json (gsize max_frame)
{
  for (guint attempt = 0; attempt < 20; attempt++)
    {
      g_autoptr (GString) s = g_string_new (NULL);

      random_ws (s);
      random_json_value (s, 0);
      random_ws (s);
      if (s->len <= max_frame)
        return g_string_free_to_bytes (g_steal_pointer (&s));
    }
  return bytes_from_string ("0");
}

static GBytes *
random_frame (Stm32Framing framing, gsize max_frame)
{
  switch (framing)
    {
    case STM32_FRAMING_RAW:
      return random_binary (random_length (1, max_frame));
    case STM32_FRAMING_LINE:
      return random_line (random_length (0, max_frame));
    case STM32_FRAMING_U16BE:
      return random_binary (random_length (0, MIN (max_frame, G_MAXUINT16)));
    case STM32_FRAMING_U32BE:
      return random_binary (random_length (0, max_frame));
    case STM32_FRAMING_JSON:
    default:
      return random_json (max_frame);
    }
}

static gsize
random_max_frame (Stm32Framing framing)
{
  static const gsize choices[] = { 1, 2, 3, 7, 64, 255, 256, 1000, 65535, 65536 };

  if (framing == STM32_FRAMING_JSON)
    return 4096 + g_test_rand_int_range (0, 100);
  return choices[g_test_rand_int_range (0, G_N_ELEMENTS (choices))];
}

/* ---- feeding ---- */

typedef enum
{
  SPLIT_BYTES, /* one byte per feed */
  SPLIT_SMALL, /* 1 to 8 bytes */
  SPLIT_ANY,   /* anywhere */
  SPLIT_NONE,  /* all at once */
  N_SPLITS,
} SplitMode;

/* Feeds @wire to @decoder in pieces, checking the memory bound after each. */
static gboolean
feed_split (Stm32Decoder *decoder, Stm32Framing framing, gsize max_frame, const guint8 *wire,
            gsize len, SplitMode mode, GPtrArray *out, GError **error)
{
  gsize off = 0;

  while (off < len)
    {
      gsize left = len - off, n;

      if (mode == SPLIT_BYTES)
        n = 1;
      else if (mode == SPLIT_SMALL)
        n = MIN (left, 8) - g_test_rand_int_range (0, (gint32) MIN (left, 8));
      else if (mode == SPLIT_ANY)
        n = 1 + g_test_rand_int_range (0, (gint32) MIN (left, (gsize) G_MAXINT32 - 1));
      else
        n = left;
      if (!stm32_decoder_feed (decoder, wire + off, n, out, error))
        return FALSE;
      g_assert_cmpuint (stm32_decoder_pending (decoder), <=, pending_bound (framing, max_frame));
      off += n;
    }
  return TRUE;
}

static GPtrArray *
decode_all (Stm32Framing framing, gsize max_frame, const guint8 *wire, gsize len, SplitMode mode)
{
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (framing, max_frame);
  g_autoptr (GPtrArray) out = frame_array_new ();
  g_autoptr (GError) error = NULL;

  feed_split (decoder, framing, max_frame, wire, len, mode, out, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (stm32_decoder_pending (decoder), ==, 0);
  return g_steal_pointer (&out);
}

static void
assert_frames_equal (GPtrArray *expected, GPtrArray *got)
{
  g_assert_cmpuint (got->len, ==, expected->len);
  for (guint i = 0; i < got->len; i++)
    {
      gsize elen, glen;
      const guint8 *e = g_bytes_get_data (expected->pdata[i], &elen);
      const guint8 *g = g_bytes_get_data (got->pdata[i], &glen);

      g_assert_cmpmem (g, glen, e, elen);
    }
}

static void
assert_frame_is (GPtrArray *frames, guint i, const char *expected)
{
  gsize len;
  const char *data;

  g_assert_cmpuint (frames->len, >, i);
  data = g_bytes_get_data (frames->pdata[i], &len);
  g_assert_cmpmem (data, len, expected, strlen (expected));
}

/* Raw has no boundaries: each feed comes out as it went in, cut at MaxFrame. */
static void
assert_raw_stream (GPtrArray *sent, GPtrArray *got, gsize max_frame)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  g_autoptr (GByteArray) b = g_byte_array_new ();

  for (guint i = 0; i < sent->len; i++)
    g_byte_array_append (a, g_bytes_get_data (sent->pdata[i], NULL),
                         g_bytes_get_size (sent->pdata[i]));
  for (guint i = 0; i < got->len; i++)
    {
      gsize len = g_bytes_get_size (got->pdata[i]);

      g_assert_cmpuint (len, >, 0);
      g_assert_cmpuint (len, <=, max_frame);
      g_byte_array_append (b, g_bytes_get_data (got->pdata[i], NULL), len);
    }
  g_assert_cmpmem (b->data, b->len, a->data, a->len);
}

static GBytes *
encode_ok (Stm32Framing framing, gsize max_frame, GBytes *frame)
{
  g_autoptr (GError) error = NULL;
  GBytes *wire = stm32_frame_encode (framing, max_frame, frame, &error);

  g_assert_no_error (error);
  g_assert_nonnull (wire);
  return wire;
}

static void
assert_encode_fails (Stm32Framing framing, gsize max_frame, GBytes *frame, int code,
                     const char *in_message)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) wire = stm32_frame_encode (framing, max_frame, frame, &error);

  g_assert_error (error, STM32_ERROR, code);
  g_assert_null (wire);
  if (in_message != NULL && strstr (error->message, in_message) == NULL)
    g_error ("“%s” does not contain “%s”", error->message, in_message);
}

/* Feeds @wire at once; returns the frames and sets @error as the decoder did. */
static GPtrArray *
decode_failing (Stm32Framing framing, gsize max_frame, const char *wire, gsize len, int code)
{
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (framing, max_frame);
  g_autoptr (GPtrArray) out = frame_array_new ();
  g_autoptr (GError) error = NULL;

  g_assert_false (stm32_decoder_feed (decoder, (const guint8 *) wire, len, out, &error));
  g_assert_error (error, STM32_ERROR, code);
  return g_steal_pointer (&out);
}

/* A valid frame of exactly @len bytes. */
static GBytes *
exact_frame (Stm32Framing framing, gsize len)
{
  g_autofree char *s = NULL;

  switch (framing)
    {
    case STM32_FRAMING_LINE:
      return g_bytes_new_take (memset (g_malloc (len + 1), 'x', len), len);
    case STM32_FRAMING_JSON:
      if (len == 1)
        return bytes_from_string ("7");
      s = g_malloc (len + 1);
      memset (s, 'x', len);
      s[0] = s[len - 1] = '"';
      return g_bytes_new (s, len);
    case STM32_FRAMING_RAW:
    case STM32_FRAMING_U16BE:
    case STM32_FRAMING_U32BE:
    default:
      return random_binary (len);
    }
}

/* ---- properties every framing has ---- */

static void
test_roundtrip_splits (gconstpointer data)
{
  const FramingCase *fc = data;

  for (guint round = 0; round < N_ROUNDS; round++)
    {
      gsize max_frame = random_max_frame (fc->framing);
      guint n_frames = g_test_rand_int_range (0, 12);
      g_autoptr (GPtrArray) sent = frame_array_new ();
      g_autoptr (GByteArray) wire = g_byte_array_new ();

      for (guint i = 0; i < n_frames; i++)
        {
          GBytes *frame = random_frame (fc->framing, max_frame);
          g_autoptr (GBytes) encoded = encode_ok (fc->framing, max_frame, frame);

          g_ptr_array_add (sent, frame);
          g_byte_array_append (wire, g_bytes_get_data (encoded, NULL), g_bytes_get_size (encoded));
        }
      for (SplitMode mode = 0; mode < N_SPLITS; mode++)
        {
          g_autoptr (GPtrArray) got =
              decode_all (fc->framing, max_frame, wire->data, wire->len, mode);

          if (fc->framing == STM32_FRAMING_RAW)
            assert_raw_stream (sent, got, max_frame);
          else
            assert_frames_equal (sent, got);
        }
    }
}

static void
check_oversize (Stm32Framing framing, gsize max_frame)
{
  g_autoptr (GBytes) exact = exact_frame (framing, max_frame);
  g_autoptr (GBytes) over = exact_frame (framing, max_frame + 1);
  g_autoptr (GBytes) wire = encode_ok (framing, max_frame, exact);
  g_autoptr (GBytes) over_wire = encode_ok (framing, max_frame + 1, over);
  g_autofree char *message =
      g_strdup_printf ("frame of %" G_GSIZE_FORMAT " bytes exceeds MaxFrame (%" G_GSIZE_FORMAT ")",
                       max_frame + 1, max_frame);
  g_autoptr (GPtrArray) expected = frame_array_new ();

  g_ptr_array_add (expected, g_bytes_ref (exact));
  for (SplitMode mode = 0; mode < N_SPLITS; mode++)
    {
      g_autoptr (GPtrArray) got = decode_all (framing, max_frame, g_bytes_get_data (wire, NULL),
                                              g_bytes_get_size (wire), mode);
      g_assert_true (framing == STM32_FRAMING_RAW || got->len == 1);
      if (framing != STM32_FRAMING_RAW)
        assert_frames_equal (expected, got);
    }

  assert_encode_fails (framing, max_frame, over, STM32_ERROR_FRAME_TOO_LARGE, message);
  if (framing == STM32_FRAMING_RAW)
    {
      g_autoptr (GPtrArray) got =
          decode_all (framing, max_frame, g_bytes_get_data (over_wire, NULL),
                      g_bytes_get_size (over_wire), SPLIT_NONE);
      g_assert_cmpuint (got->len, ==, 2);
      g_assert_cmpuint (g_bytes_get_size (got->pdata[0]), ==, max_frame);
      g_assert_cmpuint (g_bytes_get_size (got->pdata[1]), ==, 1);
    }
  else
    {
      g_autoptr (GPtrArray) got =
          decode_failing (framing, max_frame, g_bytes_get_data (over_wire, NULL),
                          g_bytes_get_size (over_wire), STM32_ERROR_FRAME_TOO_LARGE);
      g_assert_cmpuint (got->len, ==, 0);
    }
}

static void
test_oversize (gconstpointer data)
{
  const FramingCase *fc = data;
  const gsize sizes[] = { 1, 2, 3, 100, 1 + g_test_rand_int_range (0, 3000), 65534 };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    check_oversize (fc->framing, sizes[i]);
}

static void
test_empty (gconstpointer data)
{
  const FramingCase *fc = data;
  g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (fc->framing, 16);
  g_autoptr (GPtrArray) out = frame_array_new ();
  g_autoptr (GBytes) wire = NULL;
  g_autoptr (GError) error = NULL;

  /* An empty read is nothing, in any framing. */
  g_assert_true (stm32_decoder_feed (decoder, NULL, 0, out, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out->len, ==, 0);

  if (fc->framing == STM32_FRAMING_RAW)
    {
      assert_encode_fails (fc->framing, 16, empty, STM32_ERROR_INVALID_FRAME, "nothing to send");
      return;
    }
  if (fc->framing == STM32_FRAMING_JSON)
    {
      assert_encode_fails (fc->framing, 16, empty, STM32_ERROR_INVALID_FRAME, "json");
      g_clear_pointer (&out, g_ptr_array_unref);
      out = decode_failing (fc->framing, 16, "\n", 1, STM32_ERROR_INVALID_FRAME);
      g_assert_cmpuint (out->len, ==, 0);
      return;
    }
  wire = encode_ok (fc->framing, 16, empty);
  g_assert_cmpuint (g_bytes_get_size (wire), ==, MAX (prefix_size (fc->framing), 1));
  for (guint i = 0; i < 3; i++)
    g_assert_true (stm32_decoder_feed (decoder, g_bytes_get_data (wire, NULL),
                                       g_bytes_get_size (wire), out, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpuint (g_bytes_get_size (out->pdata[i]), ==, 0);
}

/* Bytes that break @framing's rules for a decoder with MaxFrame 8. */
static GByteArray *
violation (Stm32Framing framing, int *code)
{
  GByteArray *wire = g_byte_array_new ();

  switch (framing)
    {
    case STM32_FRAMING_JSON:
      *code = STM32_ERROR_INVALID_FRAME;
      g_byte_array_append (wire, (const guint8 *) "{\"a\":\n", 6);
      break;
    case STM32_FRAMING_LINE:
      *code = STM32_ERROR_FRAME_TOO_LARGE;
      g_byte_array_append (wire, (const guint8 *) "123456789\n", 10);
      break;
    case STM32_FRAMING_U16BE:
      *code = STM32_ERROR_FRAME_TOO_LARGE;
      g_byte_array_append (wire, (const guint8 *) "\0\x09", 2);
      g_byte_array_append (wire, (const guint8 *) "123456789", 9);
      break;
    case STM32_FRAMING_U32BE:
    case STM32_FRAMING_RAW:
    default:
      *code = STM32_ERROR_FRAME_TOO_LARGE;
      g_byte_array_append (wire, (const guint8 *) "\0\0\0\x09", 4);
      g_byte_array_append (wire, (const guint8 *) "123456789", 9);
      break;
    }
  return wire;
}

static void
append_encoded (GByteArray *wire, Stm32Framing framing, const char *frame)
{
  g_autoptr (GBytes) bytes = bytes_from_string (frame);
  g_autoptr (GBytes) encoded = encode_ok (framing, 8, bytes);

  g_byte_array_append (wire, g_bytes_get_data (encoded, NULL), g_bytes_get_size (encoded));
}

static void
test_frames_before_violation (gconstpointer data)
{
  const FramingCase *fc = data;
  int code;
  g_autoptr (GByteArray) bad = violation (fc->framing, &code);
  g_autoptr (GByteArray) wire = g_byte_array_new ();
  g_autoptr (GPtrArray) out = NULL;

  append_encoded (wire, fc->framing, "1");
  append_encoded (wire, fc->framing, "[2]");
  g_byte_array_append (wire, bad->data, bad->len);
  append_encoded (wire, fc->framing, "3");

  out = decode_failing (fc->framing, 8, (const char *) wire->data, wire->len, code);
  g_assert_cmpuint (out->len, ==, 2);
  assert_frame_is (out, 0, "1");
  assert_frame_is (out, 1, "[2]");
}

static void
test_stays_failed (gconstpointer data)
{
  const FramingCase *fc = data;
  int code;
  g_autoptr (GByteArray) bad = violation (fc->framing, &code);
  g_autoptr (GByteArray) good = g_byte_array_new ();
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (fc->framing, 8);
  g_autoptr (GPtrArray) out = frame_array_new ();
  g_autoptr (GError) error = NULL;
  gsize fed = 0;

  /* Byte by byte, the violation is seen at some byte and never forgotten. */
  while (fed < bad->len && stm32_decoder_feed (decoder, bad->data + fed, 1, out, &error))
    fed++;
  g_assert_error (error, STM32_ERROR, code);
  g_assert_cmpuint (fed, <, bad->len);
  g_assert_cmpuint (stm32_decoder_pending (decoder), ==, 0);

  append_encoded (good, fc->framing, "4");
  for (guint i = 0; i < 3; i++)
    {
      g_clear_error (&error);
      g_assert_false (stm32_decoder_feed (decoder, good->data, good->len, out, &error));
      g_assert_error (error, STM32_ERROR, code);
    }
  g_assert_cmpuint (out->len, ==, 0);
  g_assert_cmpuint (stm32_decoder_pending (decoder), ==, 0);
}

/* ---- line ---- */

static void
test_line_wire_format (void)
{
  g_autoptr (GBytes) frame = bytes_from_string ("a\rb c");
  g_autoptr (GBytes) wire = encode_ok (STM32_FRAMING_LINE, 16, frame);

  g_assert_cmpmem (g_bytes_get_data (wire, NULL), g_bytes_get_size (wire), "a\rb c\n", 6);
}

static void
test_line_crlf (void)
{
  static const char wire[] = "a\r\nb\n\r\n\r\r\nc\rd\n\n";
  static const char *const expected[] = { "a", "b", "", "\r", "c\rd", "" };

  for (SplitMode mode = 0; mode < N_SPLITS; mode++)
    {
      g_autoptr (GPtrArray) got =
          decode_all (STM32_FRAMING_LINE, 8, (const guint8 *) wire, sizeof wire - 1, mode);

      g_assert_cmpuint (got->len, ==, G_N_ELEMENTS (expected));
      for (guint i = 0; i < got->len; i++)
        assert_frame_is (got, i, expected[i]);
    }
}

/* A '\r' one byte past MaxFrame may be the start of "\r\n"; the byte after it decides. */
static void
test_line_crlf_at_limit (void)
{
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (STM32_FRAMING_LINE, 3);
  g_autoptr (GPtrArray) out = frame_array_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (stm32_decoder_feed (decoder, (const guint8 *) "abc\r", 4, out, &error));
  g_assert_cmpuint (stm32_decoder_pending (decoder), ==, 4);
  g_assert_true (stm32_decoder_feed (decoder, (const guint8 *) "\nxyz\r", 5, out, &error));
  g_assert_no_error (error);
  assert_frame_is (out, 0, "abc");
  g_assert_false (stm32_decoder_feed (decoder, (const guint8 *) "z", 1, out, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE);
  g_assert_cmpuint (out->len, ==, 1);
}

static void
test_line_newline_inside (void)
{
  g_autoptr (GBytes) frame = bytes_from_string ("hello world\nbye");
  g_autoptr (GBytes) json = bytes_from_string ("[1,\n2]");

  assert_encode_fails (STM32_FRAMING_LINE, 64, frame, STM32_ERROR_INVALID_FRAME,
                       "line frame contains a newline at byte 11");
  assert_encode_fails (STM32_FRAMING_JSON, 64, json, STM32_ERROR_INVALID_FRAME,
                       "contains a newline at byte 3");
}

static void
test_line_trailing_cr (void)
{
  g_autoptr (GBytes) frame = bytes_from_string ("abc\r");
  g_autoptr (GBytes) json = bytes_from_string ("1\r");

  assert_encode_fails (STM32_FRAMING_LINE, 64, frame, STM32_ERROR_INVALID_FRAME,
                       "carriage return (byte 3)");
  assert_encode_fails (STM32_FRAMING_JSON, 64, json, STM32_ERROR_INVALID_FRAME, "carriage return");
}

/* A board that never sends '\n' must not make the daemon buffer without bound. */
static void
test_line_bounded_memory (void)
{
  const gsize max_frame = 1024, total = 1024 * 1024;
  g_autofree guint8 *flood = memset (g_malloc (total), 'a', total);
  const gsize chunks[] = { 1, 7, 4096 };

  for (guint c = 0; c < G_N_ELEMENTS (chunks); c++)
    {
      g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (STM32_FRAMING_LINE, max_frame);
      g_autoptr (GPtrArray) out = frame_array_new ();
      g_autoptr (GError) error = NULL;
      gsize fed = 0;

      while (fed < total && stm32_decoder_feed (decoder, flood + fed, chunks[c], out, &error))
        {
          fed += chunks[c];
          g_assert_cmpuint (stm32_decoder_pending (decoder), <=, max_frame + 1);
        }
      g_assert_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE);
      /* Failed on the chunk that brought it past MaxFrame, not later. */
      g_assert_cmpuint (fed, <=, max_frame);
      g_assert_cmpuint (fed + chunks[c], >, max_frame);
      g_assert_cmpuint (out->len, ==, 0);
    }
}

/* ---- length prefixes ---- */

static void
test_prefix_wire_format (void)
{
  g_autoptr (GBytes) frame = bytes_from_string ("abc");
  g_autoptr (GBytes) w16 = encode_ok (STM32_FRAMING_U16BE, 16, frame);
  g_autoptr (GBytes) w32 = encode_ok (STM32_FRAMING_U32BE, 16, frame);
  static const guint8 two[] = { 0x01, 0x02, 'x', 0x00, 0x00 };
  g_autoptr (GPtrArray) got = NULL;
  g_autoptr (GBytes) big = random_binary (0x0102);

  g_assert_cmpmem (g_bytes_get_data (w16, NULL), g_bytes_get_size (w16), "\0\3abc", 5);
  g_assert_cmpmem (g_bytes_get_data (w32, NULL), g_bytes_get_size (w32), "\0\0\0\3abc", 7);

  /* 0x0102 is big-endian 258, not 513. */
  {
    g_autoptr (GBytes) wire = encode_ok (STM32_FRAMING_U16BE, 1000, big);
    g_assert_cmpmem (g_bytes_get_data (wire, NULL), 2, two, 2);
  }
  got = decode_failing (STM32_FRAMING_U16BE, 257, (const char *) two, sizeof two,
                        STM32_ERROR_FRAME_TOO_LARGE);
  g_assert_cmpuint (got->len, ==, 0);
}

static void
test_u16be_limit (void)
{
  g_autoptr (GBytes) max16 = random_binary (G_MAXUINT16);
  g_autoptr (GBytes) over16 = random_binary (G_MAXUINT16 + 1);
  g_autoptr (GBytes) wire = encode_ok (STM32_FRAMING_U16BE, 65536, max16);
  g_autoptr (GBytes) wire32 = encode_ok (STM32_FRAMING_U32BE, 65536, over16);
  g_autoptr (GPtrArray) got = NULL;

  g_assert_cmpmem (g_bytes_get_data (wire, NULL), 2, "\xff\xff", 2);
  g_assert_cmpuint (g_bytes_get_size (wire32), ==, 4 + G_MAXUINT16 + 1);
  got = decode_all (STM32_FRAMING_U16BE, 65536, g_bytes_get_data (wire, NULL),
                    g_bytes_get_size (wire), SPLIT_SMALL);
  g_assert_cmpuint (got->len, ==, 1);
  g_assert_true (g_bytes_equal (got->pdata[0], max16));

  /* MaxFrame (the default, 65536) would allow it; the 16-bit prefix cannot say it. */
  assert_encode_fails (STM32_FRAMING_U16BE, 65536, over16, STM32_ERROR_FRAME_TOO_LARGE, "65535");
}

/* The length is judged from the prefix alone: nothing of the payload is buffered. */
static void
test_prefix_checked_first (void)
{
  static const guint8 huge[] = { 0x7f, 0xff, 0xff, 0xff };
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (STM32_FRAMING_U32BE, 65536);
  g_autoptr (GPtrArray) out = frame_array_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (stm32_decoder_feed (decoder, huge, 3, out, &error));
  g_assert_cmpuint (stm32_decoder_pending (decoder), ==, 3);
  g_assert_false (stm32_decoder_feed (decoder, huge + 3, 1, out, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE);
  g_assert_cmpstr (error->message, ==, "frame of 2147483647 bytes exceeds MaxFrame (65536)");
  g_assert_cmpuint (stm32_decoder_pending (decoder), ==, 0);
}

static void
test_message_numbers (void)
{
  g_autoptr (GBytes) frame = random_binary (70000);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) wire = stm32_frame_encode (STM32_FRAMING_U32BE, 65536, frame, &error);

  g_assert_null (wire);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE);
  g_assert_cmpstr (error->message, ==, "frame of 70000 bytes exceeds MaxFrame (65536)");
}

static void
test_pending (void)
{
  g_autoptr (Stm32Decoder) line = stm32_decoder_new (STM32_FRAMING_LINE, 16);
  g_autoptr (Stm32Decoder) u16 = stm32_decoder_new (STM32_FRAMING_U16BE, 16);
  g_autoptr (Stm32Decoder) raw = stm32_decoder_new (STM32_FRAMING_RAW, 16);
  g_autoptr (GPtrArray) out = frame_array_new ();

  g_assert_true (stm32_decoder_feed (line, (const guint8 *) "x\nabc", 5, out, NULL));
  g_assert_cmpuint (stm32_decoder_pending (line), ==, 3);
  g_assert_true (stm32_decoder_feed (u16, (const guint8 *) "\0\5ab", 4, out, NULL));
  g_assert_cmpuint (stm32_decoder_pending (u16), ==, 4);
  g_assert_true (stm32_decoder_feed (raw, (const guint8 *) "abc", 3, out, NULL));
  g_assert_cmpuint (stm32_decoder_pending (raw), ==, 0);
  g_assert_cmpuint (out->len, ==, 2);
}

/* ---- json ---- */

/* Not one strict JSON value; several of these json-glib alone would accept. */
static const char *const invalid_json[] = {
  "",
  " \t ",
  "{",
  "{\"a\":}",
  "[1,]",
  "{\"a\":1,}",
  "[1 2]",
  "{a:1}",
  "'single'",
  "/* comment */ 1",
  "1 // comment",
  "var x = 1",
  "var x = {}",
  "0x10",
  "01",
  "1.",
  ".5",
  "- 1",
  "+1",
  "NaN",
  "Infinity",
  "TRUE",
  "nul",
  "\"tab\there\"",
  "\"cr\rhere\"",
  "\"\\x41\"",
  "\"\\'\"",
  "\"\\u00\"",
  "\"\\ud800\"",
  "\"unterminated",
  "\"\xff\"",
  "\"\xc3\"",
  "\xef\xbb\xbf{}",
  "\x0c 1",
};

static const char *const multiple_json[] = {
  "1 2", "[1] [2]", "{} {}", "\"a\"\"b\"", "[1]2", "true false", "null null", "{}[]",
};

static const char *const valid_json[] = {
  "0",
  "-0",
  "-0.0e+0",
  "1E5",
  "123456789012345678901234567890",
  "true",
  "null",
  " \t[ ] \t",
  "{}",
  "{\"\":[]}",
  "\"\"",
  "\"é € 😀 \\u00e9 \\uD83D\\uDE00 \\u0000 \\b\\f\\n\\r\\t\\/\\\\\\\"\"",
  "[1,-2.5,3e-7,\"x\",{\"a\":[{\"b\":null}]},true,false]",
  "{\"a\" : 1 , \"b\":\t{\"c\":[]}}",
};

static void
check_json_invalid (const char *doc, gsize len, int code)
{
  g_autoptr (GBytes) frame = g_bytes_new (doc, len);
  g_autoptr (GByteArray) wire = g_byte_array_new ();
  g_autoptr (GPtrArray) got = NULL;

  g_test_message ("checking %s", doc);
  g_byte_array_append (wire, (const guint8 *) "[0]\n", 4);
  g_byte_array_append (wire, (const guint8 *) doc, len);
  g_byte_array_append (wire, (const guint8 *) "\n[1]\n", 5);

  assert_encode_fails (STM32_FRAMING_JSON, 4096, frame, code, "json");
  got = decode_failing (STM32_FRAMING_JSON, 4096, (const char *) wire->data, wire->len, code);
  g_assert_cmpuint (got->len, ==, 1);
  assert_frame_is (got, 0, "[0]");
}

static void
test_json_invalid (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (invalid_json); i++)
    check_json_invalid (invalid_json[i], strlen (invalid_json[i]), STM32_ERROR_INVALID_FRAME);
  check_json_invalid ("\"nul\0\"", 6, STM32_ERROR_INVALID_FRAME);
  check_json_invalid ("1\0", 2, STM32_ERROR_INVALID_FRAME);
}

static void
test_json_multiple_values (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (multiple_json); i++)
    check_json_invalid (multiple_json[i], strlen (multiple_json[i]), STM32_ERROR_INVALID_FRAME);
}

static void
test_json_valid (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (valid_json); i++)
    {
      g_autoptr (GBytes) frame = bytes_from_string (valid_json[i]);
      g_autoptr (GBytes) wire = encode_ok (STM32_FRAMING_JSON, 4096, frame);
      g_autoptr (GPtrArray) got =
          decode_all (STM32_FRAMING_JSON, 4096, g_bytes_get_data (wire, NULL),
                      g_bytes_get_size (wire), SPLIT_BYTES);

      g_assert_cmpuint (got->len, ==, 1);
      assert_frame_is (got, 0, valid_json[i]);
    }
}

/* The reason comes from json-glib, whose message names line and column. */
static void
test_json_message (void)
{
  g_autoptr (GBytes) frame = bytes_from_string ("{\"a\":}");
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) wire = stm32_frame_encode (STM32_FRAMING_JSON, 64, frame, &error);
  const char *prefix = "json frame is not valid JSON: ";

  g_assert_null (wire);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME);
  g_assert_true (g_str_has_prefix (error->message, prefix));
  g_assert_cmpuint (strlen (error->message), >, strlen (prefix) + 5);
}

static void
test_json_split_feeds (void)
{
  static const char wire[] = "{\"k\":[\"é😀\",1.5e3,{\"x\":null}]}\r\n[]\n";

  for (gsize cut = 0; cut <= sizeof wire - 1; cut++)
    {
      g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (STM32_FRAMING_JSON, 64);
      g_autoptr (GPtrArray) out = frame_array_new ();
      g_autoptr (GError) error = NULL;

      g_assert_true (stm32_decoder_feed (decoder, (const guint8 *) wire, cut, out, &error));
      g_assert_true (stm32_decoder_feed (decoder, (const guint8 *) wire + cut,
                                         sizeof wire - 1 - cut, out, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (out->len, ==, 2);
      assert_frame_is (out, 0, "{\"k\":[\"é😀\",1.5e3,{\"x\":null}]}");
      assert_frame_is (out, 1, "[]");
    }
}

static GBytes *
nested_json (guint depth)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < depth; i++)
    g_string_append (s, i % 2 ? "[" : "{\"k\":");
  g_string_append_c (s, '0');
  for (guint i = depth; i > 0; i--)
    g_string_append_c (s, (i - 1) % 2 ? ']' : '}');
  return g_string_free_to_bytes (s);
}

/* Deep nesting is refused before json-glib, which would overflow the stack on it. */
static void
test_json_nesting (void)
{
  g_autoptr (GBytes) ok = nested_json (512);
  g_autoptr (GBytes) deep = nested_json (513);
  g_autofree char *flood = memset (g_malloc (200000), '[', 200000);
  g_autoptr (GBytes) very_deep = g_bytes_new (flood, 200000);
  g_autoptr (GBytes) wire = encode_ok (STM32_FRAMING_JSON, 1 << 20, ok);

  g_assert_cmpuint (g_bytes_get_size (wire), >, 512 * 2);
  assert_encode_fails (STM32_FRAMING_JSON, 1 << 20, deep, STM32_ERROR_INVALID_FRAME,
                       "deeper than 512");
  assert_encode_fails (STM32_FRAMING_JSON, 1 << 20, very_deep, STM32_ERROR_INVALID_FRAME,
                       "deeper than 512");
}

static void
test_json_oversize_first (void)
{
  /* Too large and not JSON: the size is the rule reported. */
  g_autofree char *junk = memset (g_malloc (65), '{', 65);
  g_autoptr (GBytes) frame = g_bytes_new (junk, 65);

  assert_encode_fails (STM32_FRAMING_JSON, 64, frame, STM32_ERROR_FRAME_TOO_LARGE, "MaxFrame (64)");
}

/* ---- raw ---- */

static void
test_raw_feeds_are_frames (void)
{
  g_autoptr (Stm32Decoder) decoder = stm32_decoder_new (STM32_FRAMING_RAW, 4);
  g_autoptr (GPtrArray) out = frame_array_new ();
  g_autoptr (GBytes) frame = bytes_from_string ("a\nb\0");
  g_autoptr (GBytes) wire = encode_ok (STM32_FRAMING_RAW, 4, frame);

  g_assert_true (g_bytes_equal (wire, frame));
  g_assert_true (stm32_decoder_feed (decoder, (const guint8 *) "ab\n", 3, out, NULL));
  g_assert_true (stm32_decoder_feed (decoder, (const guint8 *) "c", 1, out, NULL));
  g_assert_true (stm32_decoder_feed (decoder, (const guint8 *) "123456789", 9, out, NULL));
  g_assert_cmpuint (out->len, ==, 5);
  assert_frame_is (out, 0, "ab\n");
  assert_frame_is (out, 1, "c");
  assert_frame_is (out, 2, "1234");
  assert_frame_is (out, 3, "5678");
  assert_frame_is (out, 4, "9");
}

static void
add_framing_tests (const char *test, GTestDataFunc func, gboolean with_raw)
{
  for (guint i = 0; i < G_N_ELEMENTS (framing_cases); i++)
    {
      g_autofree char *path = NULL;

      if (!with_raw && framing_cases[i].framing == STM32_FRAMING_RAW)
        continue;
      path = g_strdup_printf ("/framer/%s/%s", framing_cases[i].name, test);
      g_test_add_data_func (path, &framing_cases[i], func);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  add_framing_tests ("roundtrip-splits", test_roundtrip_splits, TRUE);
  add_framing_tests ("oversize", test_oversize, TRUE);
  add_framing_tests ("empty", test_empty, TRUE);
  add_framing_tests ("frames-before-violation", test_frames_before_violation, FALSE);
  add_framing_tests ("stays-failed", test_stays_failed, FALSE);

  g_test_add_func ("/framer/line/wire-format", test_line_wire_format);
  g_test_add_func ("/framer/line/crlf", test_line_crlf);
  g_test_add_func ("/framer/line/crlf-at-limit", test_line_crlf_at_limit);
  g_test_add_func ("/framer/line/newline-inside", test_line_newline_inside);
  g_test_add_func ("/framer/line/trailing-cr", test_line_trailing_cr);
  g_test_add_func ("/framer/line/bounded-memory", test_line_bounded_memory);

  g_test_add_func ("/framer/prefix/wire-format", test_prefix_wire_format);
  g_test_add_func ("/framer/u16be/limit", test_u16be_limit);
  g_test_add_func ("/framer/u32be/prefix-checked-first", test_prefix_checked_first);
  g_test_add_func ("/framer/prefix/message-numbers", test_message_numbers);

  g_test_add_func ("/framer/json/invalid", test_json_invalid);
  g_test_add_func ("/framer/json/multiple-values", test_json_multiple_values);
  g_test_add_func ("/framer/json/valid", test_json_valid);
  g_test_add_func ("/framer/json/message", test_json_message);
  g_test_add_func ("/framer/json/split-feeds", test_json_split_feeds);
  g_test_add_func ("/framer/json/nesting", test_json_nesting);
  g_test_add_func ("/framer/json/oversize-first", test_json_oversize_first);

  g_test_add_func ("/framer/raw/feeds-are-frames", test_raw_feeds_are_frames);
  g_test_add_func ("/framer/decoder/pending", test_pending);

  return g_test_run ();
}
