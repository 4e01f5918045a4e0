/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-framer.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "stm32-error.h"

/* json-glib recurses once per nesting level and has no limit of its own, so a
 * frame of a few ten thousand '[' overflows the stack; no sane board message
 * nests this deep. */
#define JSON_MAX_DEPTH 512

struct _Stm32Decoder
{
  Stm32Framing framing;
  gsize max_frame;
  /* Start of a frame that has not arrived completely (for u16be/u32be
   * including its length prefix); never more than about max_frame bytes. */
  GByteArray *partial;
  /* The first violation: the byte stream can no longer be trusted after it. */
  GError *failure;
};

static const char *
line_noun (Stm32Framing framing)
{
  return framing == STM32_FRAMING_JSON ? "json" : "line";
}

static gboolean
check_size (gsize len, gsize max_frame, GError **error)
{
  if (len <= max_frame)
    return TRUE;
  g_set_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE,
               "frame of %" G_GSIZE_FORMAT " bytes exceeds MaxFrame (%" G_GSIZE_FORMAT ")", len,
               max_frame);
  return FALSE;
}

static gsize
prefix_size (Stm32Framing framing)
{
  return framing == STM32_FRAMING_U16BE ? 2 : 4;
}

static gsize
read_prefix (Stm32Framing framing, const guint8 *p)
{
  if (framing == STM32_FRAMING_U16BE)
    return (gsize) p[0] << 8 | p[1];
  return (gsize) p[0] << 24 | (gsize) p[1] << 16 | (gsize) p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------------ */
/* Strict JSON (RFC 8259) syntax check                                       */
/* ------------------------------------------------------------------------ */

/* json-glib accepts more than JSON: an empty document, several top-level
 * arrays or objects, comments, single quotes, hex and "- 1" numbers, raw
 * control characters in strings and "var x = …" assignments. A board or a GUI
 * with a strict parser would choke on those, so every frame also passes this
 * scanner, which allocates nothing and does not recurse. */

typedef enum
{
  JSON_WANT_VALUE,
  JSON_WANT_VALUE_OR_CLOSE, /* just after '[' */
  JSON_WANT_KEY,
  JSON_WANT_KEY_OR_CLOSE, /* just after '{' */
  JSON_AFTER_VALUE,
} JsonScanState;

typedef struct
{
  const guint8 *p, *end;
  JsonScanState state;
  guint depth;
  guint8 open[JSON_MAX_DEPTH]; /* '{' or '[' of each enclosing container */
  const char *reason;          /* why the scan stopped at p */
  gboolean too_deep;
  gboolean trailing; /* a whole value, then more than white space */
} JsonScan;

static int
json_peek (const JsonScan *s)
{
  return s->p < s->end ? *s->p : -1;
}

static gboolean
json_fail (JsonScan *s, const char *reason)
{
  s->reason = reason;
  return FALSE;
}

static void
json_skip_ws (JsonScan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static gboolean
json_scan_escape (JsonScan *s)
{
  int c = json_peek (s);

  if (c == 'u')
    {
      if (s->end - s->p < 5)
        return json_fail (s, "\\u needs four hex digits");
      for (int i = 1; i <= 4; i++)
        if (!g_ascii_isxdigit (s->p[i]))
          return json_fail (s, "\\u needs four hex digits");
      s->p += 5;
      return TRUE;
    }
  if (c <= 0 || strchr ("\"\\/bfnrt", c) == NULL)
    return json_fail (s, "invalid escape in a string");
  s->p++;
  return TRUE;
}

static gboolean
json_scan_string (JsonScan *s)
{
  s->p++; /* opening quote */
  while (s->p < s->end)
    {
      guint8 c = *s->p;

      if (c == '"')
        {
          s->p++;
          return TRUE;
        }
      if (c < 0x20)
        return json_fail (s, "control character in a string");
      s->p++;
      if (c == '\\' && !json_scan_escape (s))
        return FALSE;
    }
  return json_fail (s, "unterminated string");
}

static gboolean
json_scan_digits (JsonScan *s)
{
  const guint8 *first = s->p;

  while (s->p < s->end && g_ascii_isdigit (*s->p))
    s->p++;
  return s->p > first || json_fail (s, "expected a digit");
}

static gboolean
json_scan_number (JsonScan *s)
{
  if (json_peek (s) == '-')
    s->p++;
  if (json_peek (s) == '0')
    s->p++;
  else if (!json_scan_digits (s))
    return FALSE;
  if (json_peek (s) == '.')
    {
      s->p++;
      if (!json_scan_digits (s))
        return FALSE;
    }
  if (json_peek (s) == 'e' || json_peek (s) == 'E')
    {
      s->p++;
      if (json_peek (s) == '+' || json_peek (s) == '-')
        s->p++;
      if (!json_scan_digits (s))
        return FALSE;
    }
  return TRUE;
}

static gboolean
json_scan_literal (JsonScan *s, const char *word)
{
  gsize n = strlen (word);

  if ((gsize) (s->end - s->p) < n || memcmp (s->p, word, n) != 0)
    return json_fail (s, "expected a value");
  s->p += n;
  return TRUE;
}

static gboolean
json_open (JsonScan *s, guint8 bracket)
{
  if (s->depth == JSON_MAX_DEPTH)
    {
      s->too_deep = TRUE;
      return json_fail (s, "nested too deeply");
    }
  s->open[s->depth++] = bracket;
  s->p++;
  s->state = bracket == '{' ? JSON_WANT_KEY_OR_CLOSE : JSON_WANT_VALUE_OR_CLOSE;
  return TRUE;
}

static gboolean
json_scan_value (JsonScan *s)
{
  int c = json_peek (s);

  if (c == '{' || c == '[')
    return json_open (s, (guint8) c);
  s->state = JSON_AFTER_VALUE;
  if (c == '"')
    return json_scan_string (s);
  if (c == '-' || g_ascii_isdigit (c))
    return json_scan_number (s);
  if (c == 't')
    return json_scan_literal (s, "true");
  if (c == 'f')
    return json_scan_literal (s, "false");
  if (c == 'n')
    return json_scan_literal (s, "null");
  if (c < 0 && s->depth == 0)
    return json_fail (s, "no value (the frame is empty or only whitespace)");
  return json_fail (s, "expected a value");
}

static gboolean
json_scan_key (JsonScan *s)
{
  if (json_peek (s) != '"')
    return json_fail (s, "expected a string as object key");
  if (!json_scan_string (s))
    return FALSE;
  json_skip_ws (s);
  if (json_peek (s) != ':')
    return json_fail (s, "expected ':' after an object key");
  s->p++;
  s->state = JSON_WANT_VALUE;
  return TRUE;
}

static gboolean
json_scan_after_value (JsonScan *s)
{
  int c = json_peek (s);
  guint8 open;

  if (s->depth == 0)
    {
      s->trailing = TRUE;
      return json_fail (s, "more than one value, or garbage after the value");
    }
  open = s->open[s->depth - 1];
  if (c == ',')
    {
      s->p++;
      s->state = open == '{' ? JSON_WANT_KEY : JSON_WANT_VALUE;
      return TRUE;
    }
  if (c == (open == '{' ? '}' : ']'))
    {
      s->p++;
      s->depth--;
      return TRUE;
    }
  return json_fail (s, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static gboolean
json_scan_step (JsonScan *s)
{
  json_skip_ws (s);
  switch (s->state)
    {
    case JSON_WANT_KEY_OR_CLOSE:
    case JSON_WANT_VALUE_OR_CLOSE:
      if (json_peek (s) == (s->state == JSON_WANT_KEY_OR_CLOSE ? '}' : ']'))
        {
          s->state = JSON_AFTER_VALUE;
          s->p++;
          s->depth--;
          return TRUE;
        }
      return s->state == JSON_WANT_KEY_OR_CLOSE ? json_scan_key (s) : json_scan_value (s);
    case JSON_WANT_KEY:
      return json_scan_key (s);
    case JSON_WANT_VALUE:
      return json_scan_value (s);
    case JSON_AFTER_VALUE:
    default:
      return json_scan_after_value (s);
    }
}

/* TRUE if @data is exactly one JSON value; else @s says where and why not. */
static gboolean
json_scan (JsonScan *s, const guint8 *data, gsize len)
{
  s->p = data;
  s->end = data + len;
  s->state = JSON_WANT_VALUE;
  s->depth = 0;
  s->reason = NULL;
  s->too_deep = FALSE;
  s->trailing = FALSE;
  while (json_scan_step (s))
    {
      if (s->state == JSON_AFTER_VALUE && s->depth == 0)
        {
          json_skip_ws (s);
          if (s->p == s->end)
            return TRUE;
        }
    }
  return FALSE;
}

/* json-glib has the last word (and the better message); the strict scan runs
 * first because it also keeps json-glib away from frames nested too deeply,
 * and from frames of several values, on which json-glib 1.6 leaks the nodes
 * it parsed. */
static gboolean
check_json (const guint8 *data, gsize len, GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) local_error = NULL;
  JsonScan scan;
  gboolean strict;

  if (len == 0)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                           "json frame is empty: it must hold one JSON value");
      return FALSE;
    }
  strict = json_scan (&scan, data, len);
  if (!strict && scan.too_deep)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                   "json frame nests deeper than %d levels at byte %" G_GSIZE_FORMAT,
                   JSON_MAX_DEPTH, (gsize) (scan.p - data));
      return FALSE;
    }
  if (!strict && scan.trailing)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                   "json frame is not one JSON value: %s at byte %" G_GSIZE_FORMAT, scan.reason,
                   (gsize) (scan.p - data));
      return FALSE;
    }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const char *) data, len, &local_error))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                   "json frame is not valid JSON: %s", local_error->message);
      return FALSE;
    }
  if (!strict)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                   "json frame is not strict JSON at byte %" G_GSIZE_FORMAT ": %s",
                   (gsize) (scan.p - data), scan.reason);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */
