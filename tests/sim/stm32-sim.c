/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* stm32-sim: a stand-in for an STM32 board running an lwIP TCP server, with
 * its small connection table and its firmware's failure modes on demand. */

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <sys/resource.h>

#include <glib-unix.h>

#include "sim-args.h"
#include "sim-board.h"
#include "sim-conn.h"
#include "sim-control.h"
#include "sim-events.h"

#define SIM_DEFAULT_SLOTS 4
#define SIM_DEFAULT_BACKLOG 4
#define SIM_DEFAULT_FIN_WAIT_MS 2000
/* Like the 1,000-byte lines of a board streaming measurements. */
#define SIM_DEFAULT_FLOOD_FRAME_SIZE 1000

static const char description[] =
    "Events are written to stdout, one JSON object per line: listening, accepted,\n"
    "rejected, drop-on, drop-off, frame, eof, malformed, idle-timeout, blackhole,\n"
    "released, refusing, listener-open, restart, flood-done, status, ok, error.\n"
    "\n"
    "Commands are read from stdin, one per line; each is answered by one event\n"
    "(status, ok or error). EOF on stdin quits.\n"
    "  status            print the board's state\n"
    "  refuse MS         close the listener for MS, then listen on the same port\n"
    "  restart           reboot: reset every connection, free all slots\n"
    "  blackhole on|off  current connections stop (resume) reading and answering\n"
    "  close-all         close every connection (FIN)\n"
    "  rst-all           abort every connection (RST)\n"
    "  slots N           resize the connection table (0 = unlimited)\n"
    "  mode good|leak    how the firmware handles EOF from now on\n"
    "  flood BYTES SIZE  open connections send BYTES in frames of SIZE, at once\n"
    "  quit              reset every connection and exit\n";

/* The options as typed, before validation. */
typedef struct
{
  char *listen;
  int port;
  char *framing;
  int max_frame;
  char *reply;
  char *script;
  int slots;
  char *when_full;
  int backlog;
  char *mode;
  int idle_timeout;
  char *on_malformed;
  int blackhole_after;
  int rst_after;
  int close_after;
  int refuse_for;
  int fin_wait;
  gboolean quiet;
  gboolean delay_marks;
  gint64 flood_bytes;
  int flood_frame_size;
  int boards;
} SimOptions;

