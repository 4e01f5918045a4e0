/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A bounded wait: a timer and the caller's cancellation, as one cancellable.
 * Pass @cancellable to the operation; it is cancelled when @ms run out
 * (@timed_out is then TRUE) or when the caller's cancellable is. A
 * zero-filled Stm32Deadline is stopped; stopping one twice is harmless. */
typedef struct
{
  GCancellable *cancellable;
  GCancellable *parent;
  gulong parent_handler;
  guint timer;
  gboolean timed_out;
} Stm32Deadline;

void stm32_deadline_start (Stm32Deadline *deadline, GCancellable *parent, guint ms);

/* Called from a callback, never from the parent's cancelled handler itself:
 * g_cancellable_disconnect() would deadlock there. */
void stm32_deadline_stop (Stm32Deadline *deadline);

G_END_DECLS
