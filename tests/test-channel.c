/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Link1.OpenTransactChannel against the real stm32d and the board simulator,
 * spoken on the wire as any client would: (ayu) packets in, (ayss) packets
 * out. Requests reach the board byte for byte and replies come back in
 * order; every failure is the error D-Bus Transact gives; bad packets are
 * answered, not fatal; a client that stops reading loses nothing; and every
 * way a channel ends (the client closing mid-transaction, the link removed,
 * too many open) leaves the daemon with the fds it had.
 */
#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-error.h"
#include "stm32-names.h"
#include "test-util.h"

#define WAIT_MS 10000
#define CHANNELS_MAX 64

/* ---- the wire ---------------------------------------------------------------------- */

static void
write_packet (int fd, const void *data, gsize size)
{
  g_assert_cmpint (send (fd, data, size, MSG_NOSIGNAL), ==, (gssize) size);
}

static void
write_request (int fd, const char *frame, guint32 timeout_ms)
{
  g_autoptr (GVariant) request = g_variant_ref_sink (g_variant_new (
      "(@ayu)",
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, frame, strlen (frame), sizeof (char)),
      timeout_ms));

  write_packet (fd, g_variant_get_data (request), g_variant_get_size (request));
}

/* What we wrote that the daemon has not read yet. */
static int
unread_bytes (int fd)
{
  int unread = -1;

  g_assert_cmpint (ioctl (fd, SIOCOUTQ, &unread), ==, 0);
  return unread;
}

/* Waits (bounded, turning the main context so the simulator's events keep
 * coming) until @fd is readable or hung up. */
static gboolean
on_readable (int fd, GIOCondition condition, gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_CONTINUE;
}

static void
wait_readable (int fd)
{
  gboolean readable = FALSE;
  guint watch = g_unix_fd_add (fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, &readable);

  stm32_test_wait_until (readable, WAIT_MS);
  g_source_remove (watch);
}

/* The next reply packet as (ayss); fails the test on EOF or a malformed packet. */
static GVariant *
read_reply (int fd)
{
  g_autofree guint8 *buffer = g_malloc (65536);
  g_autoptr (GBytes) bytes = NULL;
  GVariant *reply;
  gssize n;

  wait_readable (fd);
  n = recv (fd, buffer, 65536, 0);
  g_assert_cmpint (n, >, 0);
  bytes = g_bytes_new (buffer, n);
  reply = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ayss)"), bytes, FALSE));
  g_assert_true (g_variant_is_normal_form (reply));
  return reply;
}

/* Reads a reply and asserts it is the frame @want. */
static void
expect_reply (int fd, const char *want)
{
  g_autoptr (GVariant) reply = read_reply (fd);
  g_autoptr (GVariant) frame = NULL;
  const char *name, *message;
  gsize len;
  const char *data;

  g_variant_get (reply, "(@ay&s&s)", &frame, &name, &message);
  g_assert_cmpstr (name, ==, "");
  g_assert_cmpstr (message, ==, "");
  data = g_variant_get_fixed_array (frame, &len, 1);
  g_assert_cmpmem (data, len, want, strlen (want));
}

/* Reads a reply and asserts it is the error @name; returns its message. */
static char *
expect_error (int fd, const char *want_name)
{
  g_autoptr (GVariant) reply = read_reply (fd);
  g_autoptr (GVariant) frame = NULL;
  const char *name;
  char *message;

  g_variant_get (reply, "(@ay&ss)", &frame, &name, &message);
  g_assert_cmpstr (name, ==, want_name);
  g_assert_cmpuint (g_variant_n_children (frame), ==, 0);
  g_assert_cmpstr (message, !=, "");
  return message;
}

static void
expect_eof (int fd)
{
  char byte;

  wait_readable (fd);
  g_assert_cmpint (recv (fd, &byte, 1, 0), ==, 0);
}

/* ---- fixture: a daemon connected to an echo board ----------------------------------- */

typedef struct
{
  Stm32Sim *sim;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;
  char *dir;
  char *config;
  char *script; /* script_fixture_setup's board script */
} Fixture;

/* The link's config file has the test's extra lines (its fixture data). With
 * an echo board unless the setup started its own in @fixture->sim. */
