/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "stm32-defaults.h"
#include "stm32-enum-types.h"
#include "stm32-error.h"
#include "stm32-framer.h"
#include "stm32-names.h"

#define LINK_GROUP "Link"
#define LINK_GROUP_PREFIX LINK_GROUP " "
#define HEX_PREFIX "hex:"
/* Some editors start a UTF-8 file with it; it is invisible in them. */
#define UTF8_BOM "\xef\xbb\xbf"
/* RFC 1123 host names */
#define HOST_NAME_MAX_LEN 253
#define HOST_LABEL_MAX_LEN 63

/* The backoff stretches a delay by up to 1 + jitter; the result must still fit a guint. */
#define MAX_RETRY ((guint64) (G_MAXUINT / (1.0 + STM32_RETRY_JITTER)))

typedef enum
{
  VALUE_HOST,
  VALUE_BOOLEAN,
  VALUE_FRAMING,
  VALUE_CLOSE_MODE,
  VALUE_HEARTBEAT,
  VALUE_UINT,
  VALUE_UINT16,
} ValueKind;

typedef struct
{
  const char *suffix; /* NULL ends the list */
  guint64 factor;
} Unit;

/* How a number is written and named in messages. */
typedef struct
{
  const char *noun;
  const char *hint;
  Unit units[3]; /* longer suffixes first: "5ms" also ends in "s" */
} NumberFormat;

static const NumberFormat in_milliseconds = { "a number of milliseconds",
                                              "; “s” after the number means seconds",
                                              { { "ms", 1 }, { "s", 1000 } } };
static const NumberFormat in_seconds = { "a number of seconds", "", { { "s", 1 } } };
static const NumberFormat in_bytes = { "a number of bytes",
                                       "; “KiB” or “MiB” may follow the number",
                                       { { "KiB", 1024 }, { "MiB", 1024 * 1024 } } };
static const NumberFormat as_count = { "a count", "", { { NULL, 0 } } };
static const NumberFormat as_port = { "a port number", "", { { NULL, 0 } } };

typedef struct
{
  const char *key;
  ValueKind kind;
  gsize offset;               /* of the field in Stm32LinkConfig */
  const NumberFormat *format; /* numbers only */
  guint64 min, max;
} KeySpec;

#define FIELD(member) offsetof (Stm32LinkConfig, member)

/* Ranges are the values a key can take on its own; stm32_link_config_validate()
 * checks the rules between keys. */
static const KeySpec key_specs[] = {
  { "Host", VALUE_HOST, FIELD (host) },
  { "Port", VALUE_UINT16, FIELD (port), &as_port, 1, G_MAXUINT16 },
  { "Autoconnect", VALUE_BOOLEAN, FIELD (autoconnect) },
  { "Framing", VALUE_FRAMING, FIELD (framing) },
  { "MaxFrame", VALUE_UINT, FIELD (max_frame), &in_bytes, 1, G_MAXUINT },
  { "ConnectTimeout", VALUE_UINT, FIELD (connect_timeout), &in_milliseconds, 1, G_MAXUINT },
  { "CloseTimeout", VALUE_UINT, FIELD (close_timeout), &in_milliseconds, 1, G_MAXUINT },
  { "CloseMode", VALUE_CLOSE_MODE, FIELD (close_mode) },
  { "RetryMin", VALUE_UINT, FIELD (retry_min), &in_milliseconds, 1, MAX_RETRY },
  { "RetryMax", VALUE_UINT, FIELD (retry_max), &in_milliseconds, 1, MAX_RETRY },
  { "RetryResetAfter", VALUE_UINT, FIELD (retry_reset_after), &in_milliseconds, 0, G_MAXUINT },
  { "BusyWindow", VALUE_UINT, FIELD (busy_window), &in_milliseconds, 0, G_MAXUINT },
  { "BusyBackoff", VALUE_UINT, FIELD (busy_backoff), &in_milliseconds, 0, G_MAXUINT },
  { "KeepaliveIdle", VALUE_UINT, FIELD (keepalive_idle_s), &in_seconds, 1, STM32_MAX_KEEPALIVE_S },
  { "KeepaliveInterval", VALUE_UINT, FIELD (keepalive_interval_s), &in_seconds, 1,
    STM32_MAX_KEEPALIVE_S },
  { "KeepaliveCount", VALUE_UINT, FIELD (keepalive_count), &as_count, 1,
    STM32_MAX_KEEPALIVE_COUNT },
  { "UserTimeout", VALUE_UINT, FIELD (user_timeout), &in_milliseconds, 0, STM32_MAX_USER_TIMEOUT },
  { "IdleTimeout", VALUE_UINT, FIELD (idle_timeout), &in_milliseconds, 0, G_MAXUINT },
  { "Heartbeat", VALUE_HEARTBEAT, FIELD (heartbeat) },
  { "HeartbeatReply", VALUE_HEARTBEAT, FIELD (heartbeat_reply) },
  { "HeartbeatInterval", VALUE_UINT, FIELD (heartbeat_interval), &in_milliseconds, 1, G_MAXUINT },
  { "HeartbeatTimeout", VALUE_UINT, FIELD (heartbeat_timeout), &in_milliseconds, 1, G_MAXUINT },
  { "SendQueueMax", VALUE_UINT, FIELD (send_queue_max), &in_bytes, 1, G_MAXUINT },
  { "ReplyGrace", VALUE_UINT, FIELD (reply_grace), &in_milliseconds, 1, G_MAXUINT },
};

