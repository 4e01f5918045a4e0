/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* What the host side of the board (stm32-lwip-board.c) offers the firmware,
 * the TAP driver and the control commands. Everything runs on one thread, the
 * GLib main loop's, as lwIP with NO_SYS requires. */

/* What lwIP is doing while a callback runs: lets the firmware tell a PCB that
 * lwIP evicted to admit a new connection (during input) from one that timed
 * out (during the timers). */
typedef enum
{
  BOARD_CONTEXT_OTHER,
  BOARD_CONTEXT_INPUT,
  BOARD_CONTEXT_TIMER,
} BoardContext;

extern BoardContext board_context;

/* Runs lwIP's due timeouts and re-arms the one timer that waits for the next;
 * called after anything that may have added a timeout (input, commands). */
void board_stack_poll (void);
/* TRUE once the stack is up (after --boot-delay). */
gboolean board_is_up (void);
/* A clean reset: closes the TAP and re-executes the board with the same
 * options, after @delay_ms; @pending is stdin that was read but not yet
 * executed, handed to the new image. Returns only if exec failed. */
void board_restart (guint delay_ms, const char *pending, gsize pending_len);
void board_quit (void);

G_END_DECLS
