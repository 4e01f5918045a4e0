/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-history.h"

struct _Stm32History
{
  GQueue entries;
  guint capacity;
};

Stm32HistoryEntry *
stm32_history_entry_copy (const Stm32HistoryEntry *entry)
{
  Stm32HistoryEntry *copy = g_memdup2 (entry, sizeof *entry);

  copy->error = g_strdup (entry->error);
  copy->local_address = g_strdup (entry->local_address);
  copy->remote_address = g_strdup (entry->remote_address);
  return copy;
}

void
stm32_history_entry_free (Stm32HistoryEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->error);
  g_free (entry->local_address);
  g_free (entry->remote_address);
  g_free (entry);
}

Stm32History *
stm32_history_new (guint capacity)
{
  Stm32History *self = g_new0 (Stm32History, 1);

  g_queue_init (&self->entries);
  self->capacity = MAX (capacity, 1);
  return self;
}

void
stm32_history_free (Stm32History *self)
{
  if (self == NULL)
    return;
  g_queue_clear_full (&self->entries, (GDestroyNotify) stm32_history_entry_free);
  g_free (self);
}

void
stm32_history_push (Stm32History *self, Stm32HistoryEntry *entry)
{
  g_queue_push_tail (&self->entries, entry);
  while (self->entries.length > self->capacity)
    stm32_history_entry_free (g_queue_pop_head (&self->entries));
}

GPtrArray *
stm32_history_dup_entries (const Stm32History *self)
{
  GPtrArray *copy =
      g_ptr_array_new_full (self->entries.length, (GDestroyNotify) stm32_history_entry_free);

  for (GList *l = self->entries.head; l != NULL; l = l->next)
    g_ptr_array_add (copy, stm32_history_entry_copy (l->data));
  return copy;
}
