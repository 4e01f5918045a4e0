/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CloseMode against the board simulator: a board whose firmware ignores EOF
 * is learned after three closes and then closed with a RST once it has
 * everything — every frame sent reaches it, a transaction still waiting for
 * its reply gets it first — and a board that starts answering is seen again;
 * a good board is never reset; CloseMode=graceful and reset do what they say.
 */
#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "link-harness.h"
#include "sim-harness.h"
#include "stm32-defaults.h"
#include "stm32-enum-types.h"
#include "stm32-error.h"
#include "stm32-link.h"
#include "test-util.h"

#define WAIT_MS STM32_TEST_LINK_WAIT_MS
/* Frames a cycle Sends without waiting, then Disconnects at once. */
#define BURST 20

typedef struct
{
  Stm32Sim *sim;
  Stm32LinkConfig *config;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->config = stm32_link_config_new ("127.0.0.1", stm32_sim_get_port (fixture->sim));
  fixture->config->autoconnect = FALSE;
  fixture->config->connect_timeout = 2000;
  /* What each graceful close to a board that never answers costs. */
  fixture->config->close_timeout = 1000;
}

static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  stm32_sim_stop (fixture->sim);
  stm32_link_config_free (fixture->config);
}

/* One cycle: connect, a transaction, BURST frames sent without waiting and
 * Disconnect at once; every Send must succeed and the board must count
 * every frame of this connection. Returns how it was closed. */
static Stm32HistoryEntry *
cycle (Stm32Link *link, Stm32Sim *sim, guint n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *request = g_strdup_printf ("cycle %u", n);
  g_autofree char *reply = NULL;
  guint sent = 0;
  guint frames_before;

  g_assert_true (stm32_test_link_connect (link, &error));
  g_assert_no_error (error);
  frames_before = stm32_sim_count_events (sim, "frame");
  reply = stm32_test_link_transact (link, request, WAIT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, request);
  for (guint i = 0; i < BURST; i++)
    {
      g_autofree char *text = g_strdup_printf ("cycle %u frame %u", n, i);
      g_autoptr (GBytes) frame = g_bytes_new (text, strlen (text));

      stm32_link_send_async (link, frame, NULL, stm32_test_link_count_sent, &sent);
    }
  stm32_test_link_disconnect (link);
  stm32_test_wait_until (sent == BURST, WAIT_MS);
  /* The board's own count: nothing the PC sent was lost to the close. */
  stm32_test_wait_until (stm32_sim_count_events (sim, "frame") == frames_before + 1 + BURST,
                         WAIT_MS);
  stm32_sim_discard_events (sim);
  return stm32_test_link_last_history_entry (link);
}

static void
assert_close (const Stm32HistoryEntry *entry, Stm32CloseKind kind, gboolean fin)
{
  g_assert_cmpstr (stm32_enum_to_string (STM32_TYPE_CLOSE_KIND, entry->close_kind), ==,
                   stm32_enum_to_string (STM32_TYPE_CLOSE_KIND, kind));
  g_assert_cmpint (entry->reason, ==, STM32_END_REASON_LOCAL);
  if (fin)
    {
      g_assert_cmpint (entry->fin_delay, >=, 0);
      g_assert_false (entry->aborted);
    }
  else
    {
      g_assert_cmpint (entry->fin_delay, ==, -1);
      g_assert_true (entry->aborted);
    }
}

static Stm32CloseKind
link_close_strategy (Stm32Link *link)
{
  Stm32CloseKind kind;

  g_object_get (link, "close-strategy", &kind, NULL);
  return kind;
}

/* Firmware that ignores EOF: three graceful closes that each wait out
 * CloseTimeout, then learned resets that lose nothing. */
