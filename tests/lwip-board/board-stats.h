/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Adds lwIP's own view to a status event: "memp" (every pool's used, max,
 * err, avail), "heap" (the same for mem.c's heap) and "tcp" (PCBs per state
 * in "states", and the TCP protocol counters). */
void board_stats_add (JsonBuilder *builder);

/* Name of an lwIP enum tcp_state value, as in RFC 793 (ESTABLISHED, ...). */
const char *board_stats_tcp_state_name (int state);
/* The used/err counters of the TCP_PCB pool. */
void board_stats_tcp_pcb_pool (guint *used, guint *err);

G_END_DECLS