static void
fixture_setup (Fixture *fixture, gconstpointer extra_config)
{
  const char *extra = extra_config;

  if (fixture->sim == NULL)
    fixture->sim = stm32_sim_start ("--reply", "echo", NULL);
  if (fixture->dir == NULL)
    fixture->dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  fixture->config = g_build_filename (fixture->dir, "stm32d.conf", NULL);
  stm32_test_write_file (fixture->config, "[Link default]\nHost=127.0.0.1\nPort=%u\n%s",
                         stm32_sim_get_port (fixture->sim), extra ? extra : "");
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
}

/* A board that answers "hold" and "next", nothing else. */
static void
script_fixture_setup (Fixture *fixture, gconstpointer extra_config)
{
  fixture->dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  fixture->script = g_build_filename (fixture->dir, "script", NULL);
  stm32_test_write_file (fixture->script, "hold\theld\nnext\tnext\n");
  fixture->sim = stm32_sim_start ("--reply", "none", "--script", fixture->script, NULL);
  fixture_setup (fixture, extra_config);
}

/* A board that answers a request marked "~MS " MS ms late. */
static void
slow_fixture_setup (Fixture *fixture, gconstpointer extra_config)
{
  fixture->sim = stm32_sim_start ("--reply", "echo", "--delay-marks", NULL);
  fixture_setup (fixture, extra_config);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer extra_config)
{
  stm32_daemon_stop (fixture->daemon);
  stm32_sim_stop (fixture->sim);
  if (fixture->script != NULL)
    g_assert_cmpint (g_unlink (fixture->script), ==, 0);
  g_assert_cmpint (g_unlink (fixture->config), ==, 0);
  g_assert_cmpint (g_rmdir (fixture->dir), ==, 0);
  g_free (fixture->script);
  g_free (fixture->config);
  g_free (fixture->dir);
}

static void
add_test (const char *path, const char *extra_config, void (*setup) (Fixture *, gconstpointer),
          void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, extra_config, setup, test, fixture_teardown);
}

static char *
frame_data (JsonObject *frame)
{
  return g_strdup (json_object_get_string_member (frame, "data"));
}

/* ---- tests ---------------------------------------------------------------------------- */

/* Requests reach the board as Transact would send them; replies come back in
 * order, one per request, even when several are written at once. */
static void
test_round_trip (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  const char *const requests[] = { "first", "second", "third" };
  int fd;

  fd = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);

  write_request (fd, "ping", 5000);
  {
    g_autoptr (JsonObject) frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
    g_autofree char *data = frame_data (frame);

    g_assert_cmpstr (data, ==, "ping");
  }
  expect_reply (fd, "ping");

  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    write_request (fd, requests[i], 5000);
  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_autoptr (JsonObject) frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
      g_autofree char *data = frame_data (frame);

      g_assert_cmpstr (data, ==, requests[i]);
      expect_reply (fd, requests[i]);
    }
  /* They are the link's transactions: counted like any other. */
  stm32_test_wait_until (stm32_dbus_link1_get_frames_received (fixture->link) == 4, WAIT_MS);
  close (fd);
}

/* A reply slower than its request's timeout answers no later request of the
 * channel: the pairing rules are the link's, whatever path a request took. */
static void
test_slow_reply (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *message = NULL;
  int fd = stm32_daemon_link_open_channel (fixture->link, &error);

  g_assert_no_error (error);
  write_request (fd, "~500 slow-1", 200);
  message = expect_error (fd, "org.stm32d.Error.Timeout");
  write_request (fd, "fast-0", 2000);
  expect_reply (fd, "fast-0");
  stm32_test_wait_until (stm32_dbus_link1_get_late_replies (fixture->link) == 1, WAIT_MS);
  close (fd);
}