/* ------------------------------------------------------------------------ */

static gboolean
check_line (Stm32Framing framing, const guint8 *data, gsize len, GError **error)
{
  const guint8 *nl = len > 0 ? memchr (data, '\n', len) : NULL;

  if (nl != NULL)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                   "%s frame contains a newline at byte %" G_GSIZE_FORMAT, line_noun (framing),
                   (gsize) (nl - data));
      return FALSE;
    }
  /* The receiving side strips one '\r' before the '\n' (a "\r\n" line end),
   * so this frame would arrive one byte short. */
  if (len > 0 && data[len - 1] == '\r')
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                   "%s frame ends with a carriage return (byte %" G_GSIZE_FORMAT
                   "), which the receiver would strip as part of a \\r\\n line end",
                   line_noun (framing), len - 1);
      return FALSE;
    }
  return TRUE;
}

static GBytes *
encode_line (Stm32Framing framing, const guint8 *data, gsize len, GError **error)
{
  guint8 *wire;

  if (!check_line (framing, data, len, error))
    return NULL;
  if (framing == STM32_FRAMING_JSON && !check_json (data, len, error))
    return NULL;
  wire = g_malloc (len + 1);
  if (len > 0)
    memcpy (wire, data, len);
  wire[len] = '\n';
  return g_bytes_new_take (wire, len + 1);
}

