/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One socket per board while links hand a board over to each other: a link
 * that Reload renames, a daemon that `--replace` takes over, a daemon that
 * stops while a removed link still closes. The board is the simulator with
 * firmware that ignores EOF and as few slots as it takes; its own account
 * (slots_in_use_max, rejected) says whether it ever saw two sockets at once.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-error.h"
#include "stm32-names.h"
#include "test-util.h"

#define WAIT_MS 10000

typedef struct
{
  Stm32Sim *sim; /* started with the test's options (its fixture data) */
  guint16 port;
  char *dir;
  char *config; /* a config file path in @dir */
  Stm32Daemon *daemon;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->port = stm32_sim_get_port (fixture->sim);
  fixture->dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  fixture->config = g_build_filename (fixture->dir, "stm32d.conf", NULL);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  if (fixture->daemon != NULL)
    stm32_daemon_stop (fixture->daemon);
  stm32_sim_stop (fixture->sim);
  g_unlink (fixture->config);
  g_rmdir (fixture->dir);
  g_free (fixture->config);
  g_free (fixture->dir);
}

static void
add_test (const char *path, const char *const *options, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, options, fixture_setup, test, fixture_teardown);
}

/* One link named @name to the board, with @extra keys. */
static void
write_link (Fixture *fixture, const char *name, const char *extra)
{
  stm32_test_write_file (fixture->config, "[Link %s]\nHost=127.0.0.1\nPort=%u\n%s", name,
                         fixture->port, extra);
}

static void
call_reload (Stm32Daemon *daemon)
{
  Stm32DbusManager1 *manager = stm32_daemon_get_manager (daemon);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  stm32_dbus_manager1_call_reload (manager, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (stm32_dbus_manager1_call_reload_finish (manager, result, &error));
  g_assert_no_error (error);
}

/* How many of the link's history entries ended as @reason. */
static guint
history_count (Stm32DbusLink1 *link, const char *reason)
{
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GError) error = NULL;
  GVariantIter iter;
  GVariant *entry;
  guint count = 0;

  g_assert_true (stm32_dbus_link1_call_get_history_sync (link, &history, NULL, &error));
  g_assert_no_error (error);
  g_variant_iter_init (&iter, history);
  while ((entry = g_variant_iter_next_value (&iter)) != NULL)
    {
      const char *ended = NULL;

      if (g_variant_lookup (entry, "reason", "&s", &ended) && g_str_equal (ended, reason))
        count++;
      g_variant_unref (entry);
    }
  return count;
}

/* The board's own account: it never held two of our connections, never
 * turned one away, and has every slot back once stm32d is gone. */
static void
assert_board_saw_one_at_a_time (Fixture *fixture)
{
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "rejected"), ==, 0);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "slots_in_use_max"), ==, 1);
}

/* ---- Reload ------------------------------------------------------------------------ */

/* The link is renamed, same board: the new link connects only once the old
 * one's socket is gone — after its FIN, the CloseTimeout the firmware lets
 * pass, and the RST. A one-slot board would otherwise turn it away. */
static void
test_reload_waits_for_old_socket (Fixture *fixture, gconstpointer options)
{
  Stm32DbusLink1 *old, *renamed;
  g_autoptr (JsonObject) released = NULL;

  write_link (fixture, "old", "");
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  old = stm32_daemon_get_link (fixture->daemon, "old");
  stm32_test_wait_until (stm32_daemon_link_state_is (old, "connected"), WAIT_MS);

  write_link (fixture, "new", "");
  call_reload (fixture->daemon);
  renamed = stm32_daemon_get_link (fixture->daemon, "new");
  stm32_test_wait_until (stm32_daemon_link_state_is (renamed, "connected"), WAIT_MS);
  released = stm32_sim_wait_event (fixture->sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "peer-reset");
  assert_board_saw_one_at_a_time (fixture);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "accepted"), ==, 2);
  g_assert_cmpuint (history_count (renamed, "server-busy"), ==, 0);
  g_assert_cmpuint (stm32_dbus_link1_get_connect_failures (renamed), ==, 0);
}

typedef struct
{
  guint calls;
  guint answered;
} Calls;

/* Only stm32d's errors, or the bus's for a link Reload just removed. */
static void
on_answer (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply =
      g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  Calls *calls = user_data;

  g_assert_true (reply != NULL || error->domain == STM32_ERROR ||
                 g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
                 g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT));
  calls->answered++;
}

static void
call_link (GDBusConnection *bus, const char *name, const char *method, Calls *calls)
{
  g_autofree char *path = g_strconcat (STM32_DBUS_LINK_PATH_PREFIX, name, NULL);

  g_dbus_connection_call (bus, STM32_DBUS_NAME, path, STM32_DBUS_LINK_INTERFACE, method, NULL, NULL,
                          G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, on_answer, calls);
  calls->calls++;
}

/* Reloads back to back rename the link to and fro while three clients
 * Connect and Disconnect both names: every new link waits for every old one
 * to the board, so the board never holds two, and has none left after. */