/* Every failure is the D-Bus error Transact gives, and the channel goes on. */
static void
test_errors (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *big = g_strnfill (200, 'x');
  const guint8 garbage[] = { 'x', 'y', 'z' };
  int fd, stream;

  fd = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);

  /* The board does not answer. */
  stm32_sim_command (fixture->sim, "blackhole on");
  write_request (fd, "silence", 200);
  g_free (expect_error (fd, "org.stm32d.Error.Timeout"));
  stm32_sim_command (fixture->sim, "blackhole off");

  /* Not a (ayu). */
  write_packet (fd, garbage, sizeof garbage);
  g_free (expect_error (fd, "org.stm32d.Error.InvalidArgs"));
  /* A timeout of 0, as Transact refuses it. */
  write_request (fd, "now", 0);
  g_free (expect_error (fd, "org.stm32d.Error.InvalidArgs"));

  /* Larger than MaxFrame: too big a packet to read, and a frame the link refuses. */
  write_request (fd, big, 5000);
  g_free (expect_error (fd, "org.stm32d.Error.FrameTooLarge"));
  big[101] = '\0';
  write_request (fd, big, 5000);
  g_free (expect_error (fd, "org.stm32d.Error.FrameTooLarge"));

  /* While AcquireStream holds the link. */
  {
    g_autoptr (GAsyncResult) result = NULL;
    g_autoptr (GVariant) handle = NULL;
    g_autoptr (GUnixFDList) fds = NULL;

    stm32_dbus_link1_call_acquire_stream (fixture->link, NULL, NULL, stm32_test_store_result,
                                          &result);
    stm32_test_wait_until (result != NULL, WAIT_MS);
    g_assert_true (
        stm32_dbus_link1_call_acquire_stream_finish (fixture->link, &handle, &fds, result, &error));
    stream = g_unix_fd_list_get (fds, g_variant_get_handle (handle), &error);
    g_assert_no_error (error);
  }
  write_request (fd, "held", 5000);
  g_free (expect_error (fd, "org.stm32d.Error.Busy"));
  close (stream);

  /* The link down, then up again: the channel outlives the connection. */
  stm32_daemon_link_disconnect (fixture->link);
  write_request (fd, "down", 5000);
  g_free (expect_error (fd, "org.stm32d.Error.NotConnected"));
  g_assert_true (stm32_daemon_link_connect (fixture->link, &error));
  g_assert_no_error (error);
  write_request (fd, "up", 5000);
  expect_reply (fd, "up");

  close (fd);
}

/* A client that closes its end gives up the transaction it has queued: the
 * board never gets it, the next caller does not wait behind it, and the
 * daemon keeps no fd for it. */
static void
test_client_closes (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) held = NULL;
  g_autoptr (GVariant) held_reply = NULL;
  g_autoptr (JsonObject) frame = NULL;
  g_autofree char *reply = NULL;
  guint pid, before;
  int fd;

  pid = stm32_daemon_get_pid (fixture->daemon);
  before = stm32_test_count_process_fds (pid);
  fd = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);
  /* Our end; the one sent to us goes once the reply is out. */
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before + 1, WAIT_MS);

  /* "hold" goes out and waits, the board not reading, for as long as the
   * test needs; "abandoned" queues behind it. */
  stm32_sim_command (fixture->sim, "blackhole on");
  stm32_dbus_link1_call_transact (fixture->link, stm32_daemon_bytes ("hold"), 30000, NULL,
                                  stm32_test_store_result, &held);
  stm32_test_wait_until (stm32_dbus_link1_get_frames_sent (fixture->link) == 1, WAIT_MS);
  write_request (fd, "abandoned", 60000);
  stm32_test_poll_until (unread_bytes (fd) == 0, WAIT_MS);
  close (fd);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before, WAIT_MS);
  stm32_sim_command (fixture->sim, "blackhole off");
  stm32_test_wait_until (held != NULL, WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_transact_finish (fixture->link, &held_reply, held, &error));
  g_assert_no_error (error);

  /* Were "abandoned" still queued, the board would get it next and this
   * would time out behind its 60 s. */
  reply = stm32_daemon_link_transact (fixture->link, "next", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "next");
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "hold");
  g_clear_pointer (&frame, json_object_unref);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "next");
}

/* An empty packet, like shutdown(), ends the channel. */
static void
test_empty_packet_ends (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  int fd;

  fd = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);
  write_packet (fd, "", 0);
  expect_eof (fd);
  close (fd);

  fd = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);
  g_assert_cmpint (shutdown (fd, SHUT_WR), ==, 0);
  expect_eof (fd);
  close (fd);
}