/* ---- where things are: GKeyFile keeps no line numbers ---- */

typedef struct
{
  char *key;
  guint line;
} ScanKey;

typedef struct
{
  char *name;
  guint line;
  GArray *keys;            /* of ScanKey, in file order */
  GHashTable *first_lines; /* key -> line where it is first set, so a lookup costs no scan */
} ScanGroup;

static void
scan_key_clear (ScanKey *key)
{
  g_free (key->key);
}

static void
scan_group_free (ScanGroup *group)
{
  g_free (group->name);
  g_array_unref (group->keys);
  g_hash_table_unref (group->first_lines);
  g_free (group);
}

static ScanGroup *
scan_group_new (const char *name, gsize name_len, guint line)
{
  ScanGroup *group = g_new0 (ScanGroup, 1);

  group->name = g_strndup (name, name_len);
  group->line = line;
  group->keys = g_array_new (FALSE, FALSE, sizeof (ScanKey));
  g_array_set_clear_func (group->keys, (GDestroyNotify) scan_key_clear);
  group->first_lines = g_hash_table_new (g_str_hash, g_str_equal);
  return group;
}

/* One line, from @p to @end (its newline excluded); returns the group that
 * lines below it belong to. */
static ScanGroup *
scan_line (GPtrArray *groups, ScanGroup *current, const char *p, const char *end, guint line)
{
  const char *mark;

  while (p < end && g_ascii_isspace (*p))
    p++;
  if (p < end && *p == '[' && (mark = memchr (p, ']', end - p)) != NULL)
    {
      current = scan_group_new (p + 1, mark - (p + 1), line);
      g_ptr_array_add (groups, current);
    }
  else if (p < end && *p != '#' && current != NULL && (mark = memchr (p, '=', end - p)) != NULL)
    {
      ScanKey key = { g_strchomp (g_strndup (p, mark - p)), line };

      g_array_append_val (current->keys, key);
      /* The array owns the names; only a key's first line is recorded. */
      if (!g_hash_table_contains (current->first_lines, key.key))
        g_hash_table_insert (current->first_lines, key.key, GUINT_TO_POINTER (line));
    }
  return current;
}

/* Runs on text GKeyFile has accepted, so every line is a comment, a group
 * header or a key; splits lines and trims whitespace the way GKeyFile does.
 * Not g_strsplit(): under ASan each of its strstr() calls measures the rest
 * of the text, which made a large file quadratic in the tests. */
static GPtrArray *
scan_groups (const char *data, gsize length)
{
  GPtrArray *groups = g_ptr_array_new_with_free_func ((GDestroyNotify) scan_group_free);
  ScanGroup *current = NULL;
  const char *p = data, *end = data + length;

  for (guint line = 1;; line++)
    {
      const char *eol = memchr (p, '\n', end - p);

      current = scan_line (groups, current, p, eol != NULL ? eol : end, line);
      if (eol == NULL)
        return groups;
      p = eol + 1;
    }
}

/* Line where @key is first set in @group, or 0 if it is not. */
static guint
scan_key_line (const ScanGroup *group, const char *key)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (group->first_lines, key));
}

/* ---- messages: "FILE:LINE: [GROUP] KEY: why" ---- */

