/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "sim-config.h"

G_BEGIN_DECLS

/* The board: its listener and its connection table (the "slots"). A slot is
 * taken at accept and given back only when the board releases the connection,
 * which is what runs dry on a real lwIP board when the PC closes badly. */
typedef struct _SimBoard SimBoard;

/* Starts listening (or refusing, with --refuse-for) and emits "listening".
 * @config must outlive the board; "slots" and "mode" commands change it. */
SimBoard *sim_board_new (SimConfig *config, GError **error);
/* Resets every connection, as a board switched off would not; the PC side
 * then sees a definite end instead of a half-open connection. */
void sim_board_free (SimBoard *self);

gboolean sim_board_refuse (SimBoard *self, guint ms, GError **error);
void sim_board_restart (SimBoard *self);
void sim_board_set_blackhole (SimBoard *self, gboolean on);
void sim_board_close_all (SimBoard *self);
void sim_board_rst_all (SimBoard *self);
void sim_board_set_slots (SimBoard *self, guint slots);
void sim_board_set_mode (SimBoard *self, SimMode mode);
void sim_board_emit_status (SimBoard *self);
/* One "status" event for @n boards (--boards): the first one's alone if
 * @n is 1, else their counts added up, with "boards" and no connection list. */
void sim_boards_emit_status (SimBoard **boards, guint n);
/* Every open connection floods @bytes in frames of @frame_size (sim_conn_flood). */
gboolean sim_board_flood (SimBoard *self, guint64 bytes, gsize frame_size, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SimBoard, sim_board_free)

G_END_DECLS
