/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-control.h"

#include <gio/gio.h>
#include <gio/gunixinputstream.h>

#include "sim-args.h"
#include "sim-events.h"

/* Longer lines are not commands; this keeps a stray binary on stdin harmless. */
#define SIM_COMMAND_MAX 1024

struct _SimControl
{
  GPtrArray *boards; /* SimBoard, not owned; every command acts on each */
  GMainLoop *loop;
  GDataInputStream *input;
  GCancellable *cancellable;
  gboolean reading;
};

typedef gboolean (*SimCommandFunc) (SimControl *self, char **args, GError **error);

typedef struct
{
  const char *name;
  guint n_args;
  const char *usage;
  SimCommandFunc func;
  gboolean answers_itself; /* emits its own answer event instead of "ok" */
} SimCommand;

static gboolean
cmd_status (SimControl *self, char **args, GError **error)
{
  sim_boards_emit_status ((SimBoard **) self->boards->pdata, self->boards->len);
  return TRUE;
}

static gboolean
cmd_refuse (SimControl *self, char **args, GError **error)
{
  guint ms;

  if (!sim_parse_uint (args[0], &ms, error))
    return FALSE;
  for (guint i = 0; i < self->boards->len; i++)
    if (!sim_board_refuse (self->boards->pdata[i], ms, error))
      return FALSE;
  return TRUE;
}

static gboolean
cmd_restart (SimControl *self, char **args, GError **error)
{
  for (guint i = 0; i < self->boards->len; i++)
    sim_board_restart (self->boards->pdata[i]);
  return TRUE;
}

static gboolean
cmd_blackhole (SimControl *self, char **args, GError **error)
{
  gboolean on;

  if (!sim_parse_on_off (args[0], "on", "off", &on, error))
    return FALSE;
  for (guint i = 0; i < self->boards->len; i++)
    sim_board_set_blackhole (self->boards->pdata[i], on);
  return TRUE;
}

static gboolean
cmd_close_all (SimControl *self, char **args, GError **error)
{
  for (guint i = 0; i < self->boards->len; i++)
    sim_board_close_all (self->boards->pdata[i]);
  return TRUE;
}

static gboolean
cmd_rst_all (SimControl *self, char **args, GError **error)
{
  for (guint i = 0; i < self->boards->len; i++)
    sim_board_rst_all (self->boards->pdata[i]);
  return TRUE;
}

static gboolean
cmd_slots (SimControl *self, char **args, GError **error)
{
  guint slots;

  if (!sim_parse_uint (args[0], &slots, error))
    return FALSE;
  for (guint i = 0; i < self->boards->len; i++)
    sim_board_set_slots (self->boards->pdata[i], slots);
  return TRUE;
}

static gboolean
cmd_mode (SimControl *self, char **args, GError **error)
{
  gboolean leak;

  if (!sim_parse_on_off (args[0], "leak", "good", &leak, error))
    return FALSE;
  for (guint i = 0; i < self->boards->len; i++)
    sim_board_set_mode (self->boards->pdata[i], leak ? SIM_MODE_LEAK : SIM_MODE_GOOD);
  return TRUE;
}

static gboolean
cmd_flood (SimControl *self, char **args, GError **error)
{
  guint bytes, size;

  if (!sim_parse_uint (args[0], &bytes, error) || !sim_parse_uint (args[1], &size, error))
    return FALSE;
  for (guint i = 0; i < self->boards->len; i++)
    if (!sim_board_flood (self->boards->pdata[i], bytes, size, error))
      return FALSE;
  return TRUE;
}

static gboolean
cmd_quit (SimControl *self, char **args, GError **error)
{
  g_main_loop_quit (self->loop);
  return TRUE;
}