static void
prefix_location (GError **error, const char *file, guint line, const char *group, const char *key)
{
  if (key != NULL)
    g_prefix_error (error, "%s:%u: [%s] %s: ", file, line, group, key);
  else
    g_prefix_error (error, "%s:%u: [%s]: ", file, line, group);
}

static guint
count_lines (const char *data, const char *end)
{
  guint line = 1;

  for (const char *p = data; p < end; p++)
    line += *p == '\n';
  return line;
}

/* GKeyFile's messages carry no line number, but it parses line by line, so
 * the first line it rejects is where the shortest failing prefix ends. */
static guint
find_keyfile_error_line (const char *data, gsize length)
{
  g_autoptr (GArray) ends = g_array_new (FALSE, FALSE, sizeof (gsize));
  guint lo = 0, hi;

  for (gsize i = 0; i < length; i++)
    if (data[i] == '\n')
      g_array_append_val (ends, (gsize){ i + 1 });
  g_array_append_val (ends, length);

  hi = ends->len - 1;
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      g_autoptr (GKeyFile) prefix = g_key_file_new ();

      if (g_key_file_load_from_data (prefix, data, g_array_index (ends, gsize, mid),
                                     G_KEY_FILE_KEEP_TRANSLATIONS, NULL))
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo + 1;
}

static gboolean
load_keyfile (GKeyFile *keyfile, const char *data, gsize length, const char *file, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  const char *end;

  /* GKeyFile lets both through into group and key names, and so into messages. */
  if (!g_utf8_validate_len (data, length, &end))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, "%s:%u: %s", file,
                   count_lines (data, end),
                   *end == '\0' ? "contains a NUL byte" : "is not valid UTF-8 text");
      return FALSE;
    }
  /* Translations are kept only so that Key[xx] lines show up as unknown keys
   * instead of vanishing. */
  if (!g_key_file_load_from_data (keyfile, data, length, G_KEY_FILE_KEEP_TRANSLATIONS,
                                  &local_error))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, "%s:%u: %s", file,
                   find_keyfile_error_line (data, length), local_error->message);
      return FALSE;
    }
  return TRUE;
}

/* ---- values ---- */

static char *
read_string (GKeyFile *keyfile, const char *group, const char *key, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autofree char *value = g_key_file_get_string (keyfile, group, key, &local_error);

  /* On a bad escape GKeyFile sets the error but still returns a string. */
  if (local_error != NULL)
    {
      g_autofree char *raw = g_key_file_get_value (keyfile, group, key, NULL);

      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "“%s” has an invalid escape sequence (known are \\s \\n \\t \\r \\\\)",
                   raw ? raw : "");
      return NULL;
    }
  return g_steal_pointer (&value);
}

/* Whole value, optional unit suffix (spaces allowed before it); nothing else. */
static gboolean
parse_number (const char *value, const KeySpec *spec, guint64 *result)
{
  gsize len = strlen (value);
  g_autofree char *digits = NULL;
  guint64 factor = 1, n;

  for (const Unit *unit = spec->format->units; unit->suffix != NULL; unit++)
    {
      gsize suffix_len = strlen (unit->suffix);

      if (len > suffix_len && strcmp (value + len - suffix_len, unit->suffix) == 0)
        {
          len -= suffix_len;
          factor = unit->factor;
          break;
        }
    }
  digits = g_strchomp (g_strndup (value, len));
  if (!g_ascii_string_to_unsigned (digits, 10, 0, spec->max / factor, &n, NULL))
    return FALSE;
  *result = n * factor;
  return *result >= spec->min;
}

static gboolean
parse_integer (const char *value, const KeySpec *spec, gpointer field, GError **error)
{
  guint64 n;

  if (!parse_number (value, spec, &n))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "“%s” is not %s (%" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT "%s)", value,
                   spec->format->noun, spec->min, spec->max, spec->format->hint);
      return FALSE;
    }
  if (spec->kind == VALUE_UINT16)
    *(guint16 *) field = (guint16) n;
  else
    *(guint *) field = (guint) n;
  return TRUE;
}

/* Why @host (not empty) is no host name, or NULL: dot-separated labels of 1
 * to 63 letters, digits and hyphens, neither starting nor ending with a
 * hyphen, at most 253 characters; a final dot makes the name absolute. */
