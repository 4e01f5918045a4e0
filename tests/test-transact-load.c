/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transact under load, as many GUIs and scripts would use it at once: many
 * bus connections, each with thousands of calls in flight, timeouts from very
 * short to long, against a board that answers each request after its own
 * delay, or never. Every call must be answered, and every reply a caller gets
 * must be its own request's. Over a transaction channel the same holds.
 */
#include <glib/gstdio.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-names.h"
#include "test-util.h"

#define WAIT_MS 60000
/* dbus-daemon refuses more than 128 calls awaiting replies per connection by
 * default (max_replies_per_connection): each client keeps this many in
 * flight, starting the next as one is answered. */
#define IN_FLIGHT 100

typedef struct
{
  guint sent;
  guint answered;
  guint own_replies;
  guint mismatches;
  guint timeouts;
  guint other_errors;
} Tally;

/* One client: its own bus connection and the calls it still has to make. */
typedef struct
{
  Tally *tally;
  GDBusConnection *connection;
  GRand *rand;
  guint id;
  guint to_send;
} Client;

typedef struct
{
  Client *client;
  char *request;
} Call;

static void client_call (Client *client);

static void
on_transacted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Call *call = user_data;
  Tally *tally = call->client->tally;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply =
      g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);

  tally->answered++;
  if (reply != NULL)
    {
      g_autoptr (GVariant) frame = g_variant_get_child_value (reply, 0);
      gsize size;
      const char *data = g_variant_get_fixed_array (frame, &size, 1);

      if (size == strlen (call->request) && memcmp (data, call->request, size) == 0)
        tally->own_replies++;
      else
        {
          tally->mismatches++;
          g_test_message ("%s got “%.*s”", call->request, (int) size, data);
        }
    }
  else if (g_error_matches (error, STM32_ERROR, STM32_ERROR_TIMEOUT))
    tally->timeouts++;
  else
    {
      tally->other_errors++;
      g_test_message ("%s: %s", call->request, error->message);
    }
  client_call (call->client);
  g_free (call->request);
  g_free (call);
}

/* A request the board answers after a delay of its own, 0 to 300 ms, or
 * never (1 in 50), with a timeout from 50 ms to 5 s. */
static void
client_call (Client *client)
{
  Call *call;
  guint i;

  if (client->to_send == 0)
    return;
  i = client->to_send--;
  call = g_new0 (Call, 1);
  call->client = client;
  if (g_rand_int_range (client->rand, 0, 50) == 0)
    call->request = g_strdup_printf ("~- c%u-%u", client->id, i);
  else
    call->request =
        g_strdup_printf ("~%d c%u-%u", g_rand_int_range (client->rand, 0, 301), client->id, i);
  g_dbus_connection_call (
      client->connection, STM32_DBUS_NAME, STM32_DBUS_LINK_PATH_PREFIX "default",
      STM32_DBUS_LINK_INTERFACE, "Transact",
      g_variant_new (
          "(@ayu)",
          g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, call->request, strlen (call->request), 1),
          (guint32) g_rand_int_range (client->rand, 50, 5001)),
      G_VARIANT_TYPE ("(ay)"), G_DBUS_CALL_FLAGS_NONE, WAIT_MS, NULL, on_transacted, call);
  client->tally->sent++;
}

static void
test_many_callers (void)
{
  const guint clients = 20, calls = 2000;
  g_autoptr (GRand) rand = g_rand_new_with_seed (13);
  g_autofree char *dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  g_autofree char *config = g_build_filename (dir, "stm32d.conf", NULL);
  Stm32Sim *sim = stm32_sim_start ("--delay-marks", "--quiet", NULL);
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autofree Client *clients_state = g_new0 (Client, clients);
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;
  Tally tally = { 0 };

  /* A grace far above the board's slowest answer (300 ms), so that a late
   * reply always comes in it: replies are paired by order alone, and one later
   * than ReplyGrace shifts every reply after it by one until the next request
   * the board drops. 400 ms left the simulator and stm32d 100 ms to spare,
   * which two loaded cores ate (62 mismatches in the -O2 package build). */
  stm32_test_write_file (config, "[Link default]\nHost=127.0.0.1\nPort=%u\nReplyGrace=3000\n",
                         stm32_sim_get_port (sim));
  daemon = stm32_daemon_start ("--config", config, NULL);
  link = stm32_daemon_get_link (daemon, "default");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);

  for (guint c = 0; c < clients; c++)
    {
      g_autoptr (GError) error = NULL;
      GDBusConnection *connection = g_dbus_connection_new_for_address_sync (
          address,
          G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
              G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
          NULL, NULL, &error);

      g_assert_no_error (error);
      clients_state[c] = (Client){ &tally, connection, rand, c, calls };
    }
  for (guint i = 0; i < IN_FLIGHT; i++)
    for (guint c = 0; c < clients; c++)
      client_call (&clients_state[c]);
  stm32_test_wait_progressing (tally.answered == clients * calls, tally.answered, WAIT_MS);
  g_test_message ("%u calls: %u own replies, %u timeouts, %u other errors, %u mismatches",
                  tally.sent, tally.own_replies, tally.timeouts, tally.other_errors,
                  tally.mismatches);
  g_assert_cmpuint (tally.mismatches, ==, 0);
  g_assert_cmpuint (tally.other_errors, ==, 0);
  /* Not all of them time out: the board's answers do get through. */
  g_assert_cmpuint (tally.own_replies, >, 0);

  for (guint c = 0; c < clients; c++)
    g_object_unref (clients_state[c].connection);
  stm32_daemon_stop (daemon);
  stm32_sim_stop (sim);
  g_assert_cmpint (g_unlink (config), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  g_test_add_func ("/transact-load/many-callers", test_many_callers);
  return stm32_daemon_test_run ();
}