static GBytes *
encode_prefixed (Stm32Framing framing, const guint8 *data, gsize len, GError **error)
{
  guint64 limit = framing == STM32_FRAMING_U16BE ? G_MAXUINT16 : G_MAXUINT32;
  gsize hdr = prefix_size (framing);
  guint8 *wire;

  if ((guint64) len > limit)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE,
                   "frame of %" G_GSIZE_FORMAT
                   " bytes exceeds the %s length prefix (at most %" G_GUINT64_FORMAT ")",
                   len, framing == STM32_FRAMING_U16BE ? "u16be" : "u32be", limit);
      return NULL;
    }
  wire = g_malloc (hdr + len);
  for (gsize i = 0; i < hdr; i++)
    wire[i] = (guint8) (len >> (8 * (hdr - 1 - i)));
  if (len > 0)
    memcpy (wire + hdr, data, len);
  return g_bytes_new_take (wire, hdr + len);
}

GBytes *
stm32_frame_encode (Stm32Framing framing, gsize max_frame, GBytes *frame, GError **error)
{
  const guint8 *data;
  gsize len;

  g_return_val_if_fail (frame != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  data = g_bytes_get_data (frame, &len);
  if (!check_size (len, max_frame, error))
    return NULL;
  switch (framing)
    {
    case STM32_FRAMING_RAW:
      /* Without framing, an empty write would reach the board as nothing at all. */
      if (len == 0)
        {
          g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_FRAME,
                               "nothing to send: a raw frame must not be empty");
          return NULL;
        }
      return g_bytes_ref (frame);
    case STM32_FRAMING_LINE:
    case STM32_FRAMING_JSON:
      return encode_line (framing, data, len, error);
    case STM32_FRAMING_U16BE:
    case STM32_FRAMING_U32BE:
      return encode_prefixed (framing, data, len, error);
    }
  g_return_val_if_reached (NULL);
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

Stm32Decoder *
stm32_decoder_new (Stm32Framing framing, gsize max_frame)
{
  Stm32Decoder *self;

  g_return_val_if_fail (framing <= STM32_FRAMING_JSON, NULL);
  g_return_val_if_fail (max_frame > 0, NULL);

  self = g_new0 (Stm32Decoder, 1);
  self->framing = framing;
  self->max_frame = max_frame;
  self->partial = g_byte_array_new ();
  return self;
}

void
stm32_decoder_free (Stm32Decoder *self)
{
  if (self == NULL)
    return;
  g_byte_array_unref (self->partial);
  g_clear_error (&self->failure);
  g_free (self);
}

gsize
stm32_decoder_pending (const Stm32Decoder *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->partial->len;
}

static void
feed_raw (Stm32Decoder *self, const guint8 *data, gsize len, GPtrArray *frames)
{
  while (len > 0)
    {
      gsize n = MIN (len, self->max_frame);

      g_ptr_array_add (frames, g_bytes_new (data, n));
      data += n;
      len -= n;
    }
}

/* Keeps the start of a line whose newline has not arrived yet, failing as soon
 * as it can no longer fit in MaxFrame rather than buffering without bound. */
static gboolean
hold_line (Stm32Decoder *self, const guint8 *data, gsize len, GError **error)
{
  gsize total = self->partial->len + len;
  gboolean cr;

  if (len == 0)
    return TRUE;
  cr = data[len - 1] == '\r';
  /* One byte past MaxFrame may still be the '\r' of a "\r\n" line end. */
  if (total > self->max_frame && (total - 1 > self->max_frame || !cr))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE,
                   "%s frame of at least %" G_GSIZE_FORMAT
                   " bytes exceeds MaxFrame (%" G_GSIZE_FORMAT ")",
                   line_noun (self->framing), total - cr, self->max_frame);
      return FALSE;
    }
  g_byte_array_append (self->partial, data, len);
  return TRUE;
}