static char *
describe_bad_host_name (const char *host)
{
  gsize len = strlen (host);
  const char *end, *label = host;

  if (host[len - 1] == '.')
    len--;
  if (len > HOST_NAME_MAX_LEN)
    return g_strdup_printf ("it is %" G_GSIZE_FORMAT " characters long (at most %d)", len,
                            HOST_NAME_MAX_LEN);
  end = host + len;
  for (;;)
    {
      const char *dot = memchr (label, '.', end - label);
      const char *label_end = dot != NULL ? dot : end;
      gsize label_len = label_end - label;

      if (label_len == 0)
        return g_strdup ("it has an empty label (two dots in a row, or a dot first)");
      for (const char *p = label; p < label_end; p++)
        if (!g_ascii_isalnum (*p) && *p != '-')
          return g_strdup_printf ("“%.*s” is not allowed in it (letters, digits and “-” only)",
                                  (int) (g_utf8_next_char (p) - p), p);
      if (label_len > HOST_LABEL_MAX_LEN)
        return g_strdup_printf ("its label “%.*s” is %" G_GSIZE_FORMAT
                                " characters long (at most %d)",
                                (int) label_len, label, label_len, HOST_LABEL_MAX_LEN);
      if (*label == '-' || label_end[-1] == '-')
        return g_strdup_printf ("its label “%.*s” starts or ends with “-”", (int) label_len, label);
      if (dot == NULL)
        return NULL;
      label = dot + 1;
    }
}

static gboolean
parse_host (const char *value, char **field, GError **error)
{
  g_autofree char *why = NULL;
  gboolean has_space = FALSE;

  for (const char *p = value; *p != '\0'; p++)
    has_space |= g_ascii_isspace (*p);
  if (*value == '\0')
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "is empty; give the board's host name or IP address");
      return FALSE;
    }
  /* "board:8080" and "[fe80::1]" are the usual slips; a bare IPv6 address is fine. */
  if (has_space || (strchr (value, ':') != NULL && !g_hostname_is_ip_address (value)))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "“%s” is not a host name or IP address (the port goes in Port, an IPv6 "
                   "address has no brackets)",
                   value);
      return FALSE;
    }
  /* Caught here, a typo is an error with its line, not a connect that fails for ever. */
  if (!g_hostname_is_ip_address (value) && (why = describe_bad_host_name (value)) != NULL)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "“%s” is not an IP address or a valid host name: %s", value, why);
      return FALSE;
    }
  g_free (*field);
  *field = g_strdup (value);
  return TRUE;
}

static GBytes *
parse_hex (const char *hex, GError **error)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();

  for (const char *p = hex; *p != '\0';)
    {
      int high, low;

      if (g_ascii_isspace (*p))
        {
          p++;
          continue;
        }
      high = g_ascii_xdigit_value (p[0]);
      low = high < 0 ? -1 : g_ascii_xdigit_value (p[1]);
      if (low < 0)
        {
          g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                       "“" HEX_PREFIX "%s” is not hex bytes: write two hex digits per byte, "
                       "e.g. " HEX_PREFIX "01 0a ff",
                       hex);
          return NULL;
        }
      g_byte_array_append (bytes, (guint8[]){ (guint8) (high << 4 | low) }, 1);
      p += 2;
    }
  if (bytes->len == 0)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "“" HEX_PREFIX "” holds no bytes; leave Heartbeat empty to turn it off");
      return NULL;
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&bytes));
}

/* Text is sent as it is (GKeyFile escapes such as \n apply); binary frames use
 * the hex: prefix. Empty means no heartbeat. */
static gboolean
parse_heartbeat (const char *value, GBytes **field, GError **error)
{
  GBytes *frame = NULL;

  if (g_str_has_prefix (value, HEX_PREFIX))
    {
      frame = parse_hex (value + strlen (HEX_PREFIX), error);
      if (frame == NULL)
        return FALSE;
    }
  else if (*value != '\0')
    frame = g_bytes_new (value, strlen (value));
  g_clear_pointer (field, g_bytes_unref);
  *field = frame;
  return TRUE;
}

static gboolean
parse_boolean (GKeyFile *keyfile, const char *group, const KeySpec *spec, const char *value,
               gboolean *field, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  gboolean parsed = g_key_file_get_boolean (keyfile, group, spec->key, &local_error);

  if (local_error != NULL)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "“%s” is not a boolean (true or false)", value);
      return FALSE;
    }
  *field = parsed;
  return TRUE;
}

