/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-dbus-generated.h"
#include "stm32-error.h"

G_BEGIN_DECLS

/* Runs the real stm32d on the test's private session bus (GTestDBus, set up by
 * stm32_daemon_test_init) and reaches it through the generated proxies. Every
 * wait is bounded and fails the test on timeout. */
typedef struct _Stm32Daemon Stm32Daemon;

/* g_test_init() plus a private session bus for the whole test program. */
void stm32_daemon_test_init (int *argc, char ***argv);
int stm32_daemon_test_run (void);

/* Starts `stm32d --session ARGS…` and waits until it owns its name (with
 * --replace: until the name moved to it). */
Stm32Daemon *stm32_daemon_start (const char *first_arg, ...) G_GNUC_NULL_TERMINATED;
/* The same, started by @launcher: its environment and its child setup (a
 * sandbox, sandbox-harness.h). */
Stm32Daemon *stm32_daemon_start_by (GSubprocessLauncher *launcher, const char *first_arg,
                                    ...) G_GNUC_NULL_TERMINATED;

/* stm32_daemon_start() with the daemon's stderr kept for
 * stm32_daemon_get_log() (and copied to the test log line by line). */
Stm32Daemon *stm32_daemon_start_logged (const char *first_arg, ...) G_GNUC_NULL_TERMINATED;
/* What a daemon from stm32_daemon_start_logged() logged so far. */
const char *stm32_daemon_get_log (Stm32Daemon *daemon);

/* Starts stm32d as @argv says (@argv[0] is its path), its stdio as @flags
 * say, and waits until it owns its name, without the harness's proxies: for
 * a program that reaches stm32d through libstm32client (the bench), whose
 * own copy of the generated types would clash with the harness's (a GType
 * registers once). Only the process functions (get_pid, send_signal,
 * wait_exit, free) apply to it. */
Stm32Daemon *stm32_daemon_spawn (const char *const *argv, GSubprocessFlags flags);

/* Waits (bounded) for /org/stm32d/link/NAME and returns its proxy (owned by the daemon). */
Stm32DbusLink1 *stm32_daemon_get_link (Stm32Daemon *daemon, const char *name);
/* The link object, or NULL if it is not (or no longer) exported. */
Stm32DbusLink1 *stm32_daemon_peek_link (Stm32Daemon *daemon, const char *name);
Stm32DbusManager1 *stm32_daemon_get_manager (Stm32Daemon *daemon);

/* Whether the link's State (as the proxy last heard it) is @state. */
gboolean stm32_daemon_link_state_is (Stm32DbusLink1 *link, const char *state);
/* @text as the "ay" a Link1 method takes (floating). */
GVariant *stm32_daemon_bytes (const char *text);

/* Link1 calls made synchronous for tests: each runs the main loop until the
 * reply comes, bounded like every other wait here. */
gboolean stm32_daemon_link_connect (Stm32DbusLink1 *link, GError **error);
/* Disconnects and asserts the call succeeded without error. */
void stm32_daemon_link_disconnect (Stm32DbusLink1 *link);
/* Connects @link (not connected, its board answering) and disconnects it
 * again, then returns stm32d's open fds with the connection's fd gone: the
 * count at rest, for fd-leak checks and fd limits. Taken right after start,
 * a count may include a netlink socket of the start-up socket census, which
 * a first connection waits for. */
guint stm32_daemon_count_fds_at_rest (Stm32Daemon *daemon, Stm32DbusLink1 *link);
gboolean stm32_daemon_link_send (Stm32DbusLink1 *link, const char *text, GError **error);
/* The reply as text, or NULL with @error. */
char *stm32_daemon_link_transact (Stm32DbusLink1 *link, const char *text, guint timeout_ms,
                                  GError **error);
/* Link1.OpenTransactChannel: the channel's fd (ours to close; asserted to be
 * SOCK_SEQPACKET), or -1 with @error. */
int stm32_daemon_link_open_channel (Stm32DbusLink1 *link, GError **error);
/* Asserts @error came over the wire as @remote_name and maps back to @code. */
void stm32_daemon_assert_error (const GError *error, const char *remote_name, Stm32Error code);

/* The match rules stm32d's bus connection holds, as the bus counts them
 * (org.freedesktop.DBus.Debug.Stats.GetConnectionStats, "MatchRules"). */
guint stm32_daemon_count_match_rules (Stm32Daemon *daemon);

/* SIGSTOP returns once stm32d is stopped, SIGCONT once it runs again
 * (stm32_test_send_signal()); any other signal is only sent. */
void stm32_daemon_send_signal (Stm32Daemon *daemon, int signum);
/* The daemon's process id, for looking at it in /proc. */
GPid stm32_daemon_get_pid (Stm32Daemon *daemon);
/* Waits for the daemon to exit and returns its exit status; frees nothing. */
int stm32_daemon_wait_exit (Stm32Daemon *daemon);
/* SIGTERM, waits, asserts exit status 0, frees. */
void stm32_daemon_stop (Stm32Daemon *daemon);
void stm32_daemon_free (Stm32Daemon *daemon);

/* Runs stm32d to completion with ARGS (for start-up failures); returns its
 * exit status and its stderr in @err. */
int stm32_daemon_run_to_exit (char **err, const char *first_arg, ...) G_GNUC_NULL_TERMINATED;

G_END_DECLS
