/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-client.h"
#include "stm32ctl-output.h"

G_BEGIN_DECLS

/* Documented in stm32ctl(1); scripts rely on them. */
typedef enum
{
  STM32CTL_EXIT_OK = 0,
  STM32CTL_EXIT_FAILURE = 1,
  STM32CTL_EXIT_USAGE = 2,
  STM32CTL_EXIT_NOT_CONNECTED = 3,
  STM32CTL_EXIT_TIMEOUT = 4,
  STM32CTL_EXIT_NOT_RUNNING = 5,
  STM32CTL_EXIT_NO_SUCH_LINK = 6,
  STM32CTL_EXIT_ACCESS_DENIED = 7,
  STM32CTL_EXIT_PROBLEMS = 8,      /* doctor: a warning or an error was found */
  STM32CTL_EXIT_INTERRUPTED = 130, /* SIGINT or SIGTERM cancelled a call */
} Stm32CtlExit;

typedef struct
{
  GBusType bus_type;
  char *link_name;           /* -l/--link or a LINK argument; NULL: every link, or the only one */
  guint call_timeout;        /* --timeout: ms each call waits for stm32d */
  GCancellable *cancellable; /* cancelled by SIGINT or SIGTERM during stm32ctl_wait() */
  Stm32Client *client;
} Stm32Ctl;

typedef int (*Stm32CtlCommandFunc) (Stm32Ctl *ctl, int argc, char **argv);

/* -v/--verbose: errors also carry the bus's own words where stm32ctl
 * rephrases them. */
void stm32ctl_set_verbose (gboolean on);

/* Reports @error as "stm32ctl: error: …" plus what to do about it, and
 * returns the exit code that goes with it. Takes @error. */
int stm32ctl_fail (GError *error);

/* Parses a subcommand's options with its own context (prgname "stm32ctl CMD");
 * --help prints and exits 0. On failure returns FALSE with @exit_code set. */
gboolean stm32ctl_parse (const char *command, const char *parameters, const char *summary,
                         const GOptionEntry *entries, int *argc, char ***argv, int *exit_code);

/* Reports a usage error for @command and returns STM32CTL_EXIT_USAGE. */
int stm32ctl_usage (const char *command, const char *format, ...) G_GNUC_PRINTF (2, 3);

/* Like stm32ctl_fail(), but reports an option error (G_OPTION_ERROR) as a
 * usage error for @command. Takes @error. */
int stm32ctl_fail_command (const char *command, GError *error);

/* A GAsyncReadyCallback that stores a reference to the result in the
 * GAsyncResult * that @user_data points to, for stm32ctl_wait(). */
void stm32ctl_store_result (GObject *source, GAsyncResult *result, gpointer user_data);
/* Runs the main loop until *@result is set. Meanwhile SIGINT and SIGTERM
 * cancel ctl->cancellable, so the call in flight ends (G_IO_ERROR_CANCELLED,
 * exit status 130); every call ends anyway, bounded by --timeout. */
void stm32ctl_wait (Stm32Ctl *ctl, GAsyncResult **result);

Stm32Client *stm32ctl_client (Stm32Ctl *ctl, GError **error);
/* A command's optional LINK argument (argv[1]), another way to say -l NAME:
 * at most one, and the same name if both are given. On failure returns FALSE
 * with @exit_code set. */
gboolean stm32ctl_take_link_argument (Stm32Ctl *ctl, const char *command, int argc, char **argv,
                                      int *exit_code);
/* The links a command acts on: the one named, else every link, sorted by name
 * (free the list, not the links); NULL with @error when stm32d is not running,
 * has no links or none of that name. */
GList *stm32ctl_links (Stm32Ctl *ctl, GError **error);
/* The link named with -l, or the only link there is. */
Stm32ClientLink *stm32ctl_link (Stm32Ctl *ctl, GError **error);
/* The board's "HOST:PORT", as configured (free the result). */
char *stm32ctl_link_endpoint (Stm32ClientLink *link);

/* Runs the main loop until SIGINT/SIGTERM (or stm32ctl_quit()). */
void stm32ctl_run_until_interrupted (void);
void stm32ctl_quit (void);

/* Reads the frame a send/transact command was given: text arguments joined by
 * spaces, --hex digits, --file contents, or standard input. */
GBytes *stm32ctl_read_frame (int argc, char **argv, gboolean hex, const char *file, GError **error);
/* Hex digits (spaces and colons between them allowed) as bytes. */
GBytes *stm32ctl_parse_hex (const char *text, GError **error);
/* A frame for people: text when it is printable UTF-8, else hex. */
char *stm32ctl_format_frame (GBytes *frame, gboolean hex);

int stm32ctl_cmd_links (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_status (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_connect (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_disconnect (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_send (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_transact (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_monitor (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_history (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_autoconnect (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_reload (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_doctor (Stm32Ctl *ctl, int argc, char **argv);
int stm32ctl_cmd_metrics (Stm32Ctl *ctl, int argc, char **argv);

G_END_DECLS
