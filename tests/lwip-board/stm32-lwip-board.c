/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* stm32-lwip-board: an STM32 board's TCP server running on the real lwIP 2.1
 * stack, attached to a Linux TAP device. This file is the host side: options,
 * lwIP's clock and timers, boot, restart and quit. The firmware is in
 * board-firmware.c, the Ethernet driver in board-netif.c, the control
 * protocol in board-control.c. */

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>

#include "lwip/init.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"

#include "board-control.h"
#include "board-firmware.h"
#include "board-netif.h"
#include "board.h"
#include "sim-args.h"
#include "sim-events.h"

#define BOARD_DEFAULT_PORT 7 /* ST's echo server example */
#define BOARD_DEFAULT_MAC "02:00:00:00:00:02"
/* Carries stdin read but not executed by the image that restarted (base64). */
#define BOARD_PENDING_ENV "STM32_LWIP_BOARD_PENDING_INPUT"

static const char description[] =
    "Events are written to stdout, one JSON object per line: listening, accepted,\n"
    "rejected, pool-exhausted, frame, eof, malformed, idle-timeout, released,\n"
    "refusing, listener-open, restart, status, ok, error.\n"
    "\n"
    "Commands are read from stdin, one per line; each is answered by one event\n"
    "(status, ok or error). EOF on stdin quits.\n"
    "  status            the board's state, with lwIP's pool and TCP statistics\n"
    "  listen on|off     open or close the listener (closed: SYNs get a RST)\n"
    "  refuse MS         close the listener for MS, then listen again\n"
    "  close-all         tcp_close() every connection (FIN)\n"
    "  rst-all           tcp_abort() every connection (RST)\n"
    "  slots N           resize the connection table (0 = unlimited)\n"
    "  mode good|leak    how the firmware handles EOF from now on\n"
    "  cut on|off        pull (reconnect) the cable: drop every frame both ways\n"
    "  restart [MS]      reset the board: the stack comes back empty after MS\n"
    "  quit              abort every connection (RST) and exit\n";

BoardContext board_context;

static struct
{
  char **argv; /* as started, for restart */
  GMainLoop *loop;
  FwConfig fw;
  BoardNetifConfig netif;
  char *tap;
  guint boot_delay_ms;
  guint boot_timer;
  gboolean up;
  guint stack_timer;
  int status;
} board;

/* --- lwIP's platform ----------------------------------------------------- */

u32_t
sys_now (void)
{
  return (u32_t) (g_get_monotonic_time () / 1000);
}

void
lwip_board_diag (const char *format, ...)
{
  va_list args;

  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
}

void
lwip_board_assert (const char *message, const char *file, int line)
{
  fprintf (stderr, "stm32-lwip-board: lwIP assertion “%s” failed at %s:%d\n", message, file, line);
  abort ();
}

static gboolean
on_stack_timer (gpointer user_data)
{
  board.stack_timer = 0;
  board_stack_poll ();
  return G_SOURCE_REMOVE;
}

void
board_stack_poll (void)
{
  u32_t sleep;

  if (!board.up)
    return;
  board_context = BOARD_CONTEXT_TIMER;
  sys_check_timeouts ();
  board_context = BOARD_CONTEXT_OTHER;
  /* One timer for lwIP's next timeout and no polling: an idle board wakes
   * only when lwIP has something to do (ARP and reassembly each second, TCP
   * every 250 ms while it has PCBs). */
  g_clear_handle_id (&board.stack_timer, g_source_remove);
  sleep = sys_timeouts_sleeptime ();
  if (sleep != SYS_TIMEOUTS_SLEEPTIME_INFINITE)
    board.stack_timer = g_timeout_add (sleep, on_stack_timer, NULL);
}

gboolean
board_is_up (void)
{
  return board.up;
}

/* --- boot, restart, quit ------------------------------------------------- */

static gboolean
boot (GError **error)
{
  char ip[IP4ADDR_STRLEN_MAX];
  JsonBuilder *event;

  if (!board_netif_open (&board.netif, error))
    return FALSE;
  board.up = TRUE;
  if (!fw_start (error))
    return FALSE;
  /* Only now: a test connects as soon as it reads this. */
  event = sim_event_new ("listening");
  sim_event_add_int (event, "port", fw_get_port ());
  sim_event_add_string (event, "ip", ip4addr_ntoa_r (&board.netif.ip, ip, sizeof ip));
  sim_event_add_bool (event, "open", fw_is_listening ());
  sim_event_emit (event);
  board_stack_poll ();
  return TRUE;
}

