/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "stm32-link.h"

G_BEGIN_DECLS

/* Synchronous wrappers around a Stm32Link's async API for tests: each runs
 * the main loop until the answer comes, bounded by STM32_TEST_LINK_WAIT_MS. */
#define STM32_TEST_LINK_WAIT_MS 10000

gboolean stm32_test_link_connect (Stm32Link *link, GError **error);
/* Disconnects and asserts the link ended up disconnected without error. */
void stm32_test_link_disconnect (Stm32Link *link);
gboolean stm32_test_link_send (Stm32Link *link, const char *text, GError **error);
/* A GAsyncReadyCallback for stm32_link_send_async(): the send must succeed;
 * counts it in the guint that @user_data points to. */
void stm32_test_link_count_sent (GObject *source, GAsyncResult *result, gpointer user_data);
char *stm32_test_link_transact (Stm32Link *link, const char *text, guint timeout_ms,
                                GError **error);

/* A copy of the newest history entry; fails the test if there is none. */
Stm32HistoryEntry *stm32_test_link_last_history_entry (Stm32Link *link);
guint stm32_test_link_history_length (Stm32Link *link);
const char *stm32_test_reason_nick (Stm32EndReason reason);

G_END_DECLS