static gboolean
emit_line (Stm32Decoder *self, const guint8 *line, gsize len, GPtrArray *frames, GError **error)
{
  if (len > 0 && line[len - 1] == '\r')
    len--;
  if (!check_size (len, self->max_frame, error))
    return FALSE;
  if (self->framing == STM32_FRAMING_JSON && !check_json (line, len, error))
    return FALSE;
  g_ptr_array_add (frames, g_bytes_new (line, len));
  return TRUE;
}

static gboolean
feed_lines (Stm32Decoder *self, const guint8 *data, gsize len, GPtrArray *frames, GError **error)
{
  const guint8 *p = data, *end = data + len;

  while (p < end)
    {
      const guint8 *nl = memchr (p, '\n', (gsize) (end - p));
      gboolean ok;

      if (nl == NULL)
        return hold_line (self, p, (gsize) (end - p), error);
      if (self->partial->len == 0)
        {
          ok = emit_line (self, p, (gsize) (nl - p), frames, error);
        }
      else
        {
          ok = hold_line (self, p, (gsize) (nl - p), error) &&
               emit_line (self, self->partial->data, self->partial->len, frames, error);
          g_byte_array_set_size (self->partial, 0);
        }
      if (!ok)
        return FALSE;
      p = nl + 1;
    }
  return TRUE;
}