static const SimCommand commands[] = {
  { "status", 0, "status", cmd_status, TRUE },
  { "refuse", 1, "refuse MS", cmd_refuse },
  { "restart", 0, "restart", cmd_restart },
  { "blackhole", 1, "blackhole on|off", cmd_blackhole },
  { "close-all", 0, "close-all", cmd_close_all },
  { "rst-all", 0, "rst-all", cmd_rst_all },
  { "slots", 1, "slots N", cmd_slots },
  { "mode", 1, "mode good|leak", cmd_mode },
  { "flood", 2, "flood BYTES SIZE", cmd_flood },
  { "quit", 0, "quit", cmd_quit },
};

static void
reply_error (const char *command, const char *message)
{
  JsonBuilder *event = sim_event_new ("error");

  sim_event_add_string (event, "command", command);
  sim_event_add_string (event, "message", message);
  sim_event_emit (event);
}

static void
execute (SimControl *self, const char *line)
{
  g_auto (GStrv) words = g_strsplit_set (line, " \t", -1);
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  g_auto (GStrv) args = NULL;
  g_autoptr (GError) error = NULL;
  const SimCommand *command = NULL;
  JsonBuilder *event;

  for (guint i = 0; words[i] != NULL; i++)
    if (words[i][0] != '\0')
      g_strv_builder_add (builder, words[i]);
  args = g_strv_builder_end (builder);
  if (args[0] == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (commands) && command == NULL; i++)
    if (g_str_equal (args[0], commands[i].name))
      command = &commands[i];
  if (command == NULL)
    {
      g_autofree char *message = g_strdup_printf ("unknown command “%s”", args[0]);

      reply_error (args[0], message);
      return;
    }
  if (g_strv_length (args) != command->n_args + 1)
    {
      g_autofree char *message = g_strdup_printf ("usage: %s", command->usage);

      reply_error (args[0], message);
      return;
    }
  if (!command->func (self, args + 1, &error))
    {
      reply_error (args[0], error->message);
      return;
    }
  if (command->answers_itself)
    return;
  event = sim_event_new ("ok");
  sim_event_add_string (event, "command", args[0]);
  sim_event_emit (event);
}

static void read_next (SimControl *self);

static void
on_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SimControl *self = user_data;
  g_autoptr (GError) error = NULL;
  gsize length;
  g_autofree char *line =
      g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, &length, &error);

  self->reading = FALSE;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (line == NULL)
    {
      if (error != NULL)
        g_warning ("stdin: %s", error->message);
      g_main_loop_quit (self->loop);
      return;
    }
  g_strchomp (line);
  if (length > SIM_COMMAND_MAX)
    reply_error ("", "command line too long");
  else if (!g_utf8_validate (line, -1, NULL))
    reply_error ("", "command line is not UTF-8");
  else
    execute (self, line);
  if (g_main_loop_is_running (self->loop))
    read_next (self);
}

static void
read_next (SimControl *self)
{
  self->reading = TRUE;
  g_data_input_stream_read_line_async (self->input, G_PRIORITY_DEFAULT, self->cancellable, on_line,
                                       self);
}

SimControl *
sim_control_new (GPtrArray *boards, GMainLoop *loop)
{
  SimControl *self = g_new0 (SimControl, 1);
  g_autoptr (GInputStream) stdin_stream = g_unix_input_stream_new (STDIN_FILENO, FALSE);

  self->boards = g_ptr_array_ref (boards);
  self->loop = loop;
  self->cancellable = g_cancellable_new ();
  self->input = g_data_input_stream_new (stdin_stream);
  read_next (self);
  return self;
}

void
sim_control_free (SimControl *self)
{
  gint64 deadline = g_get_monotonic_time () + G_USEC_PER_SEC;

  if (self == NULL)
    return;
  g_cancellable_cancel (self->cancellable);
  /* GIO runs the callback even after cancelling; it needs @self. */
  while (self->reading && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, FALSE);
  if (self->reading)
    g_warning ("stdin read did not finish after cancelling");
  g_clear_object (&self->input);
  g_clear_object (&self->cancellable);
  g_ptr_array_unref (self->boards);
  g_free (self);
}
