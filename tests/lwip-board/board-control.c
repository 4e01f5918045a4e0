/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "board-control.h"

#include <errno.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>

#include "board-firmware.h"
#include "board-netif.h"
#include "board-stats.h"
#include "board.h"
#include "sim-args.h"
#include "sim-events.h"

/* Longer lines are not commands; this keeps a stray binary on stdin harmless. */
#define CONTROL_LINE_MAX 1024

/* stdin is read with plain read()s into this buffer rather than through a
 * buffered stream, so that on "restart" the bytes read but not yet executed
 * are known exactly and can be handed to the new image. */
static struct
{
  GString *input;
  guint watch;
  gboolean skipping; /* inside an overlong line: dropped up to its newline */
  gboolean stopped;  /* after quit or restart: nothing more is executed */
} ctl;

typedef gboolean (*CommandFunc) (char **args, GError **error);

typedef struct
{
  const char *name;
  guint min_args, max_args;
  const char *usage;
  CommandFunc func;
  gboolean answers_itself; /* emits its own answer event instead of "ok" */
} Command;

static gboolean
cmd_status (char **args, GError **error)
{
  JsonBuilder *event = sim_event_new ("status");

  sim_event_add_bool (event, "up", board_is_up ());
  fw_add_status (event);
  board_netif_add_status (event);
  board_stats_add (event);
  sim_event_emit (event);
  return TRUE;
}

static guint refuse_timer;

static gboolean
on_refuse_over (gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  JsonBuilder *event;

  refuse_timer = 0;
  if (!fw_set_listening (TRUE, &error))
    {
      sim_event_error ("cannot listen again on port %u: %s", fw_get_port (), error->message);
      return G_SOURCE_REMOVE;
    }
  event = sim_event_new ("listener-open");
  sim_event_add_int (event, "port", fw_get_port ());
  sim_event_add_int (event, "slots_in_use", fw_slots_in_use ());
  sim_event_emit (event);
  board_stack_poll ();
  return G_SOURCE_REMOVE;
}

static gboolean
cmd_refuse (char **args, GError **error)
{
  JsonBuilder *event;
  guint ms;

  if (!sim_parse_uint (args[0], &ms, error) || !fw_set_listening (FALSE, error))
    return FALSE;
  g_clear_handle_id (&refuse_timer, g_source_remove);
  refuse_timer = g_timeout_add (ms, on_refuse_over, NULL);
  event = sim_event_new ("refusing");
  sim_event_add_int (event, "port", fw_get_port ());
  sim_event_add_int (event, "ms", ms);
  sim_event_emit (event);
  return TRUE;
}

static gboolean
cmd_listen (char **args, GError **error)
{
  gboolean on;

  if (!sim_parse_on_off (args[0], "on", "off", &on, error))
    return FALSE;
  g_clear_handle_id (&refuse_timer, g_source_remove);
  return fw_set_listening (on, error);
}

static gboolean
cmd_close_all (char **args, GError **error)
{
  fw_close_all ();
  return TRUE;
}

static gboolean
cmd_rst_all (char **args, GError **error)
{
  fw_rst_all ();
  return TRUE;
}

static gboolean
cmd_slots (char **args, GError **error)
{
  guint slots;

  if (!sim_parse_uint (args[0], &slots, error))
    return FALSE;
  fw_set_slots (slots);
  return TRUE;
}

static gboolean
cmd_mode (char **args, GError **error)
{
  gboolean leak;

  if (!sim_parse_on_off (args[0], "leak", "good", &leak, error))
    return FALSE;
  fw_set_mode (leak ? FW_MODE_LEAK : FW_MODE_GOOD);
  return TRUE;
}

static gboolean
cmd_cut (char **args, GError **error)
{
  gboolean on;

  if (!sim_parse_on_off (args[0], "on", "off", &on, error))
    return FALSE;
  board_netif_set_cut (on);
  return TRUE;
}

static gboolean
cmd_restart (char **args, GError **error)
{
  guint ms = 0;
  JsonBuilder *event;

  if (args[0] != NULL && !sim_parse_uint (args[0], &ms, error))
    return FALSE;
  event = sim_event_new ("restart");
  sim_event_add_int (event, "port", fw_get_port ());
  sim_event_add_int (event, "boot_delay_ms", ms);
  sim_event_emit (event);
  event = sim_event_new ("ok");
  sim_event_add_string (event, "command", "restart");
  sim_event_emit (event);
  ctl.stopped = TRUE;
  board_restart (ms, ctl.input->str, ctl.input->len);
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "re-executing the board failed");
  return FALSE;
}

static gboolean
cmd_quit (char **args, GError **error)
{
  ctl.stopped = TRUE;
  board_quit ();
  return TRUE;
}