static gboolean
parse_value (GKeyFile *keyfile, const char *group, const KeySpec *spec, Stm32LinkConfig *config,
             GError **error)
{
  g_autofree char *value = read_string (keyfile, group, spec->key, error);
  gpointer field = G_STRUCT_MEMBER_P (config, spec->offset);

  if (value == NULL)
    return FALSE;
  if (spec->kind == VALUE_HEARTBEAT)
    return parse_heartbeat (value, field, error);
  /* Trailing blanks are invisible in an editor; only a frame may carry them. */
  g_strstrip (value);
  switch (spec->kind)
    {
    case VALUE_HOST:
      return parse_host (value, field, error);
    case VALUE_BOOLEAN:
      return parse_boolean (keyfile, group, spec, value, field, error);
    case VALUE_FRAMING:
      return stm32_enum_from_string (STM32_TYPE_FRAMING, value, field, error);
    case VALUE_CLOSE_MODE:
      return stm32_enum_from_string (STM32_TYPE_CLOSE_MODE, value, field, error);
    case VALUE_UINT:
    case VALUE_UINT16:
    default:
      return parse_integer (value, spec, field, error);
    }
}

/* ---- keys and groups ---- */

static const KeySpec *
find_key_spec (const char *key, gboolean ignore_case)
{
  for (guint i = 0; i < G_N_ELEMENTS (key_specs); i++)
    if (ignore_case ? g_ascii_strcasecmp (key_specs[i].key, key) == 0
                    : strcmp (key_specs[i].key, key) == 0)
      return &key_specs[i];
  return NULL;
}

static void
set_unknown_key_error (const char *key, GError **error)
{
  const KeySpec *similar = find_key_spec (key, TRUE);

  if (strchr (key, '[') != NULL)
    g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                         "unknown key (keys take no “[locale]” suffix)");
  else if (similar != NULL)
    g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                 "unknown key; did you mean “%s”? (keys are case-sensitive)", similar->key);
  else
    g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, "unknown key");
}

static gboolean
check_duplicate_keys (const ScanGroup *group, const char *file, GError **error)
{
  for (guint i = 0; i < group->keys->len; i++)
    {
      const ScanKey *key = &g_array_index (group->keys, ScanKey, i);
      guint first = scan_key_line (group, key->key);

      if (first != key->line)
        {
          g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                       "set again; it was first set on line %u", first);
          prefix_location (error, file, key->line, group->name, key->key);
          return FALSE;
        }
    }
  return TRUE;
}

/* GKeyFile's own list of keys decides what is read, so a line the scan
 * misreads can cost a line number, never a setting. */
static gboolean
apply_keys (GKeyFile *keyfile, const ScanGroup *group, const char *file, Stm32LinkConfig *config,
            GError **error)
{
  g_auto (GStrv) keys = g_key_file_get_keys (keyfile, group->name, NULL, NULL);

  for (guint i = 0; keys != NULL && keys[i] != NULL; i++)
    {
      const KeySpec *spec = find_key_spec (keys[i], FALSE);
      guint line = scan_key_line (group, keys[i]);

      if (spec == NULL)
        set_unknown_key_error (keys[i], error);
      else if (parse_value (keyfile, group->name, spec, config, error))
        continue;
      prefix_location (error, file, line ? line : group->line, group->name, keys[i]);
      return FALSE;
    }
  return TRUE;
}

static gboolean
mentions_word (const char *text, const char *word)
{
  gsize len = strlen (word);

  for (const char *p = strstr (text, word); p != NULL; p = strstr (p + 1, word))
    if ((p == text || !g_ascii_isalnum (p[-1])) && !g_ascii_isalnum (p[len]))
      return TRUE;
  return FALSE;
}

/* stm32_link_config_validate() names the keys that disagree; the last of them
 * set in the file is the line that completed the conflict. */
static const char *
find_blamed_key (const ScanGroup *group, const char *message, guint *line)
{
  const char *blamed = NULL;

  *line = group->line;
  for (guint i = 0; i < G_N_ELEMENTS (key_specs); i++)
    {
      guint key_line = scan_key_line (group, key_specs[i].key);

      if (key_line > *line && mentions_word (message, key_specs[i].key))
        {
          blamed = key_specs[i].key;
          *line = key_line;
        }
    }
  return blamed;
}