static void
boot_or_quit (void)
{
  g_autoptr (GError) error = NULL;

  if (boot (&error))
    return;
  g_printerr ("stm32-lwip-board: error: %s\n", error->message);
  board.status = 1;
  g_main_loop_quit (board.loop);
}

static gboolean
on_boot_timer (gpointer user_data)
{
  board.boot_timer = 0;
  boot_or_quit ();
  return G_SOURCE_REMOVE;
}

void
board_quit (void)
{
  g_main_loop_quit (board.loop);
}

/* Same options, but the port the stack actually had (--port 0 picked one) and
 * the boot delay of this restart. */
static char **
restart_argv (guint delay_ms)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();

  for (guint i = 0; board.argv[i] != NULL; i++)
    {
      const char *arg = board.argv[i];

      if (i > 0 && (g_str_equal (arg, "--port") || g_str_equal (arg, "--boot-delay")))
        {
          i += board.argv[i + 1] != NULL;
          continue;
        }
      if (i > 0 && (g_str_has_prefix (arg, "--port=") || g_str_has_prefix (arg, "--boot-delay=")))
        continue;
      g_strv_builder_add (builder, arg);
    }
  g_autofree char *port = g_strdup_printf ("--port=%u", fw_get_port ());
  g_autofree char *delay = g_strdup_printf ("--boot-delay=%u", delay_ms);

  g_strv_builder_add (builder, port);
  g_strv_builder_add (builder, delay);
  return g_strv_builder_end (builder);
}

void
board_restart (guint delay_ms, const char *pending, gsize pending_len)
{
  g_auto (GStrv) argv = restart_argv (delay_ms);

  if (pending_len > 0)
    {
      g_autofree char *encoded = g_base64_encode ((const guchar *) pending, pending_len);

      g_setenv (BOARD_PENDING_ENV, encoded, TRUE);
    }
  else
    g_unsetenv (BOARD_PENDING_ENV);
  /* No RST, no FIN: a reset board just vanishes. Closing the TAP takes the
   * link down until the new image attaches; the new lwIP starts empty. */
  board_netif_unplug ();
  sim_events_shutdown (); /* flushes the events, "ok" included */
  execv ("/proc/self/exe", argv);
  fprintf (stderr, "stm32-lwip-board: error: cannot re-execute /proc/self/exe: %s\n",
           g_strerror (errno));
  _exit (1);
}

static gboolean
on_quit_signal (gpointer user_data)
{
  board_quit ();
  return G_SOURCE_CONTINUE;
}

/* --- options ------------------------------------------------------------- */

typedef struct
{
  char *tap;
  char *ip;
  char *gw;
  char *mac;
  int port;
  char *framing;
  int max_frame;
  char *reply;
  char *firmware;
  int slots;
  char *when_full;
  char *prio;
  int idle_timeout;
  char *on_malformed;
  int boot_delay;
  gboolean quiet;
} Options;

static void
options_clear (Options *o)
{
  g_free (o->tap);
  g_free (o->ip);
  g_free (o->gw);
  g_free (o->mac);
  g_free (o->framing);
  g_free (o->reply);
  g_free (o->firmware);
  g_free (o->when_full);
  g_free (o->prio);
  g_free (o->on_malformed);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Options, options_clear)

static gboolean
bad_value (GError **error, const char *option, const char *value, const char *expected)
{
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s: “%s” is not %s", option, value,
               expected);
  return FALSE;
}

static gboolean
parse_ip (const char *option, const char *text, ip4_addr_t *ip, GError **error)
{
  if (!ip4addr_aton (text, ip))
    return bad_value (error, option, text, "an IPv4 address");
  return TRUE;
}

static gboolean
parse_ip_prefix (const char *text, ip4_addr_t *ip, ip4_addr_t *netmask, GError **error)
{
  g_auto (GStrv) parts = NULL;
  guint64 prefix;

  if (text == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           "--ip A.B.C.D/PREFIX is required");
      return FALSE;
    }
  parts = g_strsplit (text, "/", 2);
  if (parts[1] == NULL || !g_ascii_string_to_unsigned (parts[1], 10, 1, 32, &prefix, NULL))
    return bad_value (error, "--ip", text, "A.B.C.D/PREFIX (PREFIX 1…32)");
  if (!parse_ip ("--ip", parts[0], ip, error))
    return FALSE;
  ip4_addr_set_u32 (netmask, lwip_htonl (prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix)));
  return TRUE;
}