static const Command commands[] = {
  { "status", 0, 0, "status", cmd_status, TRUE },
  { "refuse", 1, 1, "refuse MS", cmd_refuse },
  { "listen", 1, 1, "listen on|off", cmd_listen },
  { "close-all", 0, 0, "close-all", cmd_close_all },
  { "rst-all", 0, 0, "rst-all", cmd_rst_all },
  { "slots", 1, 1, "slots N", cmd_slots },
  { "mode", 1, 1, "mode good|leak", cmd_mode },
  { "cut", 1, 1, "cut on|off", cmd_cut },
  { "restart", 0, 1, "restart [MS]", cmd_restart, TRUE },
  { "quit", 0, 0, "quit", cmd_quit },
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
execute (const char *line)
{
  g_auto (GStrv) args = g_strsplit_set (line, " \t", -1);
  g_autoptr (GError) error = NULL;
  const Command *command = NULL;
  guint n_args = 0, j = 0;
  JsonBuilder *event;

  /* Drops the empty words that runs of blanks leave. */
  for (guint i = 0; args[i] != NULL; i++)
    if (args[i][0] != '\0')
      args[j++] = args[i];
    else
      g_free (args[i]);
  args[j] = NULL;
  if (args[0] == NULL)
    return;
  n_args = j - 1;
  for (guint i = 0; i < G_N_ELEMENTS (commands) && command == NULL; i++)
    if (g_str_equal (args[0], commands[i].name))
      command = &commands[i];
  if (command == NULL)
    {
      g_autofree char *message = g_strdup_printf ("unknown command “%s”", args[0]);

      reply_error (args[0], message);
      return;
    }
  if (n_args < command->min_args || n_args > command->max_args)
    {
      g_autofree char *message = g_strdup_printf ("usage: %s", command->usage);

      reply_error (args[0], message);
      return;
    }
  if (!command->func (args + 1, &error))
    {
      reply_error (args[0], error->message);
      return;
    }
  /* A command may have added lwIP timeouts (a close starts the TCP timer). */
  board_stack_poll ();
  if (command->answers_itself)
    return;
  event = sim_event_new ("ok");
  sim_event_add_string (event, "command", args[0]);
  sim_event_emit (event);
}

/* Executes the complete lines in the buffer, and, at end of input, the last
 * unterminated one. */
static void
execute_lines (gboolean eof)
{
  while (!ctl.stopped)
    {
      char *newline = memchr (ctl.input->str, '\n', ctl.input->len);
      g_autofree char *line = NULL;

      if (newline == NULL && (!eof || ctl.input->len == 0))
        break;
      if (newline == NULL)
        newline = ctl.input->str + ctl.input->len;
      line = g_strndup (ctl.input->str, (gsize) (newline - ctl.input->str));
      g_string_erase (ctl.input, 0, MIN ((gssize) ctl.input->len, newline - ctl.input->str + 1));
      if (ctl.skipping)
        {
          ctl.skipping = FALSE;
          continue;
        }
      g_strchomp (line);
      if (!g_utf8_validate (line, -1, NULL))
        reply_error ("", "command line is not UTF-8");
      else
        execute (line);
    }
  if (!ctl.stopped && ctl.input->len > CONTROL_LINE_MAX)
    {
      reply_error ("", "command line too long");
      g_string_truncate (ctl.input, 0);
      ctl.skipping = TRUE;
    }
}

static gboolean
on_stdin (int fd, GIOCondition condition, gpointer user_data)
{
  char buffer[4096];
  ssize_t n;

  /* One read per wake-up: poll() said there is data (or EOF), so it does not
   * block, and stdin need not be made non-blocking for a shell that shares it. */
  do
    n = read (fd, buffer, sizeof buffer);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    {
      g_string_append_len (ctl.input, buffer, n);
      execute_lines (FALSE);
      if (!ctl.stopped)
        return G_SOURCE_CONTINUE;
    }
  else
    {
      if (n < 0 && errno != EAGAIN)
        g_warning ("stdin: %s", g_strerror (errno));
      if (n < 0 && errno == EAGAIN)
        return G_SOURCE_CONTINUE;
      execute_lines (TRUE);
      if (!ctl.stopped)
        board_quit ();
    }
  ctl.watch = 0;
  return G_SOURCE_REMOVE;
}

void
board_control_start (const char *pending, gsize pending_len)
{
  ctl.input = g_string_new_len (pending, (gssize) pending_len);
  ctl.watch = g_unix_fd_add (STDIN_FILENO, G_IO_IN, on_stdin, NULL);
}

void
board_control_run_pending (void)
{
  execute_lines (FALSE);
}

void
board_control_stop (void)
{
  g_clear_handle_id (&ctl.watch, g_source_remove);
  g_clear_handle_id (&refuse_timer, g_source_remove);
  if (ctl.input != NULL)
    g_string_free (ctl.input, TRUE);
  ctl.input = NULL;
}
