/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A link held back from its board (stm32_link_hold()), and the endpoint gate
 * that holds a new link until an old one to the same board has closed: in
 * process, against the board simulator, whose own account says how many
 * connections it saw at once.
 */
#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "link-harness.h"
#include "sim-harness.h"
#include "stm32-endpoint-gate.h"
#include "stm32-error.h"
#include "stm32-link.h"
#include "test-util.h"

#define WAIT_MS STM32_TEST_LINK_WAIT_MS

static Stm32LinkConfig *
test_config (Stm32Sim *sim, gboolean autoconnect)
{
  Stm32LinkConfig *config = stm32_link_config_new ("127.0.0.1", stm32_sim_get_port (sim));

  config->autoconnect = autoconnect;
  config->close_timeout = 300;
  return config;
}

/* Held, a link that is asked to connect shows "connecting" and opens no
 * socket; Disconnect gives the start up and answers the Connect at once;
 * the release lets a wanted link connect. */
static void
test_link_hold (void)
{
  Stm32Sim *sim = stm32_sim_start ("--mode", "leak", NULL);
  g_autoptr (Stm32LinkConfig) config = test_config (sim, FALSE);
  g_autoptr (Stm32Link) link = stm32_link_new ("held", config);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  stm32_link_hold (link);
  stm32_link_connect_async (link, NULL, stm32_test_store_result, &result);
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_CONNECTING);
  stm32_test_link_disconnect (link);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_false (stm32_link_connect_finish (link, result, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_assert_nonnull (strstr (error->message, "disconnected before connecting"));
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_DISCONNECTED);
  g_assert_cmpuint (stm32_test_link_history_length (link), ==, 0);

  /* Wanted again, still held: nothing reaches the board until the release. */
  g_clear_object (&result);
  g_clear_error (&error);
  stm32_link_connect_async (link, NULL, stm32_test_store_result, &result);
  g_assert_cmpint (stm32_sim_status_int (sim, "accepted"), ==, 0);
  g_assert_null (result);
  stm32_link_release (link);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (stm32_link_connect_finish (link, result, &error));
  g_assert_no_error (error);
  stm32_sim_expect (sim, "accepted", WAIT_MS);
  stm32_test_link_disconnect (link);
  g_assert_cmpint (stm32_sim_status_int (sim, "accepted"), ==, 1);
  g_clear_object (&link);
  stm32_sim_stop (sim);
}

static void
on_drained (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_assert_true (stm32_endpoint_gate_drain_finish (STM32_ENDPOINT_GATE (source), result, NULL));
  *(gboolean *) user_data = TRUE;
}

/* A link retires while another to the same one-slot board, which ignores
 * EOF, is admitted: the newcomer connects once the old socket is gone (FIN,
 * CloseTimeout, RST), so the board never turns it away; a drain finishes
 * once nothing retires. */
static void
test_retire_then_admit (void)
{
  Stm32Sim *sim = stm32_sim_start ("--mode", "leak", "--slots", "1", NULL);
  g_autoptr (Stm32LinkConfig) config = test_config (sim, TRUE);
  g_autoptr (Stm32EndpointGate) gate = stm32_endpoint_gate_new ();
  g_autoptr (Stm32Link) old = stm32_link_new ("old", config);
  g_autoptr (Stm32Link) next = stm32_link_new_idle ("next", config);
  gboolean drained = FALSE;

  stm32_test_wait_until (stm32_link_get_state (old) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  stm32_endpoint_gate_retire (gate, old);
  stm32_endpoint_gate_admit (gate, next, 5000);
  stm32_link_start (next);
  stm32_endpoint_gate_drain_async (gate, NULL, on_drained, &drained);
  stm32_test_wait_until (stm32_link_get_state (next) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  g_assert_true (drained);
  g_assert_cmpint (stm32_link_get_state (old), ==, STM32_LINK_STATE_DISCONNECTED);
  g_assert_cmpint (stm32_sim_status_int (sim, "rejected"), ==, 0);
  g_assert_cmpint (stm32_sim_status_int (sim, "slots_in_use_max"), ==, 1);
  stm32_test_link_disconnect (next);
  g_clear_object (&next);
  g_clear_object (&old);
  stm32_sim_stop (sim);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gate/link-hold", test_link_hold);
  g_test_add_func ("/gate/retire-then-admit", test_retire_then_admit);
  return g_test_run ();
}