static gboolean
check_link (const ScanGroup *group, const Stm32LinkConfig *config, const char *file, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  const char *key;
  guint line;

  if (config->host == NULL)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "Host is missing; every link needs the board's host name or address");
      prefix_location (error, file, group->line, group->name, NULL);
      return FALSE;
    }
  if (!stm32_link_config_validate (config, &local_error))
    {
      key = find_blamed_key (group, local_error->message, &line);
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, local_error->message);
      prefix_location (error, file, line, group->name, key);
      return FALSE;
    }
  return TRUE;
}

/* Why @group_name is no [Link NAME] header, or NULL with @name set. */
static char *
describe_bad_group (const char *group_name, const char **name)
{
  const char *allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
  gboolean named = g_str_has_prefix (group_name, LINK_GROUP_PREFIX);

  if (!named && strcmp (group_name, LINK_GROUP) != 0)
    return g_strdup ("unknown group; each board is a [" LINK_GROUP " NAME] group");
  *name = named ? group_name + strlen (LINK_GROUP_PREFIX) : "";
  if (**name == '\0')
    return g_strdup ("the link has no name; write [" LINK_GROUP " NAME]");
  if ((*name)[strspn (*name, allowed)] != '\0')
    return g_strdup_printf ("link name “%s” may only contain A-Z, a-z, 0-9 and “_”, as it becomes "
                            "the D-Bus object path " STM32_DBUS_LINK_PATH_PREFIX "NAME",
                            *name);
  return NULL;
}

/* NAME of [Link NAME], or NULL if the group is no valid, new link.
 * @seen holds the groups before it, by name. */
static const char *
check_group (GHashTable *seen, const ScanGroup *group, const char *file, GError **error)
{
  const char *name = NULL;
  g_autofree char *why = describe_bad_group (group->name, &name);
  const ScanGroup *earlier;

  if (why == NULL && (earlier = g_hash_table_lookup (seen, group->name)) != NULL)
    why = g_strdup_printf ("link “%s” is defined twice; first on line %u", name, earlier->line);
  if (why == NULL)
    g_hash_table_insert (seen, group->name, (gpointer) group);
  if (why != NULL)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, why);
      prefix_location (error, file, group->line, group->name, NULL);
      return NULL;
    }
  return name;
}

/* @group has passed check_group(). */
static Stm32ConfigLink *
parse_link (GKeyFile *keyfile, const ScanGroup *group, const char *file, GError **error)
{
  g_autoptr (Stm32LinkConfig) config = stm32_link_config_new (NULL, STM32_DEFAULT_PORT);
  Stm32ConfigLink *link;

  if (!check_duplicate_keys (group, file, error) ||
      !apply_keys (keyfile, group, file, config, error) || !check_link (group, config, file, error))
    return NULL;

  link = g_new0 (Stm32ConfigLink, 1);
  link->name = g_strdup (group->name + strlen (LINK_GROUP_PREFIX));
  link->config = g_steal_pointer (&config);
  return link;
}

/* Two links to one board would hold two of its few connection slots and
 * fight over it; stm32_link_config_dup_endpoint() says what "one board" is. */
static gboolean
check_endpoint (GHashTable *endpoints, GPtrArray *groups, guint index, const Stm32ConfigLink *link,
                const char *file, GError **error)
{
  const ScanGroup *group = g_ptr_array_index (groups, index);
  g_autofree char *endpoint = stm32_link_config_dup_endpoint (link->config);
  guint first = GPOINTER_TO_UINT (g_hash_table_lookup (endpoints, endpoint));
  const ScanGroup *earlier;

  if (first == 0)
    {
      g_hash_table_insert (endpoints, g_steal_pointer (&endpoint), GUINT_TO_POINTER (index + 1));
      return TRUE;
    }
  earlier = g_ptr_array_index (groups, first - 1);
  g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
               "reaches the same board as [%s] on line %u (%s): one link per board, as each "
               "connection takes one of the board's few slots",
               earlier->name, earlier->line, endpoint);
  prefix_location (error, file, group->line, group->name, NULL);
  return FALSE;
}

/* ---- public ---- */

void
stm32_config_link_free (Stm32ConfigLink *link)
{
  if (link == NULL)
    return;
  g_free (link->name);
  stm32_link_config_free (link->config);
  g_free (link);
}

