/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libstm32client against the real stm32d on a private bus and the board
 * simulator: construction, links and their properties following the daemon,
 * every method async and sync, typed errors, links that come and go with
 * Reload and with the daemon itself, the Python example through GObject
 * Introspection, and the library's exported symbols.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gmodule.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-client-private.h"
#include "stm32-client.h"
#include "stm32-error.h"
#include "test-util.h"

#define WAIT_MS 10000

static GBytes *
text_bytes (const char *text)
{
  return g_bytes_new (text, strlen (text));
}

static char *
bytes_text (GBytes *bytes)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  return g_strndup (data, len);
}

static gboolean
state_is (Stm32ClientLink *link, const char *state)
{
  return g_strcmp0 (stm32_client_link_get_state (link), state) == 0;
}

static Stm32Client *
client_new (void)
{
  g_autoptr (GError) error = NULL;
  Stm32Client *client = stm32_client_new_sync (G_BUS_TYPE_SESSION, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (client);
  return client;
}

/* The link as this client sees it (the harness already saw the daemon export it). */
static Stm32ClientLink *
wait_link (Stm32Client *client, const char *name)
{
  stm32_test_wait_until (stm32_client_get_link (client, name) != NULL, WAIT_MS);
  return stm32_client_get_link (client, name);
}

/* An error as a caller sees it: typed, and meant for people. */
static void
assert_client_error (const GError *error, GQuark domain, int code)
{
  g_assert_error (error, domain, code);
  g_assert_false (g_dbus_error_is_remote_error (error));
  g_assert_null (strstr (error->message, "GDBus.Error"));
  g_assert_null (strstr (error->message, "org.stm32d.Error"));
}

static void
sim_expect_frame (Stm32Sim *sim, const char *data)
{
  g_autoptr (JsonObject) frame = stm32_sim_wait_event (sim, "frame", WAIT_MS);

  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, data);
}

typedef struct
{
  Stm32Sim *sim;
  Stm32Daemon *daemon;
  Stm32Client *client;
  Stm32ClientLink *link; /* "default", owned by the client */
  char *script;          /* channel_bench_setup's board script */
  char *dir;             /* config_bench_setup's, holding @config */
  char *config;
} Bench;

/* stm32d with one link "default" to the board (autoconnect). */
static void
bench_start_daemon (Bench *bench)
{
  g_autofree char *port = g_strdup_printf ("%u", stm32_sim_get_port (bench->sim));

  bench->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
}

static void
bench_start_client (Bench *bench)
{
  bench->client = client_new ();
  bench->link = wait_link (bench->client, "default");
}

/* A board that replies as the test's fixture data says ("echo" or "none"),
 * and stm32d with its link, for a test that makes its own client. */
static void
board_setup (Bench *bench, gconstpointer reply)
{
  bench->sim = stm32_sim_start ("--reply", reply, NULL);
  bench_start_daemon (bench);
}

/* The same, and a client. */
static void
bench_setup (Bench *bench, gconstpointer reply)
{
  board_setup (bench, reply);
  bench_start_client (bench);
}

/* A board that replies as the test's data says (none if NULL), and a place
 * for the config file of the stm32d the test starts. */
static void
config_bench_setup (Bench *bench, gconstpointer reply)
{
  if (reply != NULL)
    bench->sim = stm32_sim_start ("--reply", reply, NULL);
  bench->dir = g_dir_make_tmp ("stm32-client-test-XXXXXX", NULL);
  bench->config = g_build_filename (bench->dir, "stm32d.conf", NULL);
}

/* A test that stops stm32d itself takes it out of the fixture. */
static void
bench_teardown (Bench *bench, gconstpointer data)
{
  bench->link = NULL;
  g_clear_object (&bench->client);
  if (bench->daemon != NULL)
    stm32_daemon_stop (bench->daemon);
  if (bench->sim != NULL)
    stm32_sim_stop (bench->sim);
  if (bench->config != NULL)
    {
      g_unlink (bench->config);
      g_rmdir (bench->dir);
      g_free (bench->config);
      g_free (bench->dir);
    }
  if (bench->script != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (bench->script);

      g_unlink (bench->script);
      g_rmdir (dir);
      g_free (bench->script);
    }
}

static void
add_test (const char *path, const char *reply, void (*setup) (Bench *, gconstpointer),
          void (*test) (Bench *, gconstpointer))
{
  g_test_add (path, Bench, reply, setup, test, bench_teardown);
}

/* ---- async calls, waited for (bounded) ------------------------------------------- */

