/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Events are the simulator's output: one JSON object per line on stdout, the
 * "event" member first. Usage: b = sim_event_new ("x"); sim_event_add_* (b, ...);
 * sim_event_emit (b). */

void sim_events_init (void);
/* Writes whatever is still queued, waiting if it must; only for shutdown. */
void sim_events_shutdown (void);

JsonBuilder *sim_event_new (const char *name);
void sim_event_add_int (JsonBuilder *builder, const char *member, gint64 value);
void sim_event_add_string (JsonBuilder *builder, const char *member, const char *value);
void sim_event_add_bool (JsonBuilder *builder, const char *member, gboolean value);
/* Adds @data as "data" (UTF-8 text) or "hex", when it is at most @limit bytes. */
void sim_event_add_payload (JsonBuilder *builder, const guint8 *data, gsize len, gsize limit);
/* Ends the object, writes it as one line and unrefs @builder. */
void sim_event_emit (JsonBuilder *builder);
/* The same for events that come at the rate of data (frames): these are the
 * first dropped when the reader falls far behind ("events-lost" says how many). */
void sim_event_emit_lossy (JsonBuilder *builder);

/* Shorthand for {"event":"error","message":...}. */
void sim_event_error (const char *format, ...) G_GNUC_PRINTF (1, 2);

G_END_DECLS
