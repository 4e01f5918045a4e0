/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "link-harness.h"

#include <string.h>

#include "stm32-enum-types.h"
#include "test-util.h"

gboolean
stm32_test_link_connect (Stm32Link *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_link_connect_async (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, STM32_TEST_LINK_WAIT_MS);
  return stm32_link_connect_finish (link, result, error);
}

void
stm32_test_link_disconnect (Stm32Link *link)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  stm32_link_disconnect_async (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, STM32_TEST_LINK_WAIT_MS);
  g_assert_true (stm32_link_disconnect_finish (link, result, &error));
  g_assert_no_error (error);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_DISCONNECTED);
}

gboolean
stm32_test_link_send (Stm32Link *link, const char *text, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) frame = g_bytes_new (text, strlen (text));

  stm32_link_send_async (link, frame, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, STM32_TEST_LINK_WAIT_MS);
  return stm32_link_send_finish (link, result, error);
}

char *
stm32_test_link_transact (Stm32Link *link, const char *text, guint timeout_ms, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) frame = g_bytes_new (text, strlen (text));
  g_autoptr (GBytes) reply = NULL;

  stm32_link_transact_async (link, frame, timeout_ms, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, STM32_TEST_LINK_WAIT_MS);
  reply = stm32_link_transact_finish (link, result, error);
  return reply ? g_strndup (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply)) : NULL;
}

Stm32HistoryEntry *
stm32_test_link_last_history_entry (Stm32Link *link)
{
  g_autoptr (GPtrArray) history = stm32_link_dup_history (link);

  g_assert_cmpuint (history->len, >, 0);
  return stm32_history_entry_copy (g_ptr_array_index (history, history->len - 1));
}

guint
stm32_test_link_history_length (Stm32Link *link)
{
  g_autoptr (GPtrArray) history = stm32_link_dup_history (link);

  return history->len;
}

const char *
stm32_test_reason_nick (Stm32EndReason reason)
{
  return stm32_enum_to_string (STM32_TYPE_END_REASON, reason);
}

void
stm32_test_link_count_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  guint *sent = user_data;
  g_autoptr (GError) error = NULL;

  stm32_link_send_finish (STM32_LINK (source), result, &error);
  g_assert_no_error (error);
  (*sent)++;
}
