/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/*
 * The one output layer of stm32ctl: commands add records of fields, each with
 * a stable key (for --json, for scripts) and a label and text (for people).
 * One record prints as aligned "label: text" lines or a JSON object; several
 * print as a table or a JSON array.
 */
typedef struct _Stm32CtlOutput Stm32CtlOutput;

Stm32CtlOutput *stm32ctl_output_new (gboolean json);
void stm32ctl_output_free (Stm32CtlOutput *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32CtlOutput, stm32ctl_output_free)

/* Starts a new record; fields that follow belong to it. A field whose label
 * is NULL is for --json only. */
void stm32ctl_output_record (Stm32CtlOutput *self);
void stm32ctl_output_string (Stm32CtlOutput *self, const char *key, const char *label,
                             const char *value);
/* @text is what people see; @value is what --json carries. */
void stm32ctl_output_string_text (Stm32CtlOutput *self, const char *key, const char *label,
                                  const char *value, const char *text);
void stm32ctl_output_uint (Stm32CtlOutput *self, const char *key, const char *label, guint64 value,
                           const char *text);
void stm32ctl_output_int (Stm32CtlOutput *self, const char *key, const char *label, gint64 value,
                          const char *text);
void stm32ctl_output_bool (Stm32CtlOutput *self, const char *key, const char *label,
                           gboolean value);
/* A field that --json carries as null (an absent value) and people see as @text. */
void stm32ctl_output_null (Stm32CtlOutput *self, const char *key, const char *label,
                           const char *text);
/* A field for --json only whose value is @node (taken): nested records,
 * from stm32ctl_output_to_json() of another output, or an array. */
void stm32ctl_output_node (Stm32CtlOutput *self, const char *key, JsonNode *node);

/* The records as JSON: an array, or (unless @as_array) the first one as an object. */
JsonNode *stm32ctl_output_to_json (Stm32CtlOutput *self, gboolean as_array);

/* Prints the records: aligned text, a table (@as_table with several records),
 * or JSON (a single record as an object unless @as_table). */
void stm32ctl_output_print (Stm32CtlOutput *self, gboolean as_table);

/* Whether stdout takes colour: a tty, TERM is not "dumb", and NO_COLOR is unset or empty. */
gboolean stm32ctl_output_use_color (void);
/* @text in the colour that goes with a link state, if colour is on (free the result). */
char *stm32ctl_output_state (const char *state);
/* "3 min 12 s ago" style duration since @since_us (wall clock). */
char *stm32ctl_output_since (guint64 since_us);
/* "1.2 KiB" */
char *stm32ctl_output_bytes (guint64 bytes);

G_END_DECLS