/* Bytes still missing from the frame being collected in partial: first the
 * rest of its length prefix, then the rest of its payload. */
static gsize
prefixed_missing (const Stm32Decoder *self)
{
  gsize hdr = prefix_size (self->framing);

  if (self->partial->len < hdr)
    return hdr - self->partial->len;
  return hdr + read_prefix (self->framing, self->partial->data) - self->partial->len;
}

/* Moves up to @len bytes into partial; the length is checked as soon as the
 * prefix is complete, before any of the payload is buffered. */
static gsize
collect_prefixed (Stm32Decoder *self, const guint8 *data, gsize len, GPtrArray *frames,
                  GError **error)
{
  gsize hdr = prefix_size (self->framing);
  gsize missing = prefixed_missing (self);
  gsize take = MIN (missing, len);

  g_byte_array_append (self->partial, data, take);
  if (self->partial->len == hdr &&
      !check_size (read_prefix (self->framing, self->partial->data), self->max_frame, error))
    return 0;
  if (self->partial->len >= hdr && prefixed_missing (self) == 0)
    {
      g_ptr_array_add (frames, g_bytes_new (self->partial->data + hdr, self->partial->len - hdr));
      g_byte_array_set_size (self->partial, 0);
    }
  return take;
}

static gboolean
feed_prefixed (Stm32Decoder *self, const guint8 *data, gsize len, GPtrArray *frames, GError **error)
{
  gsize hdr = prefix_size (self->framing);
  const guint8 *p = data, *end = data + len;

  while (p < end)
    {
      gsize avail = (gsize) (end - p);
      gsize taken;

      /* A frame that lies wholly in @data is copied once, straight into its GBytes. */
      if (self->partial->len == 0 && avail >= hdr)
        {
          gsize n = read_prefix (self->framing, p);

          if (!check_size (n, self->max_frame, error))
            return FALSE;
          if (avail - hdr >= n)
            {
              g_ptr_array_add (frames, g_bytes_new (p + hdr, n));
              p += hdr + n;
              continue;
            }
        }
      taken = collect_prefixed (self, p, avail, frames, error);
      if (taken == 0)
        return FALSE;
      p += taken;
    }
  return TRUE;
}

static gboolean
feed_framing (Stm32Decoder *self, const guint8 *data, gsize len, GPtrArray *frames, GError **error)
{
  switch (self->framing)
    {
    case STM32_FRAMING_RAW:
      feed_raw (self, data, len, frames);
      return TRUE;
    case STM32_FRAMING_LINE:
    case STM32_FRAMING_JSON:
      return feed_lines (self, data, len, frames, error);
    case STM32_FRAMING_U16BE:
    case STM32_FRAMING_U32BE:
      return feed_prefixed (self, data, len, frames, error);
    }
  g_return_val_if_reached (FALSE);
}

gboolean
stm32_decoder_feed (Stm32Decoder *self, const guint8 *data, gsize len, GPtrArray *frames,
                    GError **error)
{
  g_autoptr (GError) local_error = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (frames != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->failure != NULL)
    {
      g_propagate_error (error, g_error_copy (self->failure));
      return FALSE;
    }
  if (len == 0 || feed_framing (self, data, len, frames, &local_error))
    return TRUE;

  /* Nothing after a violation can be trusted to start on a frame boundary. */
  self->failure = g_error_copy (local_error);
  g_byte_array_set_size (self->partial, 0);
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}
