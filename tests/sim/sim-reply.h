/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* What the firmware answers to a received frame: the scripted reply if the
 * frame matches a script line, else an echo (or nothing with --reply none). */
typedef struct _SimReply SimReply;

/* @script_path may be NULL. Script lines are REQUEST<TAB>REPLY with escapes
 * \\ \t \n \r \xHH; blank lines and lines starting with '#' are skipped.
 * With @delay_marks, a request that starts with "~MS " is answered MS ms
 * late and one that starts with "~- " never: a slow or forgetful firmware,
 * request by request. */
SimReply *sim_reply_new (gboolean echo, const char *script_path, gboolean delay_marks,
                         GError **error);
void sim_reply_free (SimReply *self);

/* The frame to send back, or NULL for none, and how late (@delay_ms). */
GBytes *sim_reply_answer (SimReply *self, GBytes *request, guint *delay_ms);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SimReply, sim_reply_free)

G_END_DECLS
