/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Drives the board simulator (tests/sim/stm32-sim) from a GTest test: starts
 * it, reads its events asynchronously into a queue on the default main
 * context, sends commands on its stdin. Every wait is bounded and fails the
 * test on timeout, so a test never hangs on the simulator. The test must run
 * the default main context (stm32_test_wait_until) for events to arrive. */
typedef struct _Stm32Sim Stm32Sim;

/* Starts the simulator with the given options (NULL-terminated); adds
 * "--port 0" unless a port is given; waits (5 s) for its "listening" event. */
Stm32Sim *stm32_sim_start (const char *first_arg, ...) G_GNUC_NULL_TERMINATED;
/* The same, run inside network namespace @netns (`ip netns exec`; needs root). */
Stm32Sim *stm32_sim_start_in_netns (const char *netns, const char *first_arg,
                                    ...) G_GNUC_NULL_TERMINATED;
/* Starts any board program that speaks the simulator's protocol (stdin
 * commands, JSON events, a "listening" event first), e.g. the lwIP board;
 * @argv[0] is its path. */
Stm32Sim *stm32_sim_spawn (const char *const *argv);
/* stm32_sim_spawn() with the board alone on CPU @cpu (-1: wherever the
 * scheduler puts it), as a board in a lab is another machine. */
Stm32Sim *stm32_sim_spawn_on_cpu (const char *const *argv, int cpu);
guint16 stm32_sim_get_port (Stm32Sim *sim);
/* SIGSTOP/SIGCONT: a board that is not scheduled, so that packets queue up
 * for it and reach its loop together; each returns once it took effect
 * (stm32_test_send_signal()). */
void stm32_sim_send_signal (Stm32Sim *sim, int signum);

/* Sends a command and returns its answer (an "ok", "status" or "error" event),
 * waiting at most 5 s. */
JsonObject *stm32_sim_request (Stm32Sim *sim, const char *command);
/* Sends a command that must succeed; fails the test if the answer is an error. */
void stm32_sim_command (Stm32Sim *sim, const char *command);
/* The "status" event (see tests/sim/README.md for its members). */
JsonObject *stm32_sim_status (Stm32Sim *sim);
/* One integer member of the "status" event; fails the test if it is missing. */
gint64 stm32_sim_status_int (Stm32Sim *sim, const char *member);
/* How many connections the board released the way @how says ("peer-reset",
 * "closed-after-eof", … see tests/sim/README.md), 0 if none was. */
gint64 stm32_sim_released_how (Stm32Sim *sim, const char *how);

/* Removes and returns the oldest not-yet-consumed event named @event, waiting
 * for it at most @timeout_ms; fails the test on timeout or if the simulator
 * exits. Free with json_object_unref(). */
JsonObject *stm32_sim_wait_event (Stm32Sim *sim, const char *event, guint timeout_ms);
/* Waits for @event like stm32_sim_wait_event(), for tests that need only the fact. */
void stm32_sim_expect (Stm32Sim *sim, const char *event, guint timeout_ms);
/* How many events named @event arrived so far, consumed or not. */
guint stm32_sim_count_events (Stm32Sim *sim, const char *event);
/* When the latest event named @event was read (g_get_monotonic_time()), or 0
 * if none arrived: for timing what the board reported against what followed. */
gint64 stm32_sim_last_event_time (Stm32Sim *sim, const char *event);
/* Drops every event not consumed yet (counts stay): for long runs whose
 * events no one will wait for, which would otherwise pile up. */
void stm32_sim_discard_events (Stm32Sim *sim);

/* Sends "quit", waits for the simulator to exit and asserts it exited with
 * status 0 (so a leak or crash found by the sanitizers fails the test); frees @sim. */
void stm32_sim_stop (Stm32Sim *sim);

/* stm32_sim_start() with its options as a NULL-terminated array (NULL for
 * none), e.g. a GTest fixture's data. */
Stm32Sim *stm32_sim_startv (const char *const *options);
/* Such an array written in place; it lives as long as the enclosing block, so
 * one made in main() serves as fixture data for the whole g_test_run(). */
#define STM32_SIM_OPTIONS(...) ((const char *const[]){ __VA_ARGS__, NULL })

G_END_DECLS