static void
test_reload_racing (Fixture *fixture, gconstpointer options)
{
  const char *const names[] = { "a", "b" };
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  GDBusConnection *clients[3];
  Calls calls = { 0 };

  write_link (fixture, "a", "CloseTimeout=50\n");
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      g_autoptr (GError) error = NULL;

      clients[i] = g_dbus_connection_new_for_address_sync (
          address,
          G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
              G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
          NULL, NULL, &error);
      g_assert_no_error (error);
    }
  for (guint round = 0; round < 30; round++)
    {
      Stm32DbusManager1 *manager = stm32_daemon_get_manager (fixture->daemon);

      write_link (fixture, names[(round + 1) % 2], "CloseTimeout=50\n");
      stm32_dbus_manager1_call_reload (manager, NULL, NULL, NULL);
      for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
        for (guint n = 0; n < G_N_ELEMENTS (names); n++)
          {
            call_link (clients[i], names[n], "Connect", &calls);
            if ((round + i) % 3 == 0)
              call_link (clients[i], names[n], "Disconnect", &calls);
          }
      stm32_test_wait_until (calls.answered == calls.calls, WAIT_MS);
    }
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    g_object_unref (clients[i]);
  /* The last Reload named "a". The clients' last calls reach stm32d in no
   * agreed order, so "a" may be left disconnected: connect it as a user
   * would; once connected, the dust has settled. */
  stm32_test_wait_until (stm32_daemon_peek_link (fixture->daemon, "b") == NULL, WAIT_MS);
  {
    g_autoptr (GError) error = NULL;

    g_assert_true (stm32_daemon_link_connect (stm32_daemon_get_link (fixture->daemon, "a"), &error));
    g_assert_no_error (error);
  }
  stm32_daemon_stop (g_steal_pointer (&fixture->daemon));
  stm32_test_poll_until (stm32_sim_status_int (fixture->sim, "slots_in_use") == 0, WAIT_MS);
  g_test_message ("the board accepted %" G_GINT64_FORMAT " connections",
                  stm32_sim_status_int (fixture->sim, "accepted"));
  assert_board_saw_one_at_a_time (fixture);
}

/* ---- stopping ---------------------------------------------------------------------- */

/* Reload removes a link, and SIGTERM follows at once: the daemon exits only
 * once the removed link's close is over (its RST sent), so no socket is left
 * to the kernel's plain close — a FIN that firmware ignoring EOF never
 * answers — and a daemon that comes next finds the board free. */
static void
test_stop_waits_for_removed_link (Fixture *fixture, gconstpointer options)
{
  Stm32DbusLink1 *link;
  g_autoptr (JsonObject) released = NULL;

  write_link (fixture, "gone", "CloseTimeout=500\n");
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  link = stm32_daemon_get_link (fixture->daemon, "gone");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  stm32_test_write_file (fixture->config, "# no links\n");
  call_reload (fixture->daemon);
  stm32_daemon_send_signal (fixture->daemon, SIGTERM);
  g_assert_cmpint (stm32_daemon_wait_exit (fixture->daemon), ==, 0);
  stm32_daemon_free (g_steal_pointer (&fixture->daemon));
  released = stm32_sim_wait_event (fixture->sim, "released", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (released, "how"), ==, "peer-reset");
  g_assert_cmpint (json_object_get_int_member (released, "slots_in_use"), ==, 0);
}

/* ---- --replace --------------------------------------------------------------------- */

/* A new stm32d takes the bus name with --replace while the old one still
 * holds the one-slot board: the new one connects only once the old one's
 * socket is gone, and the board never has to turn it away. */
static void
test_replace_waits_for_old_daemon (Fixture *fixture, gconstpointer options)
{
  Stm32Daemon *old;
  Stm32DbusLink1 *link;

  write_link (fixture, "board", "");
  old = stm32_daemon_start ("--config", fixture->config, NULL);
  link = stm32_daemon_get_link (old, "board");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);

  fixture->daemon = stm32_daemon_start ("--config", fixture->config, "--replace", NULL);
  link = stm32_daemon_get_link (fixture->daemon, "board");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  /* The old one leaves as one whose name was taken. */
  g_assert_cmpint (stm32_daemon_wait_exit (old), ==, 1);
  stm32_daemon_free (old);
  assert_board_saw_one_at_a_time (fixture);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "accepted"), ==, 2);
  g_assert_cmpuint (stm32_dbus_link1_get_connect_failures (link), ==, 0);
  g_assert_cmpuint (history_count (link, "server-busy"), ==, 0);
}

/* Another stm32d — this test, under that name — holds a socket to the board
 * and never lets go. The new daemon waits for it at most the longest
 * CloseTimeout and the grace (2 s), then connects, saying what held the board. */