GPtrArray *
stm32_config_load_data (const char *data, gssize length, const char *display_name, GError **error)
{
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();
  g_autoptr (GPtrArray) groups = NULL;
  g_autoptr (GHashTable) seen = NULL;
  g_autoptr (GPtrArray) links =
      g_ptr_array_new_with_free_func ((GDestroyNotify) stm32_config_link_free);
  /* endpoint -> index of the first group that reaches it, plus one */
  g_autoptr (GHashTable) endpoints = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  gsize len;

  g_return_val_if_fail (data != NULL, NULL);
  g_return_val_if_fail (display_name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  len = length < 0 ? strlen (data) : (gsize) length;
  /* It sits on line 1, so skipping it moves no line number. */
  if (len >= strlen (UTF8_BOM) && memcmp (data, UTF8_BOM, strlen (UTF8_BOM)) == 0)
    {
      data += strlen (UTF8_BOM);
      len -= strlen (UTF8_BOM);
    }
  if (!load_keyfile (keyfile, data, len, display_name, error))
    return NULL;

  groups = scan_groups (data, len);
  seen = g_hash_table_new (g_str_hash, g_str_equal);
  /* GKeyFile merges a repeated group into the first one, so a repeat must be
   * caught before the first one's keys are read. */
  for (guint i = 0; i < groups->len; i++)
    if (check_group (seen, groups->pdata[i], display_name, error) == NULL)
      return NULL;
  for (guint i = 0; i < groups->len; i++)
    {
      Stm32ConfigLink *link = parse_link (keyfile, groups->pdata[i], display_name, error);

      if (link == NULL)
        return NULL;
      g_ptr_array_add (links, link);
      if (!check_endpoint (endpoints, groups, i, link, display_name, error))
        return NULL;
    }
  return g_steal_pointer (&links);
}

static void
set_file_error (GError **error, int saved_errno, const char *what, const char *path)
{
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
               "Failed to %s file “%s”: %s", what, path, g_strerror (saved_errno));
}

static const char *
describe_file_type (mode_t mode)
{
  if (S_ISFIFO (mode))
    return "a FIFO (named pipe)";
  if (S_ISCHR (mode))
    return "a character device";
  if (S_ISBLK (mode))
    return "a block device";
  if (S_ISDIR (mode))
    return "a directory";
  if (S_ISSOCK (mode))
    return "a socket";
  return "not a regular file";
}

/* Opens @path for reading only if it is a regular file. O_NONBLOCK: opening
 * a FIFO that has no writer (or a device) would otherwise wait for one,
 * stalling the start or, on Reload, the main loop; the type is checked on
 * the fd opened, so the path cannot change between check and read. A pipe
 * would also give nothing on the next Reload. */
static int
open_regular (const char *path, GError **error)
{
  struct stat st;
  int fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0);

  if (fd < 0)
    {
      set_file_error (error, errno, "open", path);
      return -1;
    }
  if (fstat (fd, &st) < 0)
    {
      set_file_error (error, errno, "examine", path);
      g_close (fd, NULL);
      return -1;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "%s: is %s; stm32d reads its config only from a regular file", path,
                   describe_file_type (st.st_mode));
      g_close (fd, NULL);
      return -1;
    }
  return fd;
}

/* g_file_get_contents() reads until the end, and a file that grows while it
 * is read need not have one: at most STM32_CONFIG_FILE_MAX + 1 bytes are
 * read, so a wrong --config fails at once instead of filling memory. */
static char *
read_bounded (const char *path, gsize *length, GError **error)
{
  g_autofree char *data = NULL;
  gsize size = 0;
  int fd = open_regular (path, error);

  if (fd < 0)
    return NULL;
  data = g_malloc (STM32_CONFIG_FILE_MAX + 2);
  while (size <= STM32_CONFIG_FILE_MAX)
    {
      gssize n = read (fd, data + size, STM32_CONFIG_FILE_MAX + 1 - size);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          set_file_error (error, errno, "read", path);
          g_close (fd, NULL);
          return NULL;
        }
      if (n == 0)
        break;
      size += n;
    }
  g_close (fd, NULL);
  if (size > STM32_CONFIG_FILE_MAX)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "%s: is larger than %u bytes (%u KiB), the most stm32d reads as a config file; "
                   "is it the right file?",
                   path, (guint) STM32_CONFIG_FILE_MAX, (guint) STM32_CONFIG_FILE_MAX / 1024);
      return NULL;
    }
  data[size] = '\0';
  *length = size;
  return g_steal_pointer (&data);
}

GPtrArray *
stm32_config_load_file (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  gsize length;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  data = read_bounded (path, &length, error);
  if (data == NULL)
    return NULL;
  return stm32_config_load_data (data, (gssize) length, path, error);
}