static gboolean
parse_mac (const char *text, guint8 mac[6], GError **error)
{
  guint v[6];
  char end;

  if (sscanf (text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) !=
          6 ||
      (v[0] & 1) != 0)
    return bad_value (error, "--mac", text, "a unicast MAC address XX:XX:XX:XX:XX:XX");
  for (guint i = 0; i < 6; i++)
    mac[i] = (guint8) v[i];
  return TRUE;
}

static gboolean
make_config (const Options *o, GError **error)
{
  static const char *const framings[] = { "line", "raw", "u16be", "u32be", "json", NULL };
  static const Stm32Framing framing_values[] = { STM32_FRAMING_LINE, STM32_FRAMING_RAW,
                                                 STM32_FRAMING_U16BE, STM32_FRAMING_U32BE,
                                                 STM32_FRAMING_JSON };
  static const char *const replies[] = { "echo", "none", NULL };
  static const char *const firmwares[] = { "good", "leak", NULL };
  static const char *const when_full[] = { "abort", "close", NULL };
  static const char *const prios[] = { "normal", "min", NULL };
  static const char *const malformed[] = { "close", "abort", "ignore", NULL };
  int framing, reply, firmware, full, prio, on_malformed;
  FwConfig *fw = &board.fw;

  if (o->tap == NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "--tap NAME is required");
      return FALSE;
    }
  if (!sim_check_range ("--port", o->port, 0, G_MAXUINT16, error) ||
      !sim_check_range ("--max-frame", o->max_frame, 1, G_MAXINT, error) ||
      !sim_check_range ("--slots", o->slots, 0, G_MAXINT, error) ||
      !sim_check_range ("--idle-timeout", o->idle_timeout, 0, G_MAXINT, error) ||
      !sim_check_range ("--boot-delay", o->boot_delay, 0, G_MAXINT, error) ||
      (framing = sim_parse_choice ("--framing", o->framing, framings, error)) < 0 ||
      (reply = sim_parse_choice ("--reply", o->reply, replies, error)) < 0 ||
      (firmware = sim_parse_choice ("--firmware", o->firmware, firmwares, error)) < 0 ||
      (full = sim_parse_choice ("--when-full", o->when_full, when_full, error)) < 0 ||
      (prio = sim_parse_choice ("--prio", o->prio, prios, error)) < 0 ||
      (on_malformed = sim_parse_choice ("--on-malformed", o->on_malformed, malformed, error)) < 0 ||
      !parse_ip_prefix (o->ip, &board.netif.ip, &board.netif.netmask, error) ||
      (o->gw != NULL && !parse_ip ("--gw", o->gw, &board.netif.gw, error)) ||
      !parse_mac (o->mac != NULL ? o->mac : BOARD_DEFAULT_MAC, board.netif.mac, error))
    return FALSE;
  board.tap = g_strdup (o->tap);
  board.netif.tap = board.tap;
  board.boot_delay_ms = (guint) o->boot_delay;
  fw->port = (guint16) o->port;
  fw->framing = framing_values[framing];
  fw->max_frame = (gsize) o->max_frame;
  fw->echo = reply == 0;
  fw->mode = firmware == 0 ? FW_MODE_GOOD : FW_MODE_LEAK;
  fw->slots = (guint) o->slots;
  fw->when_full = full == 0 ? FW_WHEN_FULL_ABORT : FW_WHEN_FULL_CLOSE;
  fw->prio_min = prio == 1;
  fw->idle_timeout_ms = (guint) o->idle_timeout;
  fw->on_malformed = (FwOnMalformed) on_malformed;
  fw->listen = TRUE;
  fw->quiet = o->quiet;
  return TRUE;
}