static gboolean
link_connect (Stm32ClientLink *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_client_link_connect (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_link_connect_finish (link, result, error);
}

static gboolean
link_disconnect (Stm32ClientLink *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_client_link_disconnect (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_link_disconnect_finish (link, result, error);
}

static gboolean
link_send (Stm32ClientLink *link, const char *text, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) frame = text_bytes (text);

  stm32_client_link_send (link, frame, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_link_send_finish (link, result, error);
}

static char *
link_transact (Stm32ClientLink *link, const char *text, guint timeout_ms, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) request = text_bytes (text);
  g_autoptr (GBytes) reply = NULL;

  stm32_client_link_transact (link, request, timeout_ms, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  reply = stm32_client_link_transact_finish (link, result, error);
  return reply ? bytes_text (reply) : NULL;
}

static GVariant *
link_get_history (Stm32ClientLink *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_client_link_get_history (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_link_get_history_finish (link, result, error);
}

static gboolean
link_set_autoconnect (Stm32ClientLink *link, gboolean autoconnect, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_client_link_set_autoconnect (link, autoconnect, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_link_set_autoconnect_finish (link, result, error);
}

static gboolean
client_reload (Stm32Client *client, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_client_reload (client, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_reload_finish (client, result, error);
}

/* ---- construction ---------------------------------------------------------------- */

static void
test_new_async (Bench *bench, gconstpointer data)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GCancellable) cancelled = g_cancellable_new ();
  g_autoptr (Stm32Client) client = NULL;
  g_autoptr (GError) error = NULL;
  GBusType bus_type = G_BUS_TYPE_NONE;

  stm32_client_new (G_BUS_TYPE_SESSION, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  client = stm32_client_new_finish (result, &error);
  g_assert_no_error (error);
  g_assert_true (STM32_IS_CLIENT (client));
  g_object_get (client, "bus-type", &bus_type, NULL);
  g_assert_cmpint (bus_type, ==, G_BUS_TYPE_SESSION);
  g_assert_true (stm32_client_is_running (client));
  g_assert_cmpuint (stm32_client_get_api_version (client), ==, 1);
  g_assert_cmpstr (stm32_client_link_get_name (wait_link (client, "default")), ==, "default");

  /* A cancelled construction says so, and builds nothing. */
  g_clear_object (&result);
  g_cancellable_cancel (cancelled);
  stm32_client_new (G_BUS_TYPE_SESSION, cancelled, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_null (stm32_client_new_finish (result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_new_sync (Bench *bench, gconstpointer data)
{
  g_autoptr (Stm32Client) client = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GList) links = NULL;

  client = stm32_client_new_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (stm32_client_is_running (client));
  g_assert_cmpuint (stm32_client_get_api_version (client), ==, 1);
  wait_link (client, "default");
  links = stm32_client_get_links (client);
  g_assert_cmpuint (g_list_length (links), ==, 1);
  g_assert_cmpuint (stm32_client_link_get_port (links->data), ==, stm32_sim_get_port (bench->sim));
}

/* ---- calls that end ---------------------------------------------------------------- */

static void
assert_no_answer (const GError *error, guint timeout_ms)
{
  g_autofree char *message = g_strdup_printf ("stm32d did not answer within %u ms", timeout_ms);

  assert_client_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_ANSWER);
  g_assert_cmpstr (error->message, ==, message);
}

/* A stm32d that stops answering (SIGSTOP): every call, construction's own
 * included, ends after the client's call-timeout with NO_ANSWER, sync and
 * async alike; the default is bounded; the caller's cancel is still a cancel. */
static void
test_call_timeout (Bench *bench, gconstpointer data)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GObject) late = NULL;
  guint call_timeout = 0;

  g_object_get (bench->client, "call-timeout", &call_timeout, NULL);
  g_assert_cmpuint (call_timeout, ==, STM32_CLIENT_CALL_TIMEOUT_DEFAULT);
  g_assert_cmpuint (STM32_CLIENT_CALL_TIMEOUT_DEFAULT, ==, 60000);
  stm32_client_set_call_timeout (bench->client, 300);
  g_assert_cmpuint (stm32_client_get_call_timeout (bench->client), ==, 300);

  stm32_daemon_send_signal (bench->daemon, SIGSTOP);
  history = stm32_client_link_get_history_sync (bench->link, NULL, &error);
  g_assert_null (history);
  assert_no_answer (error, 300);
  g_clear_error (&error);
  history = link_get_history (bench->link, &error);
  g_assert_null (history);
  assert_no_answer (error, 300);
  g_clear_error (&error);
  g_assert_false (client_reload (bench->client, &error));
  assert_no_answer (error, 300);
  g_clear_error (&error);

  /* Construction asks stm32d for its objects: bounded the same way. */
  late = g_initable_new (STM32_TYPE_CLIENT, NULL, &error, "bus-type", G_BUS_TYPE_SESSION,
                         "call-timeout", 200, NULL);
  g_assert_null (late);
  assert_no_answer (error, 200);
  g_clear_error (&error);
  g_async_initable_new_async (STM32_TYPE_CLIENT, G_PRIORITY_DEFAULT, NULL, stm32_test_store_result,
                              &result, "bus-type", G_BUS_TYPE_SESSION, "call-timeout", 200, NULL);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_null (stm32_client_new_finish (result, &error));
  assert_no_answer (error, 200);
  g_clear_error (&error);
  g_clear_object (&result);

  /* The caller's cancellable, not the timeout, ends this one. */
  g_async_initable_new_async (STM32_TYPE_CLIENT, G_PRIORITY_DEFAULT, cancellable,
                              stm32_test_store_result, &result, "bus-type", G_BUS_TYPE_SESSION,
                              "call-timeout", G_MAXINT, NULL);
  g_cancellable_cancel (cancellable);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_null (stm32_client_new_finish (result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* Answering again, it is the same client. */
  stm32_daemon_send_signal (bench->daemon, SIGCONT);
  stm32_client_set_call_timeout (bench->client, STM32_CLIENT_CALL_TIMEOUT_DEFAULT);
  history = stm32_client_link_get_history_sync (bench->link, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (history);
}

/* A transaction's call waits its own timeout plus the call-timeout: the
 * board's silence is stm32d's TIMEOUT answer, not a call that gave up;
 * stm32d's own silence is NO_ANSWER after the sum. */
static void
test_call_timeout_transact (Bench *bench, gconstpointer data)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) request = text_bytes ("anyone?");
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) async_error = NULL;

  /* A Transact before the link is up is NotConnected at once, not the board's silence. */
  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);
  /* Far longer than the call-timeout: a client that waited only that long
   * would give up before stm32d answers. */
  stm32_client_set_call_timeout (bench->client, 2000);
  stm32_client_link_transact (bench->link, request, 4000, NULL, stm32_test_store_result, &result);
  reply = stm32_client_link_transact_sync (bench->link, request, 4000, NULL, &error);
  g_assert_null (reply);
  assert_client_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_null (stm32_client_link_transact_finish (bench->link, result, &async_error));
  assert_client_error (async_error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  g_clear_error (&async_error);
  g_clear_object (&result);

  stm32_client_set_call_timeout (bench->client, 200);
  stm32_daemon_send_signal (bench->daemon, SIGSTOP);
  reply = stm32_client_link_transact_sync (bench->link, request, 300, NULL, &error);
  g_assert_null (reply);
  assert_no_answer (error, 500);
  stm32_client_link_transact (bench->link, request, 300, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_null (stm32_client_link_transact_finish (bench->link, result, &async_error));
  assert_no_answer (async_error, 500);
}

/* ---- links and their properties --------------------------------------------------- */

static void
test_links (Bench *bench, gconstpointer data)
{
  guint16 port = stm32_sim_get_port (bench->sim);
  g_autoptr (GList) links = NULL;
  g_autoptr (GError) error = NULL;
  const char *names[] = { "alpha", "beta", "gamma" };
  guint i = 0;

  stm32_test_write_file (bench->config,
                         "[Link gamma]\nHost=127.0.0.2\nPort=%u\nAutoconnect=false\n"
                         "[Link alpha]\nHost=localhost\nPort=%u\nFraming=json\n"
                         "[Link beta]\nHost=127.0.0.3\nPort=%u\nAutoconnect=false\n",
                         port, port, port);
  bench->daemon = stm32_daemon_start ("--config", bench->config, NULL);
  bench->client = client_new ();
  for (i = 0; i < G_N_ELEMENTS (names); i++)
    wait_link (bench->client, names[i]);

  /* Sorted by name, whatever order the file and the bus had them in. */
  links = stm32_client_get_links (bench->client);
  g_assert_cmpuint (g_list_length (links), ==, G_N_ELEMENTS (names));
  i = 0;
  for (GList *l = links; l != NULL; l = l->next, i++)
    {
      g_assert_cmpstr (stm32_client_link_get_name (l->data), ==, names[i]);
      g_assert_true (stm32_client_get_link (bench->client, names[i]) == l->data);
      g_assert_true (stm32_client_find_link (bench->client, names[i], &error) == l->data);
      g_assert_no_error (error);
    }
  g_assert_cmpstr (stm32_client_link_get_host (stm32_client_get_link (bench->client, "alpha")), ==,
                   "localhost");
  g_assert_cmpstr (stm32_client_link_get_framing (stm32_client_get_link (bench->client, "alpha")),
                   ==, "json");
  g_assert_false (
      stm32_client_link_get_autoconnect (stm32_client_get_link (bench->client, "beta")));
  g_assert_null (stm32_client_get_link (bench->client, "delta"));
}

typedef struct
{
  GPtrArray *states;      /* each "state" notify's value */
  GPtrArray *last_errors; /* LastError at that moment */
  guint frames_sent_notifies;
} NotifyLog;

static void
on_state_notify (Stm32ClientLink *link, GParamSpec *pspec, NotifyLog *log)
{
  g_ptr_array_add (log->states, g_strdup (stm32_client_link_get_state (link)));
  g_ptr_array_add (log->last_errors, g_strdup (stm32_client_link_get_last_error (link)));
}

static void
on_frames_sent_notify (Stm32ClientLink *link, GParamSpec *pspec, NotifyLog *log)
{
  log->frames_sent_notifies++;
}

static const char *
last_state (NotifyLog *log)
{
  return log->states->len ? log->states->pdata[log->states->len - 1] : NULL;
}

/* Every property as the daemon has it, read through getters and GObject alike,
 * and read-only: they mirror the daemon, so writing one here would only be a lie. */
static void
assert_connected_properties (Bench *bench)
{
  g_autofree char *remote = g_strdup_printf ("127.0.0.1:%u", stm32_sim_get_port (bench->sim));
  g_autofree char *state = NULL, *name = NULL, *local = NULL;
  g_autofree GParamSpec **pspecs = NULL;
  guint n_pspecs = 0, port = 0;
  guint64 connects = 0;

  g_assert_cmpstr (stm32_client_link_get_name (bench->link), ==, "default");
  g_assert_cmpstr (stm32_client_link_get_host (bench->link), ==, "127.0.0.1");
  g_assert_cmpuint (stm32_client_link_get_port (bench->link), ==, stm32_sim_get_port (bench->sim));
  g_assert_cmpstr (stm32_client_link_get_framing (bench->link), ==, "line");
  g_assert_true (stm32_client_link_get_autoconnect (bench->link));
  g_assert_true (
      g_str_has_prefix (stm32_client_link_get_local_address (bench->link), "127.0.0.1:"));
  g_assert_cmpstr (stm32_client_link_get_remote_address (bench->link), ==, remote);
  g_assert_cmpuint (stm32_client_link_get_connected_since (bench->link), >, 0);
  g_assert_cmpuint (stm32_client_link_get_retry_in (bench->link), ==, 0);
  g_assert_cmpstr (stm32_client_link_get_last_error (bench->link), ==, "none");
  g_assert_cmpstr (stm32_client_link_get_last_error_message (bench->link), ==, "");
  g_assert_cmpuint (stm32_client_link_get_disconnects (bench->link), ==, 0);
  g_assert_cmpuint (stm32_client_link_get_connect_failures (bench->link), ==, 0);
  g_assert_cmpuint (stm32_client_link_get_bytes_sent (bench->link), ==, 0);
  g_assert_cmpuint (stm32_client_link_get_bytes_received (bench->link), ==, 0);
  g_assert_cmpuint (stm32_client_link_get_frames_sent (bench->link), ==, 0);
  g_assert_cmpuint (stm32_client_link_get_frames_received (bench->link), ==, 0);
  g_assert_cmpstr (stm32_client_link_get_close_strategy (bench->link), ==, "graceful");
  g_assert_cmpstr (stm32_client_link_get_close_strategy_reason (bench->link), !=, "");
  g_assert_cmpuint (stm32_client_link_get_close_wait (bench->link), >, 0);
  g_assert_cmpuint (stm32_client_link_get_resets_sent (bench->link), ==, 0);
  g_assert_cmpuint (stm32_client_link_get_transact_timeouts (bench->link), ==, 0);
  g_assert_cmpuint (stm32_client_link_get_round_trip_sum (bench->link), ==, 0);
  {
    g_autoptr (GVariant) failures = stm32_client_link_dup_failures (bench->link);
    g_autoptr (GVariant) round_trips = stm32_client_link_dup_round_trips (bench->link);
    guint64 refused = G_MAXUINT64;

    /* Every reason is there, at 0, before it first happens. */
    g_assert_true (g_variant_lookup (failures, "refused", "t", &refused));
    g_assert_cmpuint (refused, ==, 0);
    g_assert_false (g_variant_lookup (failures, "none", "t", &refused));
    g_assert_false (g_variant_lookup (failures, "local", "t", &refused));
    g_assert_cmpuint (g_variant_n_children (round_trips), ==, 17);
  }

  g_object_get (bench->link, "name", &name, "port", &port, "state", &state, "local-address", &local,
                "connects", &connects, NULL);
  g_assert_cmpstr (name, ==, "default");
  g_assert_cmpuint (port, ==, stm32_sim_get_port (bench->sim));
  g_assert_cmpstr (state, ==, "connected");
  g_assert_cmpstr (local, ==, stm32_client_link_get_local_address (bench->link));
  g_assert_cmpuint (connects, ==, 1);
  pspecs = g_object_class_list_properties (G_OBJECT_GET_CLASS (bench->link), &n_pspecs);
  g_assert_cmpuint (n_pspecs, ==, 28);
  for (guint i = 0; i < n_pspecs; i++)
    g_assert_false (pspecs[i]->flags & G_PARAM_WRITABLE);
}

/* Properties notify as the daemon changes them, State with LastError in step. */
static void
test_properties (Bench *bench, gconstpointer data)
{
  NotifyLog log = { g_ptr_array_new_with_free_func (g_free),
                    g_ptr_array_new_with_free_func (g_free), 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);
  stm32_test_wait_until (stm32_client_link_get_connects (bench->link) == 1, WAIT_MS);
  assert_connected_properties (bench);

  g_assert_true (stm32_client_link_disconnect_sync (bench->link, NULL, &error));
  g_assert_no_error (error);
  g_signal_connect (bench->link, "notify::state", G_CALLBACK (on_state_notify), &log);
  g_signal_connect (bench->link, "notify::frames-sent", G_CALLBACK (on_frames_sent_notify), &log);
  stm32_test_wait_until (state_is (bench->link, "disconnected"), WAIT_MS);
  g_assert_true (link_connect (bench->link, &error));
  g_assert_no_error (error);
  stm32_test_wait_until (g_strcmp0 (last_state (&log), "connected") == 0, WAIT_MS);
  g_assert_cmpstr (log.last_errors->pdata[log.states->len - 1], ==, "none");
  g_assert_cmpuint (log.states->len, >=, 2); /* disconnected, …, connected */
  stm32_test_wait_until (stm32_client_link_get_connects (bench->link) == 2, WAIT_MS);

  /* Counters too. */
  reply = link_transact (bench->link, "count me", 2000, &error);
  g_assert_no_error (error);
  stm32_test_wait_until (stm32_client_link_get_frames_sent (bench->link) == 1, WAIT_MS);
  g_assert_cmpuint (log.frames_sent_notifies, >, 0);
  stm32_test_wait_until (stm32_client_link_get_frames_received (bench->link) == 1, WAIT_MS);
  g_assert_cmpuint (stm32_client_link_get_bytes_sent (bench->link), ==, strlen ("count me\n"));
  stm32_test_wait_until (stm32_client_link_get_round_trip_sum (bench->link) > 0, WAIT_MS);
  {
    g_autoptr (GVariant) round_trips = stm32_client_link_dup_round_trips (bench->link);
    guint64 all;

    g_variant_get_child (round_trips, 16, "t", &all);
    g_assert_cmpuint (all, ==, 1);
  }

  g_signal_handlers_disconnect_by_data (bench->link, &log);
  g_ptr_array_unref (log.states);
  g_ptr_array_unref (log.last_errors);
}

/* ---- methods ------------------------------------------------------------------------ */

static void
test_methods_async (Bench *bench, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) history = NULL;
  g_autofree char *reply = NULL;

  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);
  g_assert_true (link_disconnect (bench->link, &error));
  g_assert_no_error (error);
  json_object_unref (stm32_sim_wait_event (bench->sim, "released", WAIT_MS));
  stm32_test_wait_until (state_is (bench->link, "disconnected"), WAIT_MS);

  g_assert_true (link_connect (bench->link, &error));
  g_assert_no_error (error);
  g_assert_true (link_send (bench->link, "ping", &error));
  g_assert_no_error (error);
  sim_expect_frame (bench->sim, "ping");
  reply = link_transact (bench->link, "hello", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "hello");
  sim_expect_frame (bench->sim, "hello");

  history = link_get_history (bench->link, &error);
  g_assert_no_error (error);
  g_assert_true (g_variant_is_of_type (history, G_VARIANT_TYPE ("aa{sv}")));
  g_assert_cmpuint (g_variant_n_children (history), >=, 1);

  g_assert_true (link_disconnect (bench->link, &error));
  g_assert_no_error (error);
  json_object_unref (stm32_sim_wait_event (bench->sim, "released", WAIT_MS));
}

/* Diagnose, both ways: a passive report by default, a probe when asked, and
 * a bad option as a typed error. */
static void
test_diagnose (Bench *bench, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) passive = NULL, probed = NULL, bad = NULL, probe = NULL;
  GVariantDict options;
  gboolean healthy = FALSE;

  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);
  stm32_client_link_diagnose (bench->link, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  passive = stm32_client_link_diagnose_finish (bench->link, result, &error);
  g_assert_no_error (error);
  g_assert_true (g_variant_is_of_type (passive, G_VARIANT_TYPE_VARDICT));
  g_assert_true (g_variant_lookup (passive, "healthy", "b", &healthy));
  g_assert_true (healthy);
  g_assert_false (g_variant_lookup (passive, "probe", "@a{sv}", NULL));

  g_variant_dict_init (&options, NULL);
  g_variant_dict_insert (&options, "probe", "b", TRUE);
  g_variant_dict_insert (&options, "probe-max", "u", 1);
  probed =
      stm32_client_link_diagnose_sync (bench->link, g_variant_dict_end (&options), NULL, &error);
  g_assert_no_error (error);
  probe = g_variant_lookup_value (probed, "probe", G_VARIANT_TYPE_VARDICT);
  g_assert_nonnull (probe);

  g_variant_dict_init (&options, NULL);
  g_variant_dict_insert (&options, "probe", "s", "yes");
  bad = stm32_client_link_diagnose_sync (bench->link, g_variant_dict_end (&options), NULL, &error);
  g_assert_null (bad);
  g_assert_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
}

static void
test_methods_sync (Bench *bench, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GBytes) ping = text_bytes ("ping");
  g_autoptr (GBytes) hello = text_bytes ("hello");
  g_autoptr (GBytes) reply = NULL;

  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);
  g_assert_true (stm32_client_link_disconnect_sync (bench->link, NULL, &error));
  g_assert_no_error (error);
  json_object_unref (stm32_sim_wait_event (bench->sim, "released", WAIT_MS));

  g_assert_true (stm32_client_link_connect_sync (bench->link, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (stm32_client_link_send_sync (bench->link, ping, NULL, &error));
  g_assert_no_error (error);
  sim_expect_frame (bench->sim, "ping");
  reply = stm32_client_link_transact_sync (bench->link, hello, 2000, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (reply, hello));

  history = stm32_client_link_get_history_sync (bench->link, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_variant_is_of_type (history, G_VARIANT_TYPE ("aa{sv}")));
  g_assert_cmpuint (g_variant_n_children (history), >=, 1);

  g_assert_true (stm32_client_link_disconnect_sync (bench->link, NULL, &error));
  g_assert_no_error (error);
  json_object_unref (stm32_sim_wait_event (bench->sim, "released", WAIT_MS));
}

static void
on_received (Stm32ClientLink *link, GBytes *frame, GPtrArray *frames)
{
  g_ptr_array_add (frames, bytes_text (frame));
}

/* Fifty sends in flight: every frame comes back through "received", in order;
 * the transaction's reply before them went to its caller only. */
static void
test_received_order (Bench *bench, gconstpointer data)
{
  g_autoptr (GPtrArray) frames = g_ptr_array_new_with_free_func (g_free);
  GAsyncResult *sent[50] = { NULL };
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  g_signal_connect (bench->link, "received", G_CALLBACK (on_received), frames);
  g_assert_true (link_connect (bench->link, &error));
  reply = link_transact (bench->link, "first", 2000, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      g_autofree char *text = g_strdup_printf ("frame %u", i);
      g_autoptr (GBytes) frame = text_bytes (text);

      stm32_client_link_send (bench->link, frame, NULL, stm32_test_store_result, &sent[i]);
    }
  g_assert_cmpstr (reply, ==, "first");
  stm32_test_wait_until (frames->len == G_N_ELEMENTS (sent), WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++)
    {
      g_autofree char *text = g_strdup_printf ("frame %u", i);

      stm32_test_wait_until (sent[i] != NULL, WAIT_MS);
      g_assert_true (stm32_client_link_send_finish (bench->link, sent[i], &error));
      g_assert_no_error (error);
      g_object_unref (sent[i]);
      g_assert_cmpstr (frames->pdata[i], ==, text);
    }
  g_signal_handlers_disconnect_by_data (bench->link, frames);
}

/* ---- errors ------------------------------------------------------------------------- */

static void
test_errors (Bench *bench, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) request = text_bytes ("2");
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GCancellable) cancelled = g_cancellable_new ();
  g_autofree char *text = NULL;

  g_assert_true (stm32_client_link_disconnect_sync (bench->link, NULL, NULL));

  g_assert_false (link_send (bench->link, "1", &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_clear_error (&error);
  g_assert_false (stm32_client_link_send_sync (bench->link, request, NULL, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  /* The board never answers. */
  g_assert_true (link_connect (bench->link, NULL));
  text = link_transact (bench->link, "1", 200, &error);
  g_assert_null (text);
  assert_client_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  reply = stm32_client_link_transact_sync (bench->link, request, 200, NULL, &error);
  g_assert_null (reply);
  assert_client_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  reply = stm32_client_link_transact_sync (bench->link, request, 0, NULL, &error);
  assert_client_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  /* A link from --host has no file to reload. */
  g_assert_false (client_reload (bench->client, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  g_cancellable_cancel (cancelled);
  g_assert_false (stm32_client_link_connect_sync (bench->link, cancelled, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* A missing link names the links there are. */
static void
test_find_link_no_such_link (Bench *bench, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  stm32_test_write_file (bench->config, "[Link bench]\nHost=127.0.0.1\nPort=9\nAutoconnect=false\n"
                                        "[Link arm]\nHost=127.0.0.2\nPort=9\nAutoconnect=false\n");
  bench->daemon = stm32_daemon_start ("--config", bench->config, NULL);
  bench->client = client_new ();
  wait_link (bench->client, "arm");
  wait_link (bench->client, "bench");
  g_assert_null (stm32_client_find_link (bench->client, "oven", &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK);
  g_assert_cmpstr (error->message, ==, "stm32d has no link “oven”; its links are: arm, bench");
  g_clear_error (&error);
  g_clear_object (&bench->client);
  stm32_daemon_stop (g_steal_pointer (&bench->daemon));

  /* A daemon with nothing to do. */
  stm32_test_write_file (bench->config, "# no boards yet\n");
  bench->daemon = stm32_daemon_start ("--config", bench->config, NULL);
  bench->client = client_new ();
  g_assert_true (stm32_client_is_running (bench->client));
  g_assert_null (stm32_client_find_link (bench->client, "bench", &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK);
  g_assert_cmpstr (error->message, ==, "stm32d has no link “bench”; it has no links configured");
}

/* No daemon: the client still comes up, and says what to do on every call. */
static void
test_find_link_not_running (void)
{
  g_autoptr (Stm32Client) client = client_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GList) links = stm32_client_get_links (client);

  g_assert_false (stm32_client_is_running (client));
  g_assert_cmpuint (stm32_client_get_api_version (client), ==, 0);
  g_assert_null (links);
  g_assert_null (stm32_client_find_link (client, "default", &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING);
  g_assert_cmpstr (error->message, ==,
                   "stm32d is not running; start it with “systemctl start stm32d”");
  g_clear_error (&error);
  g_assert_false (stm32_client_reload_sync (client, NULL, &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING);
  g_clear_error (&error);
  g_assert_false (client_reload (client, &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING);
}

/* ---- links coming and going --------------------------------------------------------- */

typedef struct
{
  GPtrArray *added;   /* Stm32ClientLink */
  GPtrArray *removed; /* Stm32ClientLink */
  guint running_notifies;
} LinkLog;

static void
on_link_added (Stm32Client *client, Stm32ClientLink *link, LinkLog *log)
{
  g_ptr_array_add (log->added, g_object_ref (link));
}

static void
on_link_removed (Stm32Client *client, Stm32ClientLink *link, LinkLog *log)
{
  g_ptr_array_add (log->removed, g_object_ref (link));
}

static void
on_running_notify (Stm32Client *client, GParamSpec *pspec, LinkLog *log)
{
  log->running_notifies++;
}

static void
link_log_follow (LinkLog *log, Stm32Client *client)
{
  log->added = g_ptr_array_new_with_free_func (g_object_unref);
  log->removed = g_ptr_array_new_with_free_func (g_object_unref);
  g_signal_connect (client, "link-added", G_CALLBACK (on_link_added), log);
  g_signal_connect (client, "link-removed", G_CALLBACK (on_link_removed), log);
  g_signal_connect (client, "notify::running", G_CALLBACK (on_running_notify), log);
}

static void
link_log_clear (LinkLog *log, Stm32Client *client)
{
  g_signal_handlers_disconnect_by_data (client, log);
  g_ptr_array_unref (log->added);
  g_ptr_array_unref (log->removed);
}

static const char *
logged_name (GPtrArray *links, guint i)
{
  return i < links->len ? stm32_client_link_get_name (links->pdata[i]) : NULL;
}

/* Reload adds and removes links: an existing client hears of both, and a
 * removed link's calls fail without reaching the daemon. */
static void
test_reload (Bench *bench, gconstpointer data)
{
  guint16 port = stm32_sim_get_port (bench->sim);
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;
  LinkLog log = { 0 };
  Stm32ClientLink *c;

  /* a's board is none: only b and c, never together, reach the simulator. */
  stm32_test_write_file (bench->config,
                         "[Link a]\nHost=127.0.0.2\nPort=%u\n[Link b]\nHost=127.0.0.1\n"
                         "Port=%u\n",
                         port, port);
  bench->daemon = stm32_daemon_start ("--config", bench->config, NULL);
  bench->client = client_new ();
  wait_link (bench->client, "a");
  wait_link (bench->client, "b");
  link_log_follow (&log, bench->client);
  stm32_test_write_file (bench->config,
                         "[Link a]\nHost=127.0.0.2\nPort=%u\n[Link c]\nHost=127.0.0.1\n"
                         "Port=%u\n",
                         port, port);
  g_assert_true (stm32_client_reload_sync (bench->client, NULL, &error));
  g_assert_no_error (error);
  stm32_test_wait_until (log.added->len == 1 && log.removed->len == 1, WAIT_MS);
  g_assert_cmpstr (logged_name (log.added, 0), ==, "c");
  g_assert_cmpstr (logged_name (log.removed, 0), ==, "b");
  c = stm32_client_get_link (bench->client, "c");
  g_assert_true (c == log.added->pdata[0]);
  g_assert_null (stm32_client_get_link (bench->client, "b"));
  g_assert_nonnull (stm32_client_get_link (bench->client, "a"));
  g_assert_false (stm32_client_link_connect_sync (log.removed->pdata[0], NULL, &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK);
  g_clear_error (&error);
  stm32_test_wait_until (state_is (c, "connected"), WAIT_MS);
  reply = link_transact (c, "to c", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "to c");

  /* A bad file is refused, typed and saying where; nothing changes. */
  stm32_test_write_file (bench->config, "[Link a]\nHost=127.0.0.2\nPort=%u\nRetryMin=soon\n", port);
  g_assert_false (client_reload (bench->client, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_assert_true (g_str_has_prefix (error->message, bench->config));
  g_assert_nonnull (strstr (error->message, "stm32d.conf:4: [Link a] RetryMin:"));
  g_assert_nonnull (stm32_client_get_link (bench->client, "c"));
  g_assert_cmpuint (log.added->len + log.removed->len, ==, 2);

  link_log_clear (&log, bench->client);
}

/* The daemon stops: "running" goes FALSE, its links are removed and fail
 * with NOT_RUNNING. A new one starts: "running" goes TRUE with its links back. */
static void
test_running (Bench *bench, gconstpointer data)
{
  g_autofree char *port = NULL;
  g_autoptr (Stm32ClientLink) old = NULL;
  g_autoptr (GList) links = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;
  LinkLog log = { 0 };
  Stm32ClientLink *renewed;

  port = g_strdup_printf ("%u", stm32_sim_get_port (bench->sim));
  old = g_object_ref (bench->link);
  link_log_follow (&log, bench->client);
  g_assert_true (stm32_client_is_running (bench->client));

  stm32_daemon_stop (bench->daemon);
  stm32_test_wait_until (!stm32_client_is_running (bench->client), WAIT_MS);
  g_assert_cmpuint (log.running_notifies, ==, 1);
  /* Gone before "running" changed: a client that is not running lists no links. */
  g_assert_cmpuint (log.removed->len, ==, 1);
  g_assert_true (log.removed->pdata[0] == old);
  links = stm32_client_get_links (bench->client);
  g_assert_null (links);
  g_assert_cmpuint (stm32_client_get_api_version (bench->client), ==, 0);
  g_assert_false (stm32_client_link_connect_sync (old, NULL, &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING);
  g_clear_error (&error);
  g_assert_null (link_transact (old, "anyone?", 1000, &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING);
  g_clear_error (&error);

  /* The new daemon exports its links once it owns the name: they may cross
   * with the client asking for them, and the client must still follow the
   * one object it announced. */
  bench->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  stm32_test_wait_until (stm32_client_is_running (bench->client), WAIT_MS);
  g_assert_cmpuint (log.running_notifies, ==, 2);
  renewed = wait_link (bench->client, "default");
  g_assert_cmpuint (log.added->len, ==, 1);
  g_assert_true (renewed == log.added->pdata[0]);
  g_assert_true (renewed != old);
  stm32_test_wait_until (stm32_client_get_api_version (bench->client) == 1, WAIT_MS);
  stm32_test_wait_until (state_is (renewed, "connected"), WAIT_MS);
  reply = link_transact (renewed, "back", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "back");
  /* The old object stays gone: it belonged to the daemon that stopped. */
  g_assert_false (stm32_client_link_connect_sync (old, NULL, &error));
  g_assert_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK);

  link_log_clear (&log, bench->client);
}

static void
on_autoconnect_notify (Stm32ClientLink *link, GParamSpec *pspec, guint *notifies)
{
  (*notifies)++;
}

/* Autoconnect goes to the daemon through Properties.Set and comes back as notify. */
static void
test_autoconnect (Bench *bench, gconstpointer data)
{
  Stm32DbusLink1 *daemon_side;
  g_autoptr (GError) error = NULL;
  guint notifies = 0;

  daemon_side = stm32_daemon_get_link (bench->daemon, "default");
  g_assert_true (stm32_client_link_get_autoconnect (bench->link));
  g_signal_connect (bench->link, "notify::autoconnect", G_CALLBACK (on_autoconnect_notify),
                    &notifies);

  g_assert_true (link_set_autoconnect (bench->link, FALSE, &error));
  g_assert_no_error (error);
  stm32_test_wait_until (!stm32_client_link_get_autoconnect (bench->link), WAIT_MS);
  g_assert_cmpuint (notifies, ==, 1);
  stm32_test_wait_until (!stm32_dbus_link1_get_autoconnect (daemon_side), WAIT_MS);

  /* Autoconnect brings a link that was taken down back up. */
  g_assert_true (stm32_client_link_disconnect_sync (bench->link, NULL, &error));
  stm32_test_wait_until (state_is (bench->link, "disconnected"), WAIT_MS);
  g_assert_true (stm32_client_link_set_autoconnect_sync (bench->link, TRUE, NULL, &error));
  g_assert_no_error (error);
  stm32_test_wait_until (stm32_client_link_get_autoconnect (bench->link), WAIT_MS);
  g_assert_cmpuint (notifies, ==, 2);
  stm32_test_wait_until (stm32_dbus_link1_get_autoconnect (daemon_side), WAIT_MS);
  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);

  g_signal_handlers_disconnect_by_data (bench->link, &notifies);
}

/* ---- AcquireStream ------------------------------------------------------------------ */

static GSocket *
link_acquire_stream (Stm32ClientLink *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_client_link_acquire_stream (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_link_acquire_stream_finish (link, result, error);
}

static void
socket_write_all (GSocket *socket, const char *text)
{
  g_autoptr (GError) error = NULL;
  gsize len = strlen (text);

  g_assert_cmpint (g_socket_send (socket, text, len, NULL, &error), ==, (gssize) len);
  g_assert_no_error (error);
}

/* Reads until @expected arrived, each wait bounded. */
static void
socket_expect (GSocket *socket, const char *expected)
{
  g_autoptr (GString) got = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;

  while (got->len < strlen (expected) &&
         g_socket_condition_timed_wait (socket, G_IO_IN, deadline - g_get_monotonic_time (), NULL,
                                        NULL))
    {
      char buffer[256];
      gssize n = g_socket_receive (socket, buffer, sizeof buffer, NULL, NULL);

      g_assert_cmpint (n, >, 0);
      g_string_append_len (got, buffer, n);
    }
  g_assert_cmpstr (got->str, ==, expected);
}

/* Sends until the daemon no longer answers Busy: it sees the holder close
 * only when its side of the socket pair does. */
static void
wait_stream_released (Stm32ClientLink *link)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;
  g_autoptr (GError) error = NULL;

  while (!link_send (link, "free?", &error) && g_get_monotonic_time () < deadline)
    {
      g_assert_error (error, STM32_ERROR, STM32_ERROR_BUSY);
      g_clear_error (&error);
    }
  g_assert_no_error (error);
}

static void
test_acquire_stream (Bench *bench, gconstpointer data)
{
  g_autoptr (GSocket) stream = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_true (link_connect (bench->link, NULL));
  stream = link_acquire_stream (bench->link, &error);
  if (g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD))
    {
      g_test_skip ("this stm32d does not implement Link1.AcquireStream yet");
      return;
    }
  g_assert_no_error (error);
  g_assert_true (G_IS_SOCKET (stream));
  g_assert_cmpint (g_socket_get_socket_type (stream), ==, G_SOCKET_TYPE_STREAM);

  /* Raw bytes both ways: the line is the board's framing, not the daemon's. */
  socket_write_all (stream, "abc\n");
  sim_expect_frame (bench->sim, "abc");
  socket_expect (stream, "abc\n");
  g_assert_false (link_send (bench->link, "x", &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_null (stm32_client_link_acquire_stream_sync (bench->link, NULL, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_BUSY);
  g_clear_error (&error);

  /* Closing it gives the link back; the sync form takes it again. */
  g_assert_true (g_socket_close (stream, NULL));
  g_clear_object (&stream);
  wait_stream_released (bench->link);
  stream = stm32_client_link_acquire_stream_sync (bench->link, NULL, &error);
  g_assert_no_error (error);
  socket_write_all (stream, "def\n");
  socket_expect (stream, "def\n");
  g_clear_object (&stream);
}

/* ---- transaction channels: against a fake stm32d ------------------------------------- */

/* A channel whose other end is the test's, to check the wire format and the
 * replies stm32d should never send, without a daemon. */
typedef struct
{
  Stm32ClientChannel *channel;
  int fd; /* stm32d's end: blocking */
} FakeChannel;

static void
fake_open (FakeChannel *fake)
{
  g_autoptr (GError) error = NULL;
  GSocket *socket;
  int fds[2];

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds));
  socket = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  fake->channel = stm32_client_channel_new (socket);
  fake->fd = fds[1];
}

static void
fake_close (FakeChannel *fake)
{
  g_clear_object (&fake->channel);
  if (fake->fd >= 0)
    g_assert_no_errno (close (fake->fd));
  fake->fd = -1;
}

static void
fake_setup (FakeChannel *fake, gconstpointer data)
{
  fake_open (fake);
}

static void
fake_teardown (FakeChannel *fake, gconstpointer data)
{
  fake_close (fake);
}

/* The next request as stm32d reads it: a (ayu) in host byte order. */
static char *
fake_read_request (FakeChannel *fake, guint *timeout_ms)
{
  struct pollfd pfd = { .fd = fake->fd, .events = POLLIN };
  g_autofree char *buffer = g_malloc (65536);
  g_autoptr (GBytes) packet = NULL;
  g_autoptr (GVariant) request = NULL, frame = NULL;
  const char *data;
  gsize len;
  gssize n;

  g_assert_cmpint (poll (&pfd, 1, WAIT_MS), ==, 1);
  n = recv (fake->fd, buffer, 65536, 0);
  g_assert_cmpint (n, >, 0);
  packet = g_bytes_new (buffer, n);
  request = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayu)"), packet, FALSE));
  g_assert_true (g_variant_is_normal_form (request));
  g_variant_get (request, "(@ayu)", &frame, timeout_ms);
  data = g_variant_get_fixed_array (frame, &len, 1);
  return g_strndup (data, len);
}

static void
fake_send_packet (FakeChannel *fake, const void *data, gsize size)
{
  g_assert_cmpint (send (fake->fd, data, size, MSG_NOSIGNAL), ==, (gssize) size);
}

static void
fake_reply (FakeChannel *fake, const char *frame, const char *error_name, const char *message)
{
  g_autoptr (GVariant) reply = g_variant_ref_sink (g_variant_new (
      "(@ayss)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, frame, strlen (frame), 1),
      error_name, message));

  fake_send_packet (fake, g_variant_get_data (reply), g_variant_get_size (reply));
}

static void
channel_transact_start (Stm32ClientChannel *channel, const char *text, guint timeout_ms,
                        GCancellable *cancellable, GAsyncResult **result)
{
  g_autoptr (GBytes) request = text_bytes (text);

  stm32_client_channel_transact (channel, request, timeout_ms, cancellable, stm32_test_store_result,
                                 result);
}

/* The reply to a transaction started with channel_transact_start(), as text. */
static char *
channel_transact_wait (Stm32ClientChannel *channel, GAsyncResult **result, GError **error)
{
  g_autoptr (GBytes) reply = NULL;

  stm32_test_wait_until (*result != NULL, WAIT_MS);
  reply = stm32_client_channel_transact_finish (channel, *result, error);
  g_clear_object (result);
  return reply ? bytes_text (reply) : NULL;
}

static char *
channel_transact_sync (Stm32ClientChannel *channel, const char *text, guint timeout_ms,
                       GError **error)
{
  g_autoptr (GBytes) request = text_bytes (text);
  g_autoptr (GBytes) reply =
      stm32_client_channel_transact_sync (channel, request, timeout_ms, NULL, error);

  return reply ? bytes_text (reply) : NULL;
}

/* Requests go out as (ayu) packets; a reply's error name becomes the typed
 * error a D-Bus Transact gives, with stm32d's message as it is. */
static void
test_channel_fake_wire (FakeChannel *fake, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autofree char *reply = NULL, *request = NULL;
  guint timeout_ms = 0;

  /* The reply may well be there before the request: _sync reads it after writing. */
  fake_reply (fake, "pong", "", "");
  reply = channel_transact_sync (fake->channel, "ping", 1234, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "pong");
  request = fake_read_request (fake, &timeout_ms);
  g_assert_cmpstr (request, ==, "ping");
  g_assert_cmpuint (timeout_ms, ==, 1234);

  fake_reply (fake, "", "org.stm32d.Error.Timeout", "no frame from the board within 7 ms");
  g_clear_pointer (&reply, g_free);
  reply = channel_transact_sync (fake->channel, "x", 7, &error);
  g_assert_null (reply);
  assert_client_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_assert_cmpstr (error->message, ==, "no frame from the board within 7 ms");
  g_clear_error (&error);
  g_clear_pointer (&request, g_free);
  request = fake_read_request (fake, &timeout_ms);
  g_assert_cmpstr (request, ==, "x");
  g_assert_cmpuint (timeout_ms, ==, 7);

  channel_transact_start (fake->channel, "async", 9, NULL, &result);
  g_clear_pointer (&request, g_free);
  request = fake_read_request (fake, &timeout_ms);
  g_assert_cmpstr (request, ==, "async");
  g_assert_cmpuint (timeout_ms, ==, 9);
  fake_reply (fake, "", "org.stm32d.Error.NotConnected", "the link is not connected");
  g_assert_null (channel_transact_wait (fake->channel, &result, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
}

/* A _sync call that stm32d does not answer in time leaves its slot behind:
 * the late reply is dropped, and the next call gets its own. */
static void
test_channel_fake_stale (FakeChannel *fake, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autofree char *reply = NULL;

  /* Returns, bounded by the request's own timeout plus a margin, though
   * stm32d never answers. */
  g_assert_null (channel_transact_sync (fake->channel, "first", 1, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  fake_reply (fake, "late", "", "");
  fake_reply (fake, "second", "", "");
  reply = channel_transact_sync (fake->channel, "second", 1000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "second");

  /* A sync call while an async one is outstanding would read its reply. */
  channel_transact_start (fake->channel, "third", 1000, NULL, &result);
  g_clear_pointer (&reply, g_free);
  reply = channel_transact_sync (fake->channel, "never sent", 1000, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PENDING);
  g_clear_error (&error);
  fake_reply (fake, "third", "", "");
  reply = channel_transact_wait (fake->channel, &result, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "third");
}

/* Plays stm32d for test_channel_fake_sync_cancel(): once the request is
 * read (the _sync call is under way), the caller's cancellable is cancelled
 * from this thread, and no reply is sent. */
typedef struct
{
  FakeChannel *fake;
  GCancellable *cancellable;
  char *request;
} SyncCanceller;

static gpointer
cancel_after_request (gpointer user_data)
{
  SyncCanceller *canceller = user_data;
  guint timeout_ms;

  canceller->request = fake_read_request (canceller->fake, &timeout_ms);
  g_cancellable_cancel (canceller->cancellable);
  return NULL;
}

static char *
channel_transact_sync_cancelled (FakeChannel *fake, GCancellable *cancellable, const char *text)
{
  SyncCanceller canceller = { fake, cancellable, NULL };
  g_autoptr (GThread) thread = g_thread_new ("canceller", cancel_after_request, &canceller);
  g_autoptr (GBytes) request = text_bytes (text);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;

  /* stm32d would take 60 s to give up: only the cancel ends this in time. */
  reply = stm32_client_channel_transact_sync (fake->channel, request, 60000, cancellable, &error);
  g_thread_join (g_steal_pointer (&thread));
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  return canceller.request;
}

/* A _sync call that waits for stm32d ends as soon as its cancellable is
 * cancelled from another thread, the same cancellable works again after a
 * reset, and the replies the cancelled requests are still owed are dropped,
 * not given to the next call. */
static void
test_channel_fake_sync_cancel (FakeChannel *fake, gconstpointer data)
{
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GBytes) request = text_bytes ("ok");
  g_autoptr (GBytes) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *first = NULL, *second = NULL;

  first = channel_transact_sync_cancelled (fake, cancellable, "first");
  g_assert_cmpstr (first, ==, "first");

  g_cancellable_reset (cancellable);
  fake_reply (fake, "late to first", "", "");
  fake_reply (fake, "ok", "", "");
  reply = stm32_client_channel_transact_sync (fake->channel, request, 1000, cancellable, &error);
  g_assert_no_error (error);
  g_assert_true (reply != NULL && g_bytes_get_size (reply) == 2 &&
                 memcmp (g_bytes_get_data (reply, NULL), "ok", 2) == 0);
  g_clear_pointer (&reply, g_bytes_unref);
  g_free (fake_read_request (fake, &(guint){ 0 }));

  g_cancellable_reset (cancellable);
  second = channel_transact_sync_cancelled (fake, cancellable, "second");
  g_assert_cmpstr (second, ==, "second");

  /* Another cancellable, and none at all, after the one kept. */
  g_clear_object (&cancellable);
  cancellable = g_cancellable_new ();
  fake_reply (fake, "late to second", "", "");
  fake_reply (fake, "ok", "", "");
  reply = stm32_client_channel_transact_sync (fake->channel, request, 1000, cancellable, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (reply), ==, 2);
  g_clear_pointer (&reply, g_bytes_unref);
  fake_reply (fake, "ok", "", "");
  reply = stm32_client_channel_transact_sync (fake->channel, request, 1000, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (reply), ==, 2);
}

/* A reply that is not a (ayss) in normal form ends the channel: which
 * request the next packet answers cannot be known any more. */
static void
test_channel_fake_invalid_reply (void)
{
  const struct
  {
    const char *data;
    gsize size;
  } bad[] = {
    { "\x01\x02\x03", 3 },
    /* A (ayss) but not in normal form: the strings are not nul-terminated. */
    { "ab"
      "xy"
      "zw"
      "\x02\x04",
      8 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      FakeChannel fake = { 0 };
      g_autoptr (GError) error = NULL;
      g_autoptr (GAsyncResult) first = NULL, second = NULL;

      fake_open (&fake);
      channel_transact_start (fake.channel, "one", 1000, NULL, &first);
      channel_transact_start (fake.channel, "two", 1000, NULL, &second);
      fake_send_packet (&fake, bad[i].data, bad[i].size);
      g_assert_null (channel_transact_wait (fake.channel, &first, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
      g_clear_error (&error);
      g_assert_null (channel_transact_wait (fake.channel, &second, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
      g_clear_error (&error);
      g_assert_null (channel_transact_sync (fake.channel, "three", 1000, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
      fake_close (&fake);
    }
}

/* stm32d closing its end fails what is outstanding and what comes later. */
static void
test_channel_fake_eof (FakeChannel *fake, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) first = NULL, second = NULL;

  channel_transact_start (fake->channel, "one", 1000, NULL, &first);
  channel_transact_start (fake->channel, "two", 1000, NULL, &second);
  g_assert_no_errno (close (fake->fd));
  fake->fd = -1;
  g_assert_null (channel_transact_wait (fake->channel, &first, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_nonnull (strstr (error->message, "stm32d closed the transaction channel"));
  g_clear_error (&error);
  g_assert_null (channel_transact_wait (fake->channel, &second, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&error);
  g_assert_null (channel_transact_sync (fake->channel, "three", 1000, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
}

/* A full socket buffer is QUEUE_FULL and a request too big for a packet is
 * FRAME_TOO_LARGE; neither harms the transactions already written. Closing
 * fails those, and is idempotent. */
static void
test_channel_fake_limits (FakeChannel *fake, gconstpointer data)
{
  g_autoptr (GPtrArray) results = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) huge = g_bytes_new_take (g_malloc0 (8 * 1024 * 1024), 8 * 1024 * 1024);
  g_autoptr (GBytes) big = g_bytes_new_take (g_malloc0 (1024), 1024);
  g_autofree char *request = NULL;
  GAsyncResult **result = NULL;
  guint timeout_ms = 0;

  g_assert_null (stm32_client_channel_transact_sync (fake->channel, huge, 1000, NULL, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_FRAME_TOO_LARGE);
  g_clear_error (&error);

  /* Nobody reads: the socket buffer fills up. */
  while (results->len < 100000)
    {
      result = g_new0 (GAsyncResult *, 1);
      g_ptr_array_add (results, result);
      stm32_client_channel_transact (fake->channel, big, 1000, NULL, stm32_test_store_result,
                                     result);
      while (g_main_context_iteration (NULL, FALSE))
        ;
      if (*result != NULL)
        break;
    }
  g_assert_nonnull (*result);
  g_assert_null (stm32_client_channel_transact_finish (fake->channel, *result, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_QUEUE_FULL);
  g_clear_error (&error);
  g_assert_cmpuint (results->len, >, 1);
  g_clear_object (result);

  /* The first request is intact, and answered. */
  request = fake_read_request (fake, &timeout_ms);
  g_assert_cmpuint (strlen (request), ==, 0); /* 1024 nul bytes, as text */
  fake_reply (fake, "first", "", "");
  stm32_test_wait_until (*(GAsyncResult **) results->pdata[0] != NULL, WAIT_MS);
  for (guint i = 1; i + 1 < results->len; i++)
    g_assert_null (*(GAsyncResult **) results->pdata[i]);

  stm32_client_channel_close (fake->channel);
  stm32_client_channel_close (fake->channel);
  for (guint i = 0; i + 1 < results->len; i++)
    {
      GAsyncResult **r = results->pdata[i];
      g_autoptr (GBytes) reply = NULL;

      stm32_test_wait_until (*r != NULL, WAIT_MS);
      reply = stm32_client_channel_transact_finish (fake->channel, *r, &error);
      if (i == 0)
        {
          g_assert_no_error (error);
          g_assert_cmpmem (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), "first", 5);
        }
      else
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
          g_clear_error (&error);
        }
      g_clear_object (r);
    }
  g_assert_null (channel_transact_sync (fake->channel, "closed", 1000, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
}

/* ---- transaction channels: against stm32d --------------------------------------------- */

/* A board that answers only what the script says: "silent" gets no reply. */
static void
channel_bench_setup (Bench *bench, gconstpointer data)
{
  g_autofree char *dir = g_dir_make_tmp ("stm32-client-test-XXXXXX", NULL);

  bench->script = g_build_filename (dir, "script", NULL);
  stm32_test_write_file (bench->script, "hello\tworld\na\tA\nb\tB\nc\tC\ntwo\t2\nagain\tyes\n");
  bench->sim = stm32_sim_start ("--reply", "none", "--script", bench->script, NULL);
  bench_start_daemon (bench);
  bench_start_client (bench);
  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);
}

static Stm32ClientChannel *
link_open_channel (Stm32ClientLink *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_client_link_open_transact_channel (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  return stm32_client_link_open_transact_channel_finish (link, result, error);
}

/* The request reaches the board as the frame it was, the reply is the
 * board's frame. */
static void
test_channel_sync (Bench *bench, gconstpointer data)
{
  g_autoptr (Stm32ClientChannel) channel = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  channel = stm32_client_link_open_transact_channel_sync (bench->link, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (STM32_IS_CLIENT_CHANNEL (channel));
  reply = channel_transact_sync (channel, "hello", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "world");
  sim_expect_frame (bench->sim, "hello");
  g_clear_pointer (&reply, g_free);
  reply = channel_transact_sync (channel, "again", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "yes");
  sim_expect_frame (bench->sim, "again");
  g_clear_object (&channel);
}

typedef struct
{
  GPtrArray *order; /* request texts, in completion order */
  GPtrArray *replies;
  Stm32ClientChannel *channel;
} AsyncLog;

static void
on_logged_transact (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AsyncLog *log = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = stm32_client_channel_transact_finish (log->channel, result, &error);

  g_assert_no_error (error);
  g_ptr_array_add (log->replies, bytes_text (reply));
}

/* Several transactions outstanding at once: each completes with its own
 * reply, in order. */
static void
test_channel_async_order (Bench *bench, gconstpointer data)
{
  g_autoptr (Stm32ClientChannel) channel = NULL;
  g_autoptr (GError) error = NULL;
  AsyncLog log = { NULL, g_ptr_array_new_with_free_func (g_free), NULL };
  const char *requests[] = { "a", "b", "c", "a", "c" };
  const char *expected[] = { "A", "B", "C", "A", "C" };

  channel = link_open_channel (bench->link, &error);
  g_assert_no_error (error);
  log.channel = channel;
  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_autoptr (GBytes) request = text_bytes (requests[i]);

      stm32_client_channel_transact (channel, request, 2000, NULL, on_logged_transact, &log);
    }
  stm32_test_wait_until (log.replies->len == G_N_ELEMENTS (requests), WAIT_MS);
  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_assert_cmpstr (log.replies->pdata[i], ==, expected[i]);
      sim_expect_frame (bench->sim, requests[i]);
    }
  g_ptr_array_unref (log.replies);
  g_clear_object (&channel);
}

/* A cancelled transaction completes at once; stm32d's reply to it is
 * dropped, so the next transaction still gets its own. */
static void
test_channel_cancel (Bench *bench, gconstpointer data)
{
  g_autoptr (Stm32ClientChannel) channel = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GAsyncResult) first = NULL, second = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  channel = link_open_channel (bench->link, &error);
  g_assert_no_error (error);
  /* The board does not answer "silent": stm32d replies Timeout after 1 s,
   * and only then starts "two". */
  channel_transact_start (channel, "silent", 1000, cancellable, &first);
  channel_transact_start (channel, "two", 5000, NULL, &second);
  g_cancellable_cancel (cancellable);
  g_assert_null (channel_transact_wait (channel, &first, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_null (second);
  reply = channel_transact_wait (channel, &second, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "2");
  sim_expect_frame (bench->sim, "silent");
  sim_expect_frame (bench->sim, "two");

  /* Cancelled before it started: nothing is sent. */
  channel_transact_start (channel, "a", 1000, cancellable, &first);
  g_assert_null (channel_transact_wait (channel, &first, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_clear_pointer (&reply, g_free);
  reply = channel_transact_sync (channel, "b", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "B");
  sim_expect_frame (bench->sim, "b");
  g_clear_object (&channel);
}

/* The daemon's errors arrive typed, as from Transact over D-Bus; a sync call
 * with async ones outstanding is PENDING; the channel outlives a reconnect. */
static void
test_channel_errors (Bench *bench, gconstpointer data)
{
  g_autoptr (Stm32ClientChannel) channel = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;

  channel = stm32_client_link_open_transact_channel_sync (bench->link, NULL, &error);
  g_assert_no_error (error);

  g_assert_null (channel_transact_sync (channel, "silent", 200, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  channel_transact_start (channel, "silent", 300, NULL, &result);
  g_assert_null (channel_transact_sync (channel, "a", 2000, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PENDING);
  g_clear_error (&error);
  g_assert_null (channel_transact_wait (channel, &result, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  g_clear_error (&error);
  g_assert_null (channel_transact_sync (channel, "a", 0, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  g_assert_true (stm32_client_link_disconnect_sync (bench->link, NULL, &error));
  g_assert_no_error (error);
  g_assert_null (channel_transact_sync (channel, "a", 2000, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_clear_error (&error);
  channel_transact_start (channel, "a", 2000, NULL, &result);
  g_assert_null (channel_transact_wait (channel, &result, &error));
  assert_client_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  g_assert_true (stm32_client_link_connect_sync (bench->link, NULL, &error));
  g_assert_no_error (error);
  reply = channel_transact_sync (channel, "c", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "C");
  g_clear_object (&channel);
}

/* stm32d stopping closes the channel: what it did not answer before it went
 * fails with CONNECTION_CLOSED, and so does everything later. */
static void
test_channel_daemon_stops (Bench *bench, gconstpointer data)
{
  g_autoptr (Stm32ClientChannel) channel = NULL;
  GAsyncResult *results[3] = { NULL };
  g_autoptr (GAsyncResult) later = NULL;
  g_autoptr (GError) error = NULL;

  channel = link_open_channel (bench->link, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    channel_transact_start (channel, "silent", 60000, NULL, &results[i]);
  sim_expect_frame (bench->sim, "silent");
  stm32_daemon_stop (g_steal_pointer (&bench->daemon));
  for (guint i = 0; i < G_N_ELEMENTS (results); i++)
    {
      g_assert_null (channel_transact_wait (channel, &results[i], &error));
      /* stm32d may still fail the transactions it has with the link's
       * error on its way out; it does not leave them hanging. */
      if (error->domain != STM32_ERROR)
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
          g_assert_nonnull (strstr (error->message, "stm32d closed the transaction channel"));
        }
      g_clear_error (&error);
    }
  channel_transact_start (channel, "a", 2000, NULL, &later);
  g_assert_null (channel_transact_wait (channel, &later, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&error);
  g_assert_null (channel_transact_sync (channel, "a", 2000, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);

  g_clear_object (&channel);
}

/* Reload without the link closes its channel; the other link's stays. */
static void
test_channel_link_removed (Bench *bench, gconstpointer data)
{
  /* One board each: two links to one board are refused. */
  Stm32Sim *board_b = stm32_sim_start ("--reply", "echo", NULL);
  guint16 port = stm32_sim_get_port (bench->sim), port_b = stm32_sim_get_port (board_b);
  g_autoptr (Stm32ClientChannel) to_a = NULL, to_b = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;
  Stm32ClientLink *a, *b;

  stm32_test_write_file (bench->config,
                         "[Link a]\nHost=127.0.0.1\nPort=%u\n[Link b]\nHost=127.0.0.1\nPort=%u\n",
                         port, port_b);
  bench->daemon = stm32_daemon_start ("--config", bench->config, NULL);
  bench->client = client_new ();
  a = wait_link (bench->client, "a");
  b = wait_link (bench->client, "b");
  stm32_test_wait_until (state_is (a, "connected") && state_is (b, "connected"), WAIT_MS);
  to_a = stm32_client_link_open_transact_channel_sync (a, NULL, &error);
  g_assert_no_error (error);
  to_b = stm32_client_link_open_transact_channel_sync (b, NULL, &error);
  g_assert_no_error (error);
  reply = channel_transact_sync (to_b, "to b", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "to b");

  stm32_test_write_file (bench->config, "[Link a]\nHost=127.0.0.1\nPort=%u\n", port);
  g_assert_true (stm32_client_reload_sync (bench->client, NULL, &error));
  g_assert_no_error (error);
  channel_transact_start (to_b, "anyone?", 2000, NULL, &result);
  g_assert_null (channel_transact_wait (to_b, &result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&error);
  g_assert_null (channel_transact_sync (to_b, "anyone?", 2000, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&error);
  g_clear_pointer (&reply, g_free);
  reply = channel_transact_sync (to_a, "to a", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "to a");

  g_clear_object (&to_a);
  g_clear_object (&to_b);
  stm32_sim_stop (board_b);
}

/* stm32d closing the channel in order, holding nothing of ours unread (it
 * read the request whose reply it owed when the link was removed): the
 * waiting transaction reads the end of the channel (0 bytes), not a reset,
 * and fails with CONNECTION_CLOSED and the message for it, no system error
 * after it; later calls get the same. */
static void
test_channel_closed_in_order (Bench *bench, gconstpointer data)
{
  const char *closed =
      "stm32d closed the transaction channel (the link was removed or stm32d stopped)";
  g_autoptr (Stm32ClientChannel) channel = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  stm32_test_write_file (bench->config, "[Link default]\nHost=127.0.0.1\nPort=%u\n",
                         stm32_sim_get_port (bench->sim));
  bench->daemon = stm32_daemon_start ("--config", bench->config, NULL);
  bench_start_client (bench);
  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);
  channel = link_open_channel (bench->link, &error);
  g_assert_no_error (error);
  /* The board never answers; once it has the frame, stm32d holds no request unread. */
  channel_transact_start (channel, "anyone?", 60000, NULL, &result);
  sim_expect_frame (bench->sim, "anyone?");

  stm32_test_write_file (bench->config, "# no links\n");
  bench->link = NULL;
  g_assert_true (client_reload (bench->client, &error));
  g_assert_no_error (error);
  g_assert_null (channel_transact_wait (channel, &result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_cmpstr (error->message, ==, closed);
  g_clear_error (&error);
  g_assert_null (channel_transact_sync (channel, "anyone?", 2000, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_cmpstr (error->message, ==, closed);
}

/* ---- the library as others load it --------------------------------------------------- */

/* Runs client-lib/examples/SCRIPT ARGS… through GObject Introspection
 * against the daemon in @bench; asserts it exits 0 and returns its stdout,
 * or returns NULL after g_test_skip() where PyGObject is missing. */
static char *run_python_example (Bench *bench, const char *script_name, ...) G_GNUC_NULL_TERMINATED;

static char *
run_python_example (Bench *bench, const char *script_name, ...)
{
  g_autofree char *libdir = stm32_test_build_path ("client-lib");
  g_autofree char *typelib = g_build_filename (libdir, "Stm32Client-0.1.typelib", NULL);
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) python = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  char *out = NULL;
  const char *arg;
  va_list args;

  if (STM32_TEST_PYTHON[0] == '\0')
    {
      g_test_skip (STM32_TEST_PYTHON_SKIP);
      return NULL;
    }
  g_assert_true (g_file_test (typelib, G_FILE_TEST_IS_REGULAR));
  g_ptr_array_add (argv, g_strdup (STM32_TEST_PYTHON));
  g_ptr_array_add (
      argv, g_test_build_filename (G_TEST_DIST, "..", "client-lib", "examples", script_name, NULL));
  va_start (args, script_name);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv, NULL);
  stm32_test_wait_until (state_is (bench->link, "connected"), WAIT_MS);

  launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_setenv (launcher, "GI_TYPELIB_PATH", libdir, TRUE);
  g_subprocess_launcher_setenv (launcher, "LD_LIBRARY_PATH", libdir, TRUE);
  if (STM32_TEST_PYTHON_PRELOAD[0] != '\0')
    {
      /* The sanitizers' runtime, for our library; python's own allocations
       * would all count as leaks, so leak checking stays with the C tests. */
      g_subprocess_launcher_setenv (launcher, "LD_PRELOAD", STM32_TEST_PYTHON_PRELOAD, TRUE);
      g_subprocess_launcher_setenv (launcher, "ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1",
                                    TRUE);
    }
  python = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (python, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS * 3);
  g_assert_true (g_subprocess_communicate_utf8_finish (python, result, &out, &err, &error));
  g_assert_no_error (error);
  g_test_message ("%s stdout:\n%sstderr:\n%s", script_name, out, err);
  g_assert_true (g_subprocess_get_if_exited (python));
  g_assert_cmpint (g_subprocess_get_exit_status (python), ==, 0);
  return out;
}

/* examples/echo.py: one Transact, the way a GUI makes it. */
static void
test_example_python (Bench *bench, gconstpointer data)
{
  g_autofree char *out = NULL;

  out = run_python_example (bench, "echo.py", "default", "hello from python", NULL);
  if (out != NULL)
    {
      g_assert_true (g_str_has_prefix (out, "link default: connected (127.0.0.1:"));
      g_assert_nonnull (strstr (out, "\nreply: hello from python\n"));
      sim_expect_frame (bench->sim, "hello from python");
    }
}

/* examples/poll.py: the same question again and again over a transaction
 * channel; every one reaches the board and every answer comes back. */
static void
test_example_python_poll (Bench *bench, gconstpointer data)
{
  g_autofree char *out = NULL;

  out = run_python_example (bench, "poll.py", "--count", "5", "default", "temperature?", NULL);
  if (out != NULL)
    {
      g_assert_true (g_str_has_prefix (out, "answer 1: temperature?\n"));
      g_assert_nonnull (strstr (out, "\nanswer 5: temperature?\nmedian round trip: "));
      g_assert_null (strstr (out, "answer 6"));
      for (guint i = 0; i < 5; i++)
        sim_expect_frame (bench->sim, "temperature?");
    }
}

#define PUBLIC(symbol)                                                                             \
  {                                                                                                \
#symbol, (GCallback) symbol                                                                    \
  }

/* Every function of the two headers; referring to them here also makes a
 * rename in the headers a build failure of this test. */
static const struct
{
  const char *name;
  GCallback function;
} public_api[] = {
  PUBLIC (stm32_client_get_type),
  PUBLIC (stm32_client_error_get_type),
  PUBLIC (stm32_client_error_quark),
  PUBLIC (stm32_client_new),
  PUBLIC (stm32_client_new_finish),
  PUBLIC (stm32_client_new_sync),
  PUBLIC (stm32_client_is_running),
  PUBLIC (stm32_client_get_api_version),
  PUBLIC (stm32_client_get_call_timeout),
  PUBLIC (stm32_client_set_call_timeout),
  PUBLIC (stm32_client_get_links),
  PUBLIC (stm32_client_get_link),
  PUBLIC (stm32_client_find_link),
  PUBLIC (stm32_client_reload),
  PUBLIC (stm32_client_reload_finish),
  PUBLIC (stm32_client_reload_sync),
  PUBLIC (stm32_error_quark),
  PUBLIC (stm32_client_link_get_type),
  PUBLIC (stm32_client_link_get_name),
  PUBLIC (stm32_client_link_get_host),
  PUBLIC (stm32_client_link_get_port),
  PUBLIC (stm32_client_link_get_state),
  PUBLIC (stm32_client_link_get_framing),
  PUBLIC (stm32_client_link_get_autoconnect),
  PUBLIC (stm32_client_link_get_local_address),
  PUBLIC (stm32_client_link_get_remote_address),
  PUBLIC (stm32_client_link_get_connected_since),
  PUBLIC (stm32_client_link_get_retry_in),
  PUBLIC (stm32_client_link_get_last_error),
  PUBLIC (stm32_client_link_get_last_error_message),
  PUBLIC (stm32_client_link_get_bytes_sent),
  PUBLIC (stm32_client_link_get_bytes_received),
  PUBLIC (stm32_client_link_get_frames_sent),
  PUBLIC (stm32_client_link_get_frames_received),
  PUBLIC (stm32_client_link_get_connects),
  PUBLIC (stm32_client_link_get_disconnects),
  PUBLIC (stm32_client_link_get_connect_failures),
  PUBLIC (stm32_client_link_get_late_replies),
  PUBLIC (stm32_client_link_get_resets_sent),
  PUBLIC (stm32_client_link_get_transact_timeouts),
  PUBLIC (stm32_client_link_dup_failures),
  PUBLIC (stm32_client_link_dup_round_trips),
  PUBLIC (stm32_client_link_get_round_trip_sum),
  PUBLIC (stm32_client_link_set_autoconnect),
  PUBLIC (stm32_client_link_set_autoconnect_finish),
  PUBLIC (stm32_client_link_set_autoconnect_sync),
  PUBLIC (stm32_client_link_connect),
  PUBLIC (stm32_client_link_connect_finish),
  PUBLIC (stm32_client_link_connect_sync),
  PUBLIC (stm32_client_link_disconnect),
  PUBLIC (stm32_client_link_disconnect_finish),
  PUBLIC (stm32_client_link_disconnect_sync),
  PUBLIC (stm32_client_link_send),
  PUBLIC (stm32_client_link_send_finish),
  PUBLIC (stm32_client_link_send_sync),
  PUBLIC (stm32_client_link_transact),
  PUBLIC (stm32_client_link_transact_finish),
  PUBLIC (stm32_client_link_transact_sync),
  PUBLIC (stm32_client_link_get_history),
  PUBLIC (stm32_client_link_get_history_finish),
  PUBLIC (stm32_client_link_get_history_sync),
  PUBLIC (stm32_client_link_acquire_stream),
  PUBLIC (stm32_client_link_acquire_stream_finish),
  PUBLIC (stm32_client_link_acquire_stream_sync),
  PUBLIC (stm32_client_link_open_transact_channel),
  PUBLIC (stm32_client_link_open_transact_channel_finish),
  PUBLIC (stm32_client_link_open_transact_channel_sync),
  PUBLIC (stm32_client_channel_get_type),
  PUBLIC (stm32_client_channel_transact),
  PUBLIC (stm32_client_channel_transact_finish),
  PUBLIC (stm32_client_channel_transact_sync),
  PUBLIC (stm32_client_channel_close),
  PUBLIC (stm32_client_link_open_send_channel),
  PUBLIC (stm32_client_link_open_send_channel_finish),
  PUBLIC (stm32_client_link_open_send_channel_sync),
  PUBLIC (stm32_client_send_channel_get_type),
  PUBLIC (stm32_client_send_channel_send),
  PUBLIC (stm32_client_send_channel_send_finish),
  PUBLIC (stm32_client_send_channel_send_sync),
  PUBLIC (stm32_client_send_channel_get_unanswered),
  PUBLIC (stm32_client_send_channel_get_unwritten),
  PUBLIC (stm32_client_send_channel_close),
};

/* libstm32client.so exports its API and nothing else: not its private
 * helpers, nor the generated D-Bus code it carries. */
static void
test_library_exports (void)
{
  g_autofree char *path = stm32_test_build_path ("client-lib/libstm32client.so");
  const char *private_symbols[] = {
    "stm32_client_link_new",
    "stm32_client_link_mark_removed",
    "stm32_client_set_not_running_error",
    "stm32_client_channel_new",
    "stm32_client_send_channel_new",
    "stm32_dbus_link1_get_type",
    "stm32_dbus_link1_proxy_new_sync",
    "stm32_dbus_object_manager_client_new_for_bus_sync",
  };
  GModule *library = g_module_open (path, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  gpointer symbol;

  g_assert_nonnull (library);
  for (guint i = 0; i < G_N_ELEMENTS (public_api); i++)
    if (!g_module_symbol (library, public_api[i].name, &symbol))
      g_error ("libstm32client.so does not export %s", public_api[i].name);
  for (guint i = 0; i < G_N_ELEMENTS (private_symbols); i++)
    if (g_module_symbol (library, private_symbols[i], &symbol))
      g_error ("libstm32client.so exports %s", private_symbols[i]);
  g_assert_true (g_module_close (library));
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  add_test ("/client/new/async", "echo", board_setup, test_new_async);
  add_test ("/client/new/sync", "echo", board_setup, test_new_sync);
  add_test ("/client/links", "echo", config_bench_setup, test_links);
  add_test ("/client/properties", "echo", bench_setup, test_properties);
  add_test ("/client/methods/async", "echo", bench_setup, test_methods_async);
  add_test ("/client/methods/sync", "echo", bench_setup, test_methods_sync);
  add_test ("/client/diagnose", "echo", bench_setup, test_diagnose);
  add_test ("/client/received-order", "echo", bench_setup, test_received_order);
  add_test ("/client/errors", "none", bench_setup, test_errors);
  add_test ("/client/call-timeout", "echo", bench_setup, test_call_timeout);
  add_test ("/client/call-timeout-transact", "none", bench_setup, test_call_timeout_transact);
  add_test ("/client/find-link/no-such-link", NULL, config_bench_setup,
            test_find_link_no_such_link);
  g_test_add_func ("/client/find-link/not-running", test_find_link_not_running);
  add_test ("/client/reload", "echo", config_bench_setup, test_reload);
  add_test ("/client/running", "echo", bench_setup, test_running);
  add_test ("/client/autoconnect", "echo", bench_setup, test_autoconnect);
  add_test ("/client/acquire-stream", "echo", bench_setup, test_acquire_stream);
  g_test_add ("/client/channel/fake/wire", FakeChannel, NULL, fake_setup, test_channel_fake_wire,
              fake_teardown);
  g_test_add ("/client/channel/fake/stale", FakeChannel, NULL, fake_setup, test_channel_fake_stale,
              fake_teardown);
  g_test_add ("/client/channel/fake/sync-cancel", FakeChannel, NULL, fake_setup,
              test_channel_fake_sync_cancel, fake_teardown);
  g_test_add_func ("/client/channel/fake/invalid-reply", test_channel_fake_invalid_reply);
  g_test_add ("/client/channel/fake/eof", FakeChannel, NULL, fake_setup, test_channel_fake_eof,
              fake_teardown);
  g_test_add ("/client/channel/fake/limits", FakeChannel, NULL, fake_setup,
              test_channel_fake_limits, fake_teardown);
  add_test ("/client/channel/sync", NULL, channel_bench_setup, test_channel_sync);
  add_test ("/client/channel/async-order", NULL, channel_bench_setup, test_channel_async_order);
  add_test ("/client/channel/cancel", NULL, channel_bench_setup, test_channel_cancel);
  add_test ("/client/channel/errors", NULL, channel_bench_setup, test_channel_errors);
  add_test ("/client/channel/daemon-stops", NULL, channel_bench_setup, test_channel_daemon_stops);
  add_test ("/client/channel/link-removed", "echo", config_bench_setup, test_channel_link_removed);
  add_test ("/client/channel/closed-in-order", "none", config_bench_setup,
            test_channel_closed_in_order);
  add_test ("/client/example/python", "echo", bench_setup, test_example_python);
  add_test ("/client/example/python-poll", "echo", bench_setup, test_example_python_poll);
  g_test_add_func ("/client/library/exports", test_library_exports);
  return stm32_daemon_test_run ();
}