static void
sim_options_clear (SimOptions *options)
{
  g_free (options->listen);
  g_free (options->framing);
  g_free (options->reply);
  g_free (options->script);
  g_free (options->when_full);
  g_free (options->mode);
  g_free (options->on_malformed);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (SimOptions, sim_options_clear)

static gboolean
check_flood (const SimOptions *o, GError **error)
{
  if (o->flood_bytes < 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--flood-bytes: %" G_GINT64_FORMAT " is negative", o->flood_bytes);
      return FALSE;
    }
  return o->flood_bytes == 0 || sim_check_range ("--flood-frame-size", o->flood_frame_size,
                                                 SIM_FLOOD_FRAME_MIN, o->max_frame, error);
}

static gboolean
check_numbers (const SimOptions *o, GError **error)
{
  return sim_check_range ("--port", o->port, 0, G_MAXUINT16, error) &&
         sim_check_range ("--max-frame", o->max_frame, 1, G_MAXINT, error) &&
         sim_check_range ("--slots", o->slots, 0, G_MAXINT, error) &&
         sim_check_range ("--backlog", o->backlog, 1, 4096, error) &&
         sim_check_range ("--idle-timeout", o->idle_timeout, 0, G_MAXINT, error) &&
         sim_check_range ("--blackhole-after", o->blackhole_after, -1, G_MAXINT, error) &&
         sim_check_range ("--rst-after", o->rst_after, -1, G_MAXINT, error) &&
         sim_check_range ("--close-after", o->close_after, -1, G_MAXINT, error) &&
         sim_check_range ("--refuse-for", o->refuse_for, 0, G_MAXINT, error) &&
         sim_check_range ("--fin-wait", o->fin_wait, 1, G_MAXINT, error) &&
         sim_check_range ("--boards", o->boards, 1, 65535, error) && check_flood (o, error);
}

/* Turns validated options into the board's configuration. */
static gboolean
make_config (const SimOptions *o, SimConfig *config, GError **error)
{
  static const char *const framings[] = { "line", "raw", "u16be", "u32be", "json", NULL };
  static const Stm32Framing framing_values[] = { STM32_FRAMING_LINE, STM32_FRAMING_RAW,
                                                 STM32_FRAMING_U16BE, STM32_FRAMING_U32BE,
                                                 STM32_FRAMING_JSON };
  static const char *const replies[] = { "echo", "none", NULL };
  static const char *const when_full[] = { "rst", "drop", NULL };
  static const char *const modes[] = { "good", "leak", NULL };
  static const char *const malformed[] = { "close", "rst", "ignore", NULL };
  int framing, reply, full, mode, on_malformed;

  if (!check_numbers (o, error) ||
      (framing = sim_parse_choice ("--framing", o->framing, framings, error)) < 0 ||
      (reply = sim_parse_choice ("--reply", o->reply, replies, error)) < 0 ||
      (full = sim_parse_choice ("--when-full", o->when_full, when_full, error)) < 0 ||
      (mode = sim_parse_choice ("--mode", o->mode, modes, error)) < 0 ||
      (on_malformed = sim_parse_choice ("--on-malformed", o->on_malformed, malformed, error)) < 0)
    return FALSE;
  config->reply = sim_reply_new (reply == 0, o->script, o->delay_marks, error);
  if (config->reply == NULL)
    return FALSE;
  config->listen_address = g_strdup (o->listen != NULL ? o->listen : "127.0.0.1");
  config->port = (guint16) o->port;
  config->framing = framing_values[framing];
  config->max_frame = (gsize) o->max_frame;
  config->slots = (guint) o->slots;
  config->when_full = full;
  config->backlog = o->backlog;
  config->mode = mode;
  config->idle_timeout_ms = (guint) o->idle_timeout;
  config->on_malformed = on_malformed;
  config->blackhole_after = o->blackhole_after;
  config->rst_after = o->rst_after;
  config->close_after = o->close_after;
  config->refuse_for_ms = (guint) o->refuse_for;
  config->fin_wait_ms = (guint) o->fin_wait;
  config->quiet = o->quiet;
  config->flood_bytes = (guint64) o->flood_bytes;
  config->flood_frame_size = (gsize) o->flood_frame_size;
  return TRUE;
}

static gboolean
parse_options (int *argc, char ***argv, SimConfig *config, guint *boards, GError **error)
{
  /* String options stay NULL when not given (GOption would leak a default it
   * overwrites); make_config() supplies their defaults. */
  g_auto (SimOptions) o = {
    .max_frame = 65536,
    .slots = SIM_DEFAULT_SLOTS,
    .backlog = SIM_DEFAULT_BACKLOG,
    .blackhole_after = -1,
    .rst_after = -1,
    .close_after = -1,
    .fin_wait = SIM_DEFAULT_FIN_WAIT_MS,
    .flood_frame_size = SIM_DEFAULT_FLOOD_FRAME_SIZE,
    .boards = 1,
  };
  const GOptionEntry entries[] = {
    { "listen", 0, 0, G_OPTION_ARG_STRING, &o.listen, "Address to listen on (127.0.0.1)", "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &o.port, "Port (0 = ephemeral, the default)", "N" },
    { "framing", 0, 0, G_OPTION_ARG_STRING, &o.framing, "raw|line|u16be|u32be|json (line)", "F" },
    { "max-frame", 0, 0, G_OPTION_ARG_INT, &o.max_frame, "Largest frame in bytes (65536)", "N" },
    { "reply", 0, 0, G_OPTION_ARG_STRING, &o.reply, "Answer to unscripted frames: echo|none (echo)",
      "R" },
    { "script", 0, 0, G_OPTION_ARG_FILENAME, &o.script, "Replies, one REQUEST<TAB>REPLY per line",
      "FILE" },
    { "slots", 0, 0, G_OPTION_ARG_INT, &o.slots, "Connection table size (4; 0 = unlimited)", "N" },
    { "when-full", 0, 0, G_OPTION_ARG_STRING, &o.when_full,
      "Table full: rst (accept, then RST) or drop (drop SYNs) (rst)", "A" },
    { "backlog", 0, 0, G_OPTION_ARG_INT, &o.backlog, "Listen backlog (4)", "N" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &o.mode,
      "Firmware on EOF: good (close) or leak (ignore it) (good)", "M" },
    { "idle-timeout", 0, 0, G_OPTION_ARG_INT, &o.idle_timeout,
      "Close a connection silent for MS (0 = off)", "MS" },
    { "on-malformed", 0, 0, G_OPTION_ARG_STRING, &o.on_malformed,
      "Invalid frame: close|rst|ignore (close)", "A" },
    { "blackhole-after", 0, 0, G_OPTION_ARG_INT, &o.blackhole_after,
      "Go silent after N frames (-1 = off)", "N" },
    { "rst-after", 0, 0, G_OPTION_ARG_INT, &o.rst_after, "RST after answering N frames (-1 = off)",
      "N" },
    { "close-after", 0, 0, G_OPTION_ARG_INT, &o.close_after,
      "FIN after answering N frames (-1 = off)", "N" },
    { "refuse-for", 0, 0, G_OPTION_ARG_INT, &o.refuse_for, "Refuse connections for the first MS",
      "MS" },
    { "fin-wait", 0, 0, G_OPTION_ARG_INT, &o.fin_wait,
      "After the board's FIN, wait MS for the PC's (2000)", "MS" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet, "No per-frame events", NULL },
    { "flood-bytes", 0, 0, G_OPTION_ARG_INT64, &o.flood_bytes,
      "Each connection sends N bytes of frames from its accept, at once (0 = off)", "N" },
    { "flood-frame-size", 0, 0, G_OPTION_ARG_INT, &o.flood_frame_size,
      "Payload bytes of each flood frame (1000)", "N" },
    { "boards", 0, 0, G_OPTION_ARG_INT, &o.boards,
      "Play N boards alike, each on its own ephemeral port (1)", "N" },
    { "delay-marks", 0, 0, G_OPTION_ARG_NONE, &o.delay_marks,
      "Answer a frame starting \"~MS \" MS ms late, one starting \"~- \" never", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) context =
      g_option_context_new ("- simulated STM32 board (lwIP TCP server)");

  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context, description);
  if (!g_option_context_parse (context, argc, argv, error))
    return FALSE;
  if (*argc > 1)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument “%s”",
                   (*argv)[1]);
      return FALSE;
    }
  if (o.boards > 1 && o.port != 0)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           "--boards: each board takes an ephemeral port; leave --port out");
      return FALSE;
    }
  *boards = (guint) MAX (o.boards, 1);
  return make_config (&o, config, error);
}

