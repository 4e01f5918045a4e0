/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "sim-board.h"

G_BEGIN_DECLS

/* Commands on stdin, one per line. Each command is answered by exactly one
 * event, in order: "status" for status, "error" if it failed, else "ok".
 * "quit" and EOF on stdin quit @loop. */
typedef struct _SimControl SimControl;

/* Every command acts on each of @boards (SimBoard, not owned). */
SimControl *sim_control_new (GPtrArray *boards, GMainLoop *loop);
void sim_control_free (SimControl *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SimControl, sim_control_free)

G_END_DECLS
