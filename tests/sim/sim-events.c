/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-events.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

/* A reader that stops reading must not stall the board, so on a pipe or socket
 * stdout is non-blocking and lines wait in a backlog. Past the first bound
 * per-frame events are dropped, so that a reader that is merely slow still gets
 * every answer and every connection event; past the second, everything is.
 * Dropped events are counted and reported once there is room again. */
#define SIM_EVENTS_LOSSY_MAX (8 * 1024 * 1024)
#define SIM_EVENTS_BACKLOG_MAX (64 * 1024 * 1024)

static struct
{
  gboolean initialized;
  gboolean nonblocking;
  int saved_flags;
  gboolean broken; /* the reader is gone (EPIPE): output is discarded */
  GString *backlog;
  gsize sent; /* bytes at the start of backlog already written */
  guint watch;
  guint64 lost;
} out;

static void flush_backlog (void);

static gboolean
on_stdout_writable (int fd, GIOCondition condition, gpointer user_data)
{
  out.watch = 0;
  flush_backlog ();
  return G_SOURCE_REMOVE;
}

static gsize
pending (void)
{
  return out.backlog->len - out.sent;
}

/* Writes as much of the backlog as stdout takes now; watches for room if any is left. */
static void
flush_backlog (void)
{
  while (pending () > 0 && !out.broken)
    {
      ssize_t n = write (STDOUT_FILENO, out.backlog->str + out.sent, pending ());

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n < 0)
        out.broken = TRUE;
      else
        out.sent += (gsize) n;
    }
  /* Written bytes are dropped in large steps, not per write, to avoid
   * moving a large backlog again and again. */
  if (pending () == 0 || out.broken)
    {
      g_string_truncate (out.backlog, 0);
      out.sent = 0;
    }
  else if (out.sent > out.backlog->len / 2)
    {
      g_string_erase (out.backlog, 0, (gssize) out.sent);
      out.sent = 0;
    }
  if (pending () > 0 && out.watch == 0)
    out.watch = g_unix_fd_add (STDOUT_FILENO, G_IO_OUT, on_stdout_writable, NULL);
  if (pending () == 0 && out.lost > 0 && !out.broken)
    {
      guint64 lost = out.lost;

      out.lost = 0;
      g_string_append_printf (
          out.backlog, "{\"event\":\"events-lost\",\"count\":%" G_GUINT64_FORMAT "}\n", lost);
      flush_backlog ();
    }
}

void
sim_events_init (void)
{
  struct stat st;

  g_return_if_fail (!out.initialized);
  out.initialized = TRUE;
  out.backlog = g_string_new (NULL);
  out.saved_flags = fcntl (STDOUT_FILENO, F_GETFL);
  /* Only pipes and sockets can stall; a tty or file shared with a shell is
   * left blocking so the shell does not inherit O_NONBLOCK. */
  if (out.saved_flags >= 0 && fstat (STDOUT_FILENO, &st) == 0 &&
      (S_ISFIFO (st.st_mode) || S_ISSOCK (st.st_mode)))
    out.nonblocking = fcntl (STDOUT_FILENO, F_SETFL, out.saved_flags | O_NONBLOCK) == 0;
}

void
sim_events_shutdown (void)
{
  if (!out.initialized)
    return;
  g_clear_handle_id (&out.watch, g_source_remove);
  if (out.nonblocking)
    fcntl (STDOUT_FILENO, F_SETFL, out.saved_flags);
  out.nonblocking = FALSE;
  flush_backlog ();
  g_clear_handle_id (&out.watch, g_source_remove);
  g_string_free (out.backlog, TRUE);
  out.backlog = NULL;
  out.initialized = FALSE;
}

static void
write_line (const char *line, gsize bound)
{
  if (!out.initialized || out.broken)
    return;
  if (pending () + strlen (line) + 1 > bound)
    {
      out.lost++;
      return;
    }
  g_string_append (out.backlog, line);
  g_string_append_c (out.backlog, '\n');
  if (out.watch == 0)
    flush_backlog ();
}

JsonBuilder *
sim_event_new (const char *name)
{
  JsonBuilder *builder = json_builder_new ();

  json_builder_begin_object (builder);
  sim_event_add_string (builder, "event", name);
  return builder;
}

void
sim_event_add_int (JsonBuilder *builder, const char *member, gint64 value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_int_value (builder, value);
}

void
sim_event_add_string (JsonBuilder *builder, const char *member, const char *value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_string_value (builder, value);
}

void
sim_event_add_bool (JsonBuilder *builder, const char *member, gboolean value)
{
  json_builder_set_member_name (builder, member);
  json_builder_add_boolean_value (builder, value);
}

void
sim_event_add_payload (JsonBuilder *builder, const guint8 *data, gsize len, gsize limit)
{
  g_autoptr (GString) hex = NULL;

  if (len > limit)
    return;
  /* JSON strings are UTF-8 without NUL; anything else is shown as hex. */
  if (memchr (data, '\0', len) == NULL && g_utf8_validate_len ((const char *) data, len, NULL))
    {
      g_autofree char *text = g_strndup ((const char *) data, len);

      sim_event_add_string (builder, "data", text);
      return;
    }
  hex = g_string_sized_new (len * 2);
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", data[i]);
  sim_event_add_string (builder, "hex", hex->str);
}

static void
emit (JsonBuilder *builder, gsize bound)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *line = NULL;

  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  g_object_unref (builder);
  json_generator_set_root (generator, root);
  line = json_generator_to_data (generator, NULL);
  write_line (line, bound);
}

void
sim_event_emit (JsonBuilder *builder)
{
  emit (builder, SIM_EVENTS_BACKLOG_MAX);
}

void
sim_event_emit_lossy (JsonBuilder *builder)
{
  emit (builder, SIM_EVENTS_LOSSY_MAX);
}

void
sim_event_error (const char *format, ...)
{
  JsonBuilder *builder = sim_event_new ("error");
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  sim_event_add_string (builder, "message", message);
  sim_event_emit (builder);
}