static void
sim_config_clear (SimConfig *config)
{
  g_free (config->listen_address);
  g_clear_pointer (&config->reply, sim_reply_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (SimConfig, sim_config_clear)

/* Many boards take two fds each (listener, connection): a default soft
 * limit of 1024 would stop at about 500. GLib polls with poll(). */
static void
raise_fd_limit (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max &&
      limit.rlim_max != RLIM_INFINITY)
    {
      limit.rlim_cur = limit.rlim_max;
      if (setrlimit (RLIMIT_NOFILE, &limit) != 0)
        g_debug ("cannot raise the fd limit: %s", g_strerror (errno));
    }
}

static gboolean
on_quit_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_auto (SimConfig) config = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (GPtrArray) boards = g_ptr_array_new_with_free_func ((GDestroyNotify) sim_board_free);
  g_autoptr (SimControl) control = NULL;
  guint sigterm, sigint, n_boards = 1;

  setlocale (LC_ALL, "");
  /* stdout carries only events. */
  g_log_writer_default_set_use_stderr (TRUE);
  /* A write to a socket the PC reset, or to a harness that went away, must be an
   * error to handle, not the end of the process. */
  signal (SIGPIPE, SIG_IGN);
  if (!parse_options (&argc, &argv, &config, &n_boards, &error))
    {
      g_printerr ("stm32-sim: error: %s\n", error->message);
      return 1;
    }
  sim_events_init ();
  raise_fd_limit ();
  loop = g_main_loop_new (NULL, FALSE);
  for (guint i = 0; i < n_boards; i++)
    {
      SimBoard *board = sim_board_new (&config, &error);

      if (board == NULL)
        {
          g_printerr ("stm32-sim: error: %s\n", error->message);
          g_clear_pointer (&boards, g_ptr_array_unref);
          sim_events_shutdown ();
          return 1;
        }
      g_ptr_array_add (boards, board);
    }
  control = sim_control_new (boards, loop);
  sigterm = g_unix_signal_add (SIGTERM, on_quit_signal, loop);
  sigint = g_unix_signal_add (SIGINT, on_quit_signal, loop);
  g_main_loop_run (loop);
  g_source_remove (sigterm);
  g_source_remove (sigint);
  g_clear_pointer (&control, sim_control_free);
  g_clear_pointer (&boards, g_ptr_array_unref);
  sim_events_shutdown ();
  return 0;
}
