/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The control protocol on stdin: one command per line, each answered by
 * exactly one event ("ok", "status" or "error"), in order. EOF quits. */

/* Starts reading stdin; @pending is input a previous image had read but not
 * executed (see board_restart()). */
void board_control_start (const char *pending, gsize pending_len);
/* Executes the complete lines of @pending given to board_control_start(). */
void board_control_run_pending (void);
void board_control_stop (void);

G_END_DECLS
