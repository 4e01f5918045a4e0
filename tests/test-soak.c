/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hygiene contract held for a long time under contention: two bus
 * clients race Connect, Send, Transact and Disconnect for thousands of
 * rounds against firmware that ignores EOF. At the end the board has every
 * slot back and stm32d holds exactly the fds and bus match rules it held
 * before.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-error.h"
#include "test-util.h"

#define WAIT_MS 20000
#define ROUNDS 2000

/* Only stm32d's own errors may come back (not connected, disconnected while
 * connecting, …), never the bus's. */
static void
on_answer (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);
  guint *answered = user_data;

  if (reply == NULL && error->domain != STM32_ERROR)
    g_error ("a call failed outside stm32d's error domain: %s", error->message);
  (*answered)++;
}

static guint
race_round (GDBusProxy *first, GDBusProxy *second, guint round, guint *answered)
{
  g_autofree char *text = g_strdup_printf ("soak %u", round);

  g_dbus_proxy_call (first, "Connect", NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_answer, answered);
  g_dbus_proxy_call (second, "Send", g_variant_new ("(@ay)", stm32_daemon_bytes (text)),
                     G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_answer, answered);
  g_dbus_proxy_call (first, "Transact", g_variant_new ("(@ayu)", stm32_daemon_bytes (text), 1000),
                     G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_answer, answered);
  /* Odd rounds disconnect from the other client, so the Disconnect races the
   * Connect from another bus connection as well as from the same one. */
  g_dbus_proxy_call (round % 2 ? second : first, "Disconnect", NULL, G_DBUS_CALL_FLAGS_NONE, -1,
                     NULL, on_answer, answered);
  g_dbus_proxy_call (second, "Connect", NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_answer,
                     answered);
  g_dbus_proxy_call (first, "Disconnect", NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, on_answer,
                     answered);
  return 6;
}

static GDBusProxy *
link_proxy_on_own_connection (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_autoptr (GDBusConnection) connection = NULL;
  GDBusProxy *proxy;

  g_assert_no_error (error);
  connection = g_dbus_connection_new_for_address_sync (
      address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT | G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
      NULL, NULL, &error);
  g_assert_no_error (error);
  proxy = g_dbus_proxy_new_sync (connection, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES, NULL,
                                 "org.stm32d", "/org/stm32d/link/default", "org.stm32d.Link1", NULL,
                                 &error);
  g_assert_no_error (error);
  return proxy;
}

static void
test_racing_cycles (void)
{
  Stm32Sim *sim = stm32_sim_start ("--mode", "leak", "--slots", "50", "--reply", "echo",
                                              NULL);
  g_autofree char *dir = g_dir_make_tmp ("stm32d-soak-XXXXXX", NULL);
  g_autofree char *config = g_build_filename (dir, "stm32d.conf", NULL);
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;
  g_autoptr (GDBusProxy) first = NULL;
  g_autoptr (GDBusProxy) second = NULL;
  guint answered = 0, calls = 0, idle_fds, idle_rules;

  stm32_test_write_file (config,
                         "[Link default]\nHost=127.0.0.1\nPort=%u\nAutoconnect=false\n"
                         "CloseTimeout=50\nFraming=line\n",
                         stm32_sim_get_port (sim));
  daemon = stm32_daemon_start ("--config", config, NULL);
  link = stm32_daemon_get_link (daemon, "default");
  first = link_proxy_on_own_connection ();
  second = link_proxy_on_own_connection ();
  idle_fds = stm32_daemon_count_fds_at_rest (daemon, link);
  idle_rules = stm32_daemon_count_match_rules (daemon);

  for (guint round = 0; round < ROUNDS; round++)
    {
      calls += race_round (first, second, round, &answered);
      stm32_test_wait_until (answered == calls, WAIT_MS);
    }

  /* The two clients' calls reach stm32d in no agreed order, so the last
   * round may leave the link connected: end it as a user would. */
  stm32_daemon_link_disconnect (link);
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "disconnected"), WAIT_MS);
  stm32_test_poll_until (stm32_sim_status_int (sim, "slots_in_use") == 0, WAIT_MS);
  g_test_message ("%u rounds: the board accepted %" G_GINT64_FORMAT " connections", ROUNDS,
                  stm32_sim_status_int (sim, "accepted"));
  /* An fd closes once its last operation is answered, just after the state
   * says disconnected: wait for it, bounded. */
  stm32_test_poll_until (stm32_test_count_process_fds (stm32_daemon_get_pid (daemon)) == idle_fds,
                         WAIT_MS);
  /* Both clients are still on the bus; once their calls have ended and
   * lingered, stm32d watches neither. */
  stm32_test_poll_until (stm32_daemon_count_match_rules (daemon) == idle_rules, WAIT_MS);
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
  g_assert_cmpint (g_unlink (config), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  g_test_add_func ("/soak/racing-cycles", test_racing_cycles);
  return stm32_daemon_test_run ();
}
