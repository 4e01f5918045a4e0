/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stm32d keeps track of the bus clients whose calls wait, so that one that
 * leaves the bus stops holding a place in the link's queue. The tracking
 * costs a bounded number of match rules, whatever the number of callers, and
 * gives them back; a caller that left is seen to have left even if it left
 * before stm32d read its call, and its request never reaches the board.
 */
#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "test-util.h"

#define WAIT_MS 20000
#define ONE_SHOT_CALLERS 900

typedef struct
{
  Stm32Sim *sim;
  char *port;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->port = g_strdup_printf ("%u", stm32_sim_get_port (fixture->sim));
  fixture->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", fixture->port, NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  stm32_daemon_stop (fixture->daemon);
  stm32_sim_stop (fixture->sim);
  g_free (fixture->port);
}

static GDBusConnection *
own_connection (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  GDBusConnection *connection;

  g_assert_no_error (error);
  connection =
      g_dbus_connection_new_for_address_sync (address,
                                              G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                  G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                              NULL, NULL, &error);
  g_assert_no_error (error);
  return connection;
}

/* What `dbus-send … Transact` does: its own connection, one call, and gone
 * before any answer. Returns the caller's unique name. */
static char *
transact_and_leave (const char *text, GDBusMessageFlags flags)
{
  g_autoptr (GDBusConnection) connection = own_connection ();
  g_autoptr (GDBusMessage) message = g_dbus_message_new_method_call (
      "org.stm32d", "/org/stm32d/link/default", "org.stm32d.Link1", "Transact");
  g_autoptr (GError) error = NULL;
  char *name = g_strdup (g_dbus_connection_get_unique_name (connection));

  g_dbus_message_set_body (message, g_variant_new ("(@ayu)", stm32_daemon_bytes (text), 10000));
  g_dbus_message_set_flags (message, flags);
  g_assert_true (g_dbus_connection_send_message (connection, message,
                                                 G_DBUS_SEND_MESSAGE_FLAGS_NONE, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_dbus_connection_close_sync (connection, NULL, &error));
  g_assert_no_error (error);
  return name;
}

/* 900 one-shot callers: stm32d's match rules stay within one of their idle
 * count while they come and go, and return to it once the last has lingered. */
static void
test_one_shot (Fixture *fixture, gconstpointer options)
{
  guint idle = stm32_daemon_count_match_rules (fixture->daemon);
  guint most = idle;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  for (guint i = 0; i < ONE_SHOT_CALLERS; i++)
    {
      g_autofree char *text = g_strdup_printf ("one-shot %u", i);

      g_free (transact_and_leave (text, G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED));
      if (i % 100 == 99)
        most = MAX (most, stm32_daemon_count_match_rules (fixture->daemon));
    }
  g_test_message ("match rules: %u idle, at most %u seen during %u one-shot callers", idle, most,
                  ONE_SHOT_CALLERS);
  g_assert_cmpuint (most, <=, idle + 1);
  stm32_test_poll_until (stm32_daemon_count_match_rules (fixture->daemon) == idle, WAIT_MS);

  /* The link is as good as before. */
  reply = stm32_daemon_link_transact (fixture->link, "after", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "after");
  g_assert_true (stm32_daemon_link_state_is (fixture->link, "connected"));
}

static void
on_vanished (GDBusConnection *connection, const char *name, gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
}

static const char *
frame_data (JsonObject *frame)
{
  return json_object_get_string_member (frame, "data");
}

/* A caller that leaves while its request waits behind a slow board: the
 * board never receives the request, though the caller left before stm32d
 * read its call. */
static void
test_gone_not_sent (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GAsyncResult) first = NULL;
  g_autoptr (GVariant) first_reply = NULL;
  g_autoptr (JsonObject) first_frame = NULL;
  g_autoptr (JsonObject) next_frame = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *gone = NULL;
  g_autofree char *last = NULL;
  gboolean vanished = FALSE;
  guint watch;

  /* The board reads nothing for now: "first" is written and waits. */
  stm32_sim_command (fixture->sim, "blackhole on");
  stm32_dbus_link1_call_transact (fixture->link, stm32_daemon_bytes ("first"), 10000, NULL,
                                  stm32_test_store_result, &first);
  stm32_test_wait_until (stm32_dbus_link1_get_frames_sent (fixture->link) == 1, WAIT_MS);

  gone = transact_and_leave ("gone", G_DBUS_MESSAGE_FLAGS_NONE);
  watch = g_bus_watch_name (G_BUS_TYPE_SESSION, gone, G_BUS_NAME_WATCHER_FLAGS_NONE, NULL,
                            on_vanished, &vanished, NULL);
  stm32_test_wait_until (vanished, WAIT_MS);
  g_bus_unwatch_name (watch);
  /* stm32d read the call before the bus said the caller had left, and asked
   * the bus about the caller as it read it: calls answered after that, each
   * a turn of stm32d's main loop, are answered after the bus's answer. */
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr (GVariant) history = NULL;

      g_assert_true (
          stm32_dbus_link1_call_get_history_sync (fixture->link, &history, NULL, &error));
      g_assert_no_error (error);
    }

  stm32_sim_command (fixture->sim, "blackhole off");
  stm32_test_wait_until (first != NULL, WAIT_MS);
  g_assert_true (
      stm32_dbus_link1_call_transact_finish (fixture->link, &first_reply, first, &error));
  g_assert_no_error (error);
  last = stm32_daemon_link_transact (fixture->link, "last", 10000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (last, ==, "last");

  /* The board's own account: "first", then "last", and nothing between. */
  first_frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (frame_data (first_frame), ==, "first");
  next_frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (frame_data (next_frame), ==, "last");
}

int
main (int argc, char **argv)
{
  /* Outside g_test_add's block, so it lives through g_test_run(). */
  const char *const *echo = STM32_SIM_OPTIONS ("--reply", "echo");

  stm32_daemon_test_init (&argc, &argv);
  g_test_add ("/bus-callers/one-shot", Fixture, echo, fixture_setup, test_one_shot,
              fixture_teardown);
  g_test_add ("/bus-callers/gone-not-sent", Fixture, echo, fixture_setup, test_gone_not_sent,
              fixture_teardown);
  return stm32_daemon_test_run ();
}