static gboolean
parse_options (int *argc, char ***argv, GError **error)
{
  /* String options stay NULL when not given; make_config() has the defaults. */
  g_auto (Options) o = { .port = BOARD_DEFAULT_PORT, .max_frame = 65536 };
  const GOptionEntry entries[] = {
    { "tap", 0, 0, G_OPTION_ARG_STRING, &o.tap, "Existing TAP device to attach to (required)",
      "NAME" },
    { "ip", 0, 0, G_OPTION_ARG_STRING, &o.ip, "The board's address (required)", "A.B.C.D/PREFIX" },
    { "gw", 0, 0, G_OPTION_ARG_STRING, &o.gw, "Gateway (none)", "A.B.C.D" },
    { "mac", 0, 0, G_OPTION_ARG_STRING, &o.mac, "MAC address (" BOARD_DEFAULT_MAC ")",
      "XX:XX:XX:XX:XX:XX" },
    { "port", 0, 0, G_OPTION_ARG_INT, &o.port, "TCP port (7; 0 = lwIP picks one)", "N" },
    { "framing", 0, 0, G_OPTION_ARG_STRING, &o.framing, "raw|line|u16be|u32be|json (line)", "F" },
    { "max-frame", 0, 0, G_OPTION_ARG_INT, &o.max_frame, "Largest frame in bytes (65536)", "N" },
    { "reply", 0, 0, G_OPTION_ARG_STRING, &o.reply, "Answer to frames: echo|none (echo)", "R" },
    { "firmware", 0, 0, G_OPTION_ARG_STRING, &o.firmware,
      "On EOF: good (tcp_close) or leak (ignore it) (good)", "M" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &o.firmware, "Same as --firmware", "M" },
    { "slots", 0, 0, G_OPTION_ARG_INT, &o.slots, "Connection table size (0 = unlimited, default)",
      "N" },
    { "when-full", 0, 0, G_OPTION_ARG_STRING, &o.when_full,
      "Table full: accept, then abort (RST) or close (FIN) (abort)", "A" },
    { "prio", 0, 0, G_OPTION_ARG_STRING, &o.prio,
      "Accepted PCBs' priority: normal, or min (lwIP evicts them for new SYNs) (normal)", "P" },
    { "idle-timeout", 0, 0, G_OPTION_ARG_INT, &o.idle_timeout,
      "Close a connection silent for MS (0 = off; checked every 500 ms)", "MS" },
    { "on-malformed", 0, 0, G_OPTION_ARG_STRING, &o.on_malformed,
      "Invalid frame: close|abort|ignore (close)", "A" },
    { "boot-delay", 0, 0, G_OPTION_ARG_INT, &o.boot_delay,
      "Wait MS before the link and stack come up", "MS" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet, "No per-frame events", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) context =
      g_option_context_new ("- STM32 board firmware on lwIP, attached to a TAP device");

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
  return make_config (&o, error);
}

/* Input the image that restarted into this one had read but not executed. */
static GBytes *
take_pending_input (void)
{
  const char *encoded = g_getenv (BOARD_PENDING_ENV);
  guchar *data;
  gsize len = 0;

  if (encoded == NULL)
    return g_bytes_new (NULL, 0);
  data = g_base64_decode (encoded, &len);
  g_unsetenv (BOARD_PENDING_ENV);
  return g_bytes_new_take (data, len);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) pending = NULL;
  guint sigterm, sigint;

  setlocale (LC_ALL, "");
  /* stdout carries only events. */
  g_log_writer_default_set_use_stderr (TRUE);
  /* A harness that went away must not end the board mid-write. */
  signal (SIGPIPE, SIG_IGN);
  board.argv = g_strdupv (argv);
  if (!parse_options (&argc, &argv, &error))
    {
      g_printerr ("stm32-lwip-board: error: %s\n", error->message);
      g_strfreev (board.argv);
      return 1;
    }
  /* lwIP's first local port comes from here (LWIP_RAND). */
  srandom (g_random_int ());
  sim_events_init ();
  lwip_init ();
  fw_init (&board.fw);
  board.loop = g_main_loop_new (NULL, FALSE);
  pending = take_pending_input ();
  board_control_start (g_bytes_get_data (pending, NULL), g_bytes_get_size (pending));
  if (board.boot_delay_ms > 0)
    board.boot_timer = g_timeout_add (board.boot_delay_ms, on_boot_timer, NULL);
  else
    boot_or_quit ();
  board_control_run_pending ();
  sigterm = g_unix_signal_add (SIGTERM, on_quit_signal, NULL);
  sigint = g_unix_signal_add (SIGINT, on_quit_signal, NULL);
  if (board.status == 0)
    g_main_loop_run (board.loop);
  g_source_remove (sigterm);
  g_source_remove (sigint);
  g_clear_handle_id (&board.boot_timer, g_source_remove);
  board_control_stop ();
  /* Quit resets every connection, so that no PC waits on a board that is gone. */
  fw_stop ();
  board.up = FALSE;
  g_clear_handle_id (&board.stack_timer, g_source_remove);
  board_netif_close ();
  sim_events_shutdown ();
  g_main_loop_unref (board.loop);
  g_free (board.tap);
  g_strfreev (board.argv);
  return board.status;
}
