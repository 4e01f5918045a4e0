/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-deadline.h"

static gboolean
on_deadline (gpointer user_data)
{
  Stm32Deadline *deadline = user_data;

  deadline->timer = 0;
  deadline->timed_out = TRUE;
  g_cancellable_cancel (deadline->cancellable);
  return G_SOURCE_REMOVE;
}

static void
on_parent_cancelled (GCancellable *parent, GCancellable *cancellable)
{
  g_cancellable_cancel (cancellable);
}

void
stm32_deadline_start (Stm32Deadline *deadline, GCancellable *parent, guint ms)
{
  deadline->cancellable = g_cancellable_new ();
  deadline->timed_out = FALSE;
  deadline->timer = g_timeout_add (ms, on_deadline, deadline);
  if (parent != NULL)
    {
      deadline->parent = g_object_ref (parent);
      deadline->parent_handler =
          g_cancellable_connect (parent, G_CALLBACK (on_parent_cancelled),
                                 g_object_ref (deadline->cancellable), g_object_unref);
    }
}

void
stm32_deadline_stop (Stm32Deadline *deadline)
{
  g_clear_handle_id (&deadline->timer, g_source_remove);
  if (deadline->parent != NULL)
    g_cancellable_disconnect (deadline->parent, deadline->parent_handler);
  deadline->parent_handler = 0;
  g_clear_object (&deadline->parent);
  g_clear_object (&deadline->cancellable);
}