static void
test_replace_wait_is_bounded (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) holder = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *pid = g_strdup_printf ("pid %d", (int) getpid ());
  char name[16] = { 0 };
  Stm32DbusLink1 *link;
  gint64 started;

  g_assert_cmpint (prctl (PR_GET_NAME, name), ==, 0);
  g_assert_cmpint (prctl (PR_SET_NAME, "stm32d"), ==, 0);
  holder = g_socket_client_connect_to_host (client, "127.0.0.1", fixture->port, NULL, &error);
  g_assert_no_error (error);
  stm32_sim_expect (fixture->sim, "accepted", WAIT_MS);

  write_link (fixture, "board", "CloseTimeout=100\n");
  started = g_get_monotonic_time ();
  fixture->daemon = stm32_daemon_start_logged ("--config", fixture->config, "--replace", NULL);
  link = stm32_daemon_get_link (fixture->daemon, "board");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);
  g_assert_cmpint (g_get_monotonic_time () - started, >=, (100 + 2000) * 1000);
  /* stm32d's stderr reaches the harness on its own schedule: the lines may
   * come after the link's state did. */
  stm32_test_wait_until (strstr (stm32_daemon_get_log (fixture->daemon), pid) != NULL, WAIT_MS);
  stm32_test_wait_until (strstr (stm32_daemon_get_log (fixture->daemon), "connecting anyway") != NULL,
                         WAIT_MS);
  g_assert_cmpint (prctl (PR_SET_NAME, name), ==, 0);
}

/* The gate looks for another stm32d's socket when a link first connects,
 * not at start: a link with Autoconnect=false that is connected long after
 * start, while another stm32d (this test, under that name) holds its board,
 * waits for that socket to go. A second link, to a second board, connects
 * at start: once it is up, every look at the boards the start made is over. */
static void
test_gate_at_first_connect (Fixture *fixture, gconstpointer options)
{
  Stm32Sim *other_board = stm32_sim_start ("--slots", "0", NULL);
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) holder = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *held = NULL;
  char name[16] = { 0 };
  Stm32DbusLink1 *quiet;

  stm32_test_write_file (fixture->config,
                         "[Link quiet]\nHost=127.0.0.1\nPort=%u\nAutoconnect=false\n"
                         "CloseTimeout=100\n"
                         "[Link other]\nHost=127.0.0.1\nPort=%u\nCloseTimeout=100\n",
                         fixture->port, stm32_sim_get_port (other_board));
  fixture->daemon = stm32_daemon_start_logged ("--config", fixture->config, NULL);
  quiet = stm32_daemon_get_link (fixture->daemon, "quiet");
  stm32_test_wait_until (
      stm32_daemon_link_state_is (stm32_daemon_get_link (fixture->daemon, "other"), "connected"),
      WAIT_MS);

  g_assert_cmpint (prctl (PR_GET_NAME, name), ==, 0);
  g_assert_cmpint (prctl (PR_SET_NAME, "stm32d"), ==, 0);
  holder = g_socket_client_connect_to_host (client, "127.0.0.1", fixture->port, NULL, &error);
  g_assert_no_error (error);
  stm32_sim_expect (fixture->sim, "accepted", WAIT_MS);

  stm32_dbus_link1_call_connect (quiet, NULL, stm32_test_store_result, &result);
  held = g_strdup_printf ("quiet: stm32d (pid %d, ESTABLISHED) still holds", (int) getpid ());
  stm32_test_wait_until (strstr (stm32_daemon_get_log (fixture->daemon), held) != NULL, WAIT_MS);
  g_assert_null (result);
  g_assert_true (stm32_daemon_link_state_is (quiet, "connecting"));
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "accepted"), ==, 1);

  g_clear_object (&holder);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_connect_finish (quiet, result, &error));
  g_assert_no_error (error);
  g_assert_cmpint (stm32_sim_status_int (fixture->sim, "accepted"), ==, 2);
  stm32_test_wait_until (strstr (stm32_daemon_get_log (fixture->daemon), "let go of the board"),
                         WAIT_MS);
  g_assert_cmpint (prctl (PR_SET_NAME, name), ==, 0);
  stm32_daemon_stop (g_steal_pointer (&fixture->daemon));
  stm32_sim_stop (other_board);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  add_test ("/daemon/reload-waits-for-old-socket",
            STM32_SIM_OPTIONS ("--slots", "1", "--mode", "leak"), test_reload_waits_for_old_socket);
  add_test ("/daemon/reload-racing", STM32_SIM_OPTIONS ("--slots", "4", "--mode", "leak"),
            test_reload_racing);
  add_test ("/daemon/stop-waits-for-removed-link",
            STM32_SIM_OPTIONS ("--slots", "1", "--mode", "leak"), test_stop_waits_for_removed_link);
  add_test ("/daemon/replace-waits-for-old-daemon",
            STM32_SIM_OPTIONS ("--slots", "1", "--mode", "leak"),
            test_replace_waits_for_old_daemon);
  add_test ("/daemon/replace-wait-is-bounded", STM32_SIM_OPTIONS ("--slots", "2", "--mode", "leak"),
            test_replace_wait_is_bounded);
  add_test ("/daemon/gate-at-first-connect", STM32_SIM_OPTIONS ("--slots", "2"),
            test_gate_at_first_connect);
  return stm32_daemon_test_run ();
}
