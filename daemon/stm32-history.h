/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "stm32-link-types.h"

G_BEGIN_DECLS

/* One connection attempt, from the start of connecting to the fd being gone.
 * Times are wall-clock microseconds (g_get_real_time), 0 when it never happened. */
typedef struct
{
  gint64 started;
  gint64 connected;
  gint64 closed;
  /* Last bytes each way: how long the connection was quiet before it ended,
   * and whether the board's close followed a frame of ours it never answered. */
  gint64 last_sent;
  gint64 last_received;
  guint64 bytes_sent;
  guint64 bytes_received;
  guint64 frames_sent;
  guint64 frames_received;
  guint64 late_replies; /* replies that came after their caller stopped waiting */
  Stm32ClosedBy closed_by;
  Stm32EndReason reason;
  Stm32Detector detector;    /* what noticed the end, when the socket did not say */
  gboolean aborted;          /* ended with our RST (SO_LINGER 0) rather than a graceful close */
  Stm32CloseKind close_kind; /* how we closed it on request; NONE if we did not */
  gint64 fin_delay;          /* µs from our FIN to the board's; -1 if none came */
  char *error;               /* what went wrong, for people; NULL after a clean close */
  char *local_address;
  char *remote_address;
} Stm32HistoryEntry;

Stm32HistoryEntry *stm32_history_entry_copy (const Stm32HistoryEntry *entry);
void stm32_history_entry_free (Stm32HistoryEntry *entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32HistoryEntry, stm32_history_entry_free)

/* Ring of the most recent attempts; the oldest is dropped when it is full. */
typedef struct _Stm32History Stm32History;

Stm32History *stm32_history_new (guint capacity);
void stm32_history_free (Stm32History *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32History, stm32_history_free)

/* Takes ownership of @entry. */
void stm32_history_push (Stm32History *self, Stm32HistoryEntry *entry);

/* Copies, oldest first; a GPtrArray that frees its entries. */
GPtrArray *stm32_history_dup_entries (const Stm32History *self);

G_END_DECLS