static void
test_learned_leak (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("leak", fixture->config);
  guint fds_before = stm32_test_count_fds ();

  for (guint i = 0; i < 3; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, i);

      assert_close (entry, STM32_CLOSE_KIND_GRACEFUL, FALSE);
    }
  g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_LEARNED_RESET);
  for (guint i = 3; i < 3 + STM32_CLOSE_RECHECK_FIRST - 1; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, i);

      assert_close (entry, STM32_CLOSE_KIND_LEARNED_RESET, FALSE);
      /* No wait for a FIN: the RST followed the acknowledgement. */
      g_assert_null (strstr (entry->error, "CloseTimeout"));
    }
  /* The 16th learned close checks again, and still gets no FIN. */
  {
    g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, 99);

    assert_close (entry, STM32_CLOSE_KIND_RECHECK, FALSE);
    g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_LEARNED_RESET);
  }
  /* The board's view: every slot given back by our RST; the PC's: no fd left. */
  stm32_test_poll_until (stm32_sim_status_int (fixture->sim, "slots_in_use") == 0, WAIT_MS);
  g_assert_cmpint (stm32_sim_released_how (fixture->sim, "peer-reset"), ==, 3 + STM32_CLOSE_RECHECK_FIRST);
  g_assert_cmpuint (stm32_test_count_fds (), ==, fds_before);
}

/* A transaction still waiting for its reply holds the RST back: the reply
 * comes, its caller gets it, then the connection is reset. */
static void
test_learned_transaction (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (GAsyncResult) transacted = NULL, disconnected = NULL;
  g_autoptr (GBytes) request = g_bytes_new_static ("~300 slow", 9);
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32HistoryEntry) entry = NULL;

  /* CloseTimeout bounds the wait for the reply too. */
  fixture->config->close_timeout = 2000;
  link = stm32_link_new ("leak", fixture->config);
  for (guint i = 0; i < 3; i++)
    stm32_history_entry_free (cycle (link, fixture->sim, i));
  g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_LEARNED_RESET);

  g_assert_true (stm32_test_link_connect (link, &error));
  stm32_link_transact_async (link, request, WAIT_MS, NULL, stm32_test_store_result, &transacted);
  /* The request is on the wire before Disconnect comes. */
  stm32_sim_expect (fixture->sim, "frame", WAIT_MS);
  stm32_link_disconnect_async (link, NULL, stm32_test_store_result, &disconnected);
  stm32_test_wait_until (transacted != NULL && disconnected != NULL, WAIT_MS);
  reply = stm32_link_transact_finish (link, transacted, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), "~300 slow", 9);
  g_assert_true (stm32_link_disconnect_finish (link, disconnected, &error));
  entry = stm32_test_link_last_history_entry (link);
  assert_close (entry, STM32_CLOSE_KIND_LEARNED_RESET, FALSE);
  g_assert_cmpuint (entry->frames_received, ==, 1);
}

/* The firmware is fixed while stm32d runs: the re-check sees the FIN and
 * the link goes back to graceful closes. */
static void
test_recheck_firmware_fixed (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("board", fixture->config);
  gint recheck_at = -1;

  for (guint i = 0; i < 3; i++)
    stm32_history_entry_free (cycle (link, fixture->sim, i));
  g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_LEARNED_RESET);
  stm32_sim_command (fixture->sim, "mode good");
  for (guint i = 0; i < STM32_CLOSE_RECHECK_FIRST && recheck_at < 0; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, 3 + i);

      if (entry->close_kind == STM32_CLOSE_KIND_RECHECK)
        {
          assert_close (entry, STM32_CLOSE_KIND_RECHECK, TRUE);
          recheck_at = (gint) i;
        }
      else
        assert_close (entry, STM32_CLOSE_KIND_LEARNED_RESET, FALSE);
    }
  g_assert_cmpint (recheck_at, ==, STM32_CLOSE_RECHECK_FIRST - 1);
  for (guint i = 0; i < 5; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, 100 + i);

      assert_close (entry, STM32_CLOSE_KIND_GRACEFUL, TRUE);
    }
  stm32_test_poll_until (stm32_sim_status_int (fixture->sim, "slots_in_use") == 0, WAIT_MS);
}

/* The board restarts (its listener refuses for a while): the next close
 * checks again at once. */