/* A client that writes many requests and reads no reply is not read further
 * once its replies fill its buffer; nothing is lost and order holds. */
static void
test_slow_client (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  guint written = 0;
  int fd;

  fd = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);
  g_assert_true (g_unix_set_fd_nonblocking (fd, TRUE, NULL));

  /* Write until the daemon stops taking requests: our buffer stays full for
   * half a second. Were it to drop replies instead, it would go on reading. */
  for (guint i = 0; i < 100000; i++)
    {
      g_autofree char *frame = g_strdup_printf ("%u", i);
      g_autoptr (GVariant) request = g_variant_ref_sink (g_variant_new (
          "(@ayu)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, frame, strlen (frame), 1),
          30000));
      struct pollfd pfd = { .fd = fd, .events = POLLOUT };
      gssize n =
          send (fd, g_variant_get_data (request), g_variant_get_size (request), MSG_NOSIGNAL);

      if (n < 0)
        {
          g_assert_cmpint (errno, ==, EAGAIN);
          if (poll (&pfd, 1, 500) == 0)
            break;
          i--;
          continue;
        }
      written++;
    }
  g_assert_cmpuint (written, >, 10);
  g_assert_cmpuint (written, <, 100000);
  g_assert_true (g_unix_set_fd_nonblocking (fd, FALSE, NULL));
  for (guint i = 0; i < written; i++)
    {
      g_autofree char *want = g_strdup_printf ("%u", i);

      expect_reply (fd, want);
    }
  close (fd);
}

/* Removing the link ends its channels: the client reads EOF. */
static void
test_link_removed (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  Stm32DbusManager1 *manager;
  int fd;

  fd = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);
  write_request (fd, "before", 5000);
  expect_reply (fd, "before");

  stm32_test_write_file (fixture->config, "[Link other]\nHost=127.0.0.1\nPort=%u\n",
                         stm32_sim_get_port (fixture->sim));
  manager = stm32_daemon_get_manager (fixture->daemon);
  stm32_dbus_manager1_call_reload (manager, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (stm32_dbus_manager1_call_reload_finish (manager, result, &error));
  expect_eof (fd);
  close (fd);
}

/* At most CHANNELS_MAX per link; a closed one makes room; no fd stays behind. */
static void
test_limit (Fixture *fixture, gconstpointer extra_config)
{
  g_autoptr (GError) error = NULL;
  int fds[CHANNELS_MAX];
  guint pid, before;

  pid = stm32_daemon_get_pid (fixture->daemon);
  before = stm32_test_count_process_fds (pid);
  for (guint i = 0; i < CHANNELS_MAX; i++)
    {
      fds[i] = stm32_daemon_link_open_channel (fixture->link, &error);
      g_assert_no_error (error);
    }
  g_assert_cmpint (stm32_daemon_link_open_channel (fixture->link, &error), ==, -1);
  stm32_daemon_assert_error (error, "org.stm32d.Error.Busy", STM32_ERROR_BUSY);
  g_clear_error (&error);

  close (fds[0]);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before + CHANNELS_MAX - 1, WAIT_MS);
  fds[0] = stm32_daemon_link_open_channel (fixture->link, &error);
  g_assert_no_error (error);
  write_request (fds[0], "room", 5000);
  expect_reply (fds[0], "room");
  for (guint i = 0; i < CHANNELS_MAX; i++)
    close (fds[i]);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before, WAIT_MS);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  add_test ("/channel/round-trip", NULL, fixture_setup, test_round_trip);
  add_test ("/channel/errors", "MaxFrame=100\n", fixture_setup, test_errors);
  add_test ("/channel/slow-reply", NULL, slow_fixture_setup, test_slow_reply);
  add_test ("/channel/client-closes", NULL, script_fixture_setup, test_client_closes);
  add_test ("/channel/empty-packet-ends", NULL, fixture_setup, test_empty_packet_ends);
  add_test ("/channel/slow-client", "SendQueueMax=64KiB\n", fixture_setup, test_slow_client);
  add_test ("/channel/link-removed", NULL, fixture_setup, test_link_removed);
  add_test ("/channel/limit", NULL, fixture_setup, test_limit);
  return stm32_daemon_test_run ();
}