static void
test_recheck_after_refused (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("board", fixture->config);
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32HistoryEntry) entry = NULL;

  for (guint i = 0; i < 3; i++)
    stm32_history_entry_free (cycle (link, fixture->sim, i));
  stm32_history_entry_free (cycle (link, fixture->sim, 3));
  g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_LEARNED_RESET);
  stm32_sim_command (fixture->sim, "refuse 2000");
  g_assert_false (stm32_test_link_connect (link, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_REFUSED);
  stm32_test_link_disconnect (link);
  g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_RECHECK);
  /* It comes back with fixed firmware. */
  stm32_sim_command (fixture->sim, "mode good");
  stm32_sim_expect (fixture->sim, "listener-open", WAIT_MS);
  entry = cycle (link, fixture->sim, 4);
  assert_close (entry, STM32_CLOSE_KIND_RECHECK, TRUE);
  g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_GRACEFUL);
}

/* A board that answers every FIN is never reset in auto mode. */
static void
test_good_board_no_reset (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = stm32_link_new ("good", fixture->config);
  guint cycles = 200;

  for (guint i = 0; i < cycles; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, i);

      assert_close (entry, STM32_CLOSE_KIND_GRACEFUL, TRUE);
    }
  stm32_test_poll_until (stm32_sim_status_int (fixture->sim, "slots_in_use") == 0, WAIT_MS);
  g_assert_cmpint (stm32_sim_released_how (fixture->sim, "closed-after-eof"), ==, cycles);
  g_assert_cmpint (stm32_sim_released_how (fixture->sim, "peer-reset"), ==, 0);
}

/* CloseMode=graceful: every close waits for the FIN, whatever the board does. */
static void
test_mode_graceful (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;

  fixture->config->close_mode = STM32_CLOSE_MODE_GRACEFUL;
  link = stm32_link_new ("graceful", fixture->config);
  for (guint i = 0; i < 6; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, i);

      assert_close (entry, STM32_CLOSE_KIND_GRACEFUL, FALSE);
      g_assert_nonnull (strstr (entry->error, "did not close within 1000 ms"));
    }
  g_assert_cmpint (link_close_strategy (link), ==, STM32_CLOSE_KIND_GRACEFUL);
}

/* CloseMode=reset: even a good board is reset, once it has everything. */
static void
test_mode_reset (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Stm32Link) link = NULL;

  fixture->config->close_mode = STM32_CLOSE_MODE_RESET;
  link = stm32_link_new ("reset", fixture->config);
  for (guint i = 0; i < 6; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = cycle (link, fixture->sim, i);

      assert_close (entry, STM32_CLOSE_KIND_RESET, FALSE);
    }
  stm32_test_poll_until (stm32_sim_status_int (fixture->sim, "slots_in_use") == 0, WAIT_MS);
  g_assert_cmpint (stm32_sim_released_how (fixture->sim, "peer-reset"), ==, 6);
  g_assert_cmpint (stm32_sim_released_how (fixture->sim, "closed-after-eof"), ==, 0);
}

static void
add_test (const char *path, const char *const *options, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, options, fixture_setup, test, fixture_teardown);
}

int
main (int argc, char **argv)
{
  const char *const *leak = STM32_SIM_OPTIONS ("--mode", "leak", "--slots", "2");
  const char *const *leak_delays =
      STM32_SIM_OPTIONS ("--mode", "leak", "--slots", "2", "--delay-marks");
  const char *const *good = STM32_SIM_OPTIONS ("--mode", "good", "--slots", "2");

  g_test_init (&argc, &argv, NULL);
  add_test ("/close/learned/leak", leak, test_learned_leak);
  add_test ("/close/learned/transaction-delays-reset", leak_delays, test_learned_transaction);
  add_test ("/close/recheck/firmware-fixed", leak, test_recheck_firmware_fixed);
  add_test ("/close/recheck/after-refused", leak, test_recheck_after_refused);
  add_test ("/close/good-board/no-reset", good, test_good_board_no_reset);
  add_test ("/close/mode/graceful", leak, test_mode_graceful);
  add_test ("/close/mode/reset", good, test_mode_reset);
  return g_test_run ();
}
