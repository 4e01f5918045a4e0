/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Link1.AcquireStream against the real stm32d and the board simulator: bytes
 * both ways through the fd, byte-exact and in bulk; Send, Transact and a second
 * AcquireStream refused while it is held; and every way a hold ends — the
 * holder closing its fd or leaving the bus, the board dropping the link, a
 * holder that does not read — giving the link back without leaking an fd.
 */
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-error.h"
#include "stm32-names.h"
#include "test-util.h"

#define WAIT_MS 10000
#define BULK_WAIT_MS 60000

/* ---- D-Bus calls ------------------------------------------------------------------ */

/* Returns the stream's fd (ours to close), or -1 with @error. */
static int
call_acquire_stream (Stm32DbusLink1 *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  g_autoptr (GError) local_error = NULL;
  int fd;

  stm32_dbus_link1_call_acquire_stream (link, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  if (!stm32_dbus_link1_call_acquire_stream_finish (link, &handle, &fds, result, error))
    return -1;
  g_assert_nonnull (fds);
  g_assert_cmpint (g_unix_fd_list_get_length (fds), ==, 1);
  fd = g_unix_fd_list_get (fds, g_variant_get_handle (handle), &local_error);
  g_assert_no_error (local_error);
  return fd;
}

static gboolean
send_works (Stm32DbusLink1 *link)
{
  g_autoptr (GError) error = NULL;

  if (stm32_daemon_link_send (link, "after", &error))
    return TRUE;
  stm32_daemon_assert_error (error, "org.stm32d.Error.Busy", STM32_ERROR_BUSY);
  return FALSE;
}

/* The daemon drops its hold as soon as it sees the holder go; nothing on the
 * bus announces it, so ask until Send is no longer Busy. */
static void
wait_until_released (Stm32DbusLink1 *link)
{
  gboolean sent = FALSE;

  /* Once sent, never again: the macro tests its condition once more at the end. */
  stm32_test_poll_until (sent || (sent = send_works (link)), WAIT_MS);
}

/* ---- the holder's end --------------------------------------------------------------- */

typedef struct
{
  GInputStream *in; /* owns the fd */
  GOutputStream *out;
  GCancellable *cancellable;
  GByteArray *received;
  GError *read_error;
  gboolean reading;
  gboolean eof;
  guint8 buffer[65536];
} Holder;

static void holder_read (Holder *holder);

static void
on_holder_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Holder *holder = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &holder->read_error);

  holder->reading = FALSE;
  if (n > 0)
    {
      g_byte_array_append (holder->received, holder->buffer, (guint) n);
      holder_read (holder);
    }
  else if (n == 0)
    holder->eof = TRUE;
}

static void
holder_read (Holder *holder)
{
  holder->reading = TRUE;
  g_input_stream_read_async (holder->in, holder->buffer, sizeof holder->buffer, G_PRIORITY_DEFAULT,
                             holder->cancellable, on_holder_read, holder);
}

/* Takes @fd; reads it into @received from now on unless @paused. */
static Holder *
holder_new (int fd, gboolean paused)
{
  Holder *holder = g_new0 (Holder, 1);

  g_assert_cmpint (fd, >=, 0);
  /* The daemon hands out a blocking socket; the test's async streams must not block. */
  g_assert_true (g_unix_set_fd_nonblocking (fd, TRUE, NULL));
  holder->in = g_unix_input_stream_new (fd, TRUE);
  holder->out = g_unix_output_stream_new (fd, FALSE);
  holder->cancellable = g_cancellable_new ();
  holder->received = g_byte_array_new ();
  if (!paused)
    holder_read (holder);
  return holder;
}

static gboolean
holder_write (Holder *holder, const void *data, gsize len, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  g_output_stream_write_all_async (holder->out, data, len, G_PRIORITY_DEFAULT, NULL,
                                   stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, BULK_WAIT_MS);
  return g_output_stream_write_all_finish (holder->out, result, NULL, error);
}

/* Waits until @text arrived, and nothing else. */
static void
holder_expect (Holder *holder, const char *text)
{
  gsize len = strlen (text);

  stm32_test_wait_until (holder->received->len >= len || holder->eof, WAIT_MS);
  g_assert_cmpuint (holder->received->len, ==, len);
  g_assert_cmpmem (holder->received->data, len, text, len);
  g_byte_array_set_size (holder->received, 0);
}

static void
holder_echo (Holder *holder, const char *text)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (holder_write (holder, text, strlen (text), &error));
  g_assert_no_error (error);
  holder_expect (holder, text);
}

/* Closes the fd (the streams close it once the read in flight is back). */
static void
holder_free (Holder *holder)
{
  g_cancellable_cancel (holder->cancellable);
  stm32_test_wait_until (!holder->reading, WAIT_MS);
  g_object_unref (holder->out);
  g_object_unref (holder->in);
  g_object_unref (holder->cancellable);
  g_byte_array_unref (holder->received);
  g_clear_error (&holder->read_error);
  g_free (holder);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Holder, holder_free)

/* ---- fixture: a daemon connected to an echo board ----------------------------------- */

typedef struct
{
  Stm32Sim *sim; /* started with the test's options (its fixture data) */
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link;
  guint received; /* Received signals seen */
  char *dir;      /* config_fixture_setup's, holding its config file */
  char *config;
} Fixture;

static void
on_received (Stm32DbusLink1 *link, GVariant *frame, Fixture *fixture)
{
  fixture->received++;
}

static void
fixture_connected (Fixture *fixture)
{
  fixture->link = stm32_daemon_get_link (fixture->daemon, "default");
  g_signal_connect (fixture->link, "received", G_CALLBACK (on_received), fixture);
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
}

/* The link from --host and --port. */
static void
fixture_setup (Fixture *fixture, gconstpointer options)
{
  g_autofree char *port = NULL;

  fixture->sim = stm32_sim_startv (options);
  port = g_strdup_printf ("%u", stm32_sim_get_port (fixture->sim));
  fixture->daemon = stm32_daemon_start ("--host", "127.0.0.1", "--port", port, NULL);
  fixture_connected (fixture);
}

static char *
write_config (const char *dir, guint16 port)
{
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autofree char *text = g_strdup_printf ("[Link default]\nHost=127.0.0.1\nPort=%u\n"
                                           "SendQueueMax=64KiB\n",
                                           port);
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&path);
}

/* The link from a config file, for a send queue of 64 KiB. */
static void
config_fixture_setup (Fixture *fixture, gconstpointer options)
{
  fixture->sim = stm32_sim_startv (options);
  fixture->dir = g_dir_make_tmp ("stm32-stream-XXXXXX", NULL);
  fixture->config = write_config (fixture->dir, stm32_sim_get_port (fixture->sim));
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  fixture_connected (fixture);
}

/* A test that stops the daemon itself takes it out of the fixture. */
static void
fixture_teardown (Fixture *fixture, gconstpointer options)
{
  if (fixture->daemon != NULL)
    {
      g_signal_handlers_disconnect_by_data (fixture->link, fixture);
      stm32_daemon_stop (fixture->daemon);
    }
  stm32_sim_stop (fixture->sim);
  if (fixture->config != NULL)
    {
      g_assert_cmpint (g_unlink (fixture->config), ==, 0);
      g_assert_cmpint (g_rmdir (fixture->dir), ==, 0);
      g_free (fixture->config);
      g_free (fixture->dir);
    }
}

static void
add_test (const char *path, const char *const *options, void (*setup) (Fixture *, gconstpointer),
          void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, options, setup, test, fixture_teardown);
}

/* ---- tests ---------------------------------------------------------------------------- */

/* Bytes go to the board as written and come back as the board sent them. */
static void
test_bytes_both_ways (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Holder) holder = NULL;
  g_autoptr (JsonObject) frame = NULL;
  g_autoptr (GError) error = NULL;

  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  g_assert_true (holder_write (holder, "abc\n", 4, &error));
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "abc");
  holder_expect (holder, "abc\n");
  /* No framing is added or removed: a line in two pieces is one frame to the board. */
  g_assert_true (holder_write (holder, "de", 2, &error));
  g_assert_true (holder_write (holder, "f\n", 2, &error));
  g_clear_pointer (&frame, json_object_unref);
  frame = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
  g_assert_cmpstr (json_object_get_string_member (frame, "data"), ==, "def");
  holder_expect (holder, "def\n");
}

/* 1 MiB of lines of varied text, not a repeating block, so loss or reordering shows. */
static GByteArray *
bulk_data (gsize size, gsize line_len)
{
  GByteArray *data = g_byte_array_sized_new ((guint) size);
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);

  for (gsize line = 0; data->len < size; line++)
    {
      g_autofree char *head = g_strdup_printf ("%06" G_GSIZE_FORMAT ":", line);

      g_byte_array_append (data, (const guint8 *) head, (guint) strlen (head));
      while (data->len % line_len != line_len - 1)
        {
          guint8 c = (guint8) g_rand_int_range (rand, 'a', 'z' + 1);

          g_byte_array_append (data, &c, 1);
        }
      g_byte_array_append (data, (const guint8 *) "\n", 1);
    }
  return data;
}

/* 1 MiB through a 64 KiB send queue: only back-pressure (one chunk in the
 * link at a time) gets it all to the board without QueueFull or loss. */
static void
test_bulk (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GByteArray) data = bulk_data (1024 * 1024, 1024);
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;
  gint64 start, elapsed;

  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  start = g_get_monotonic_time ();
  g_assert_true (holder_write (holder, data->data, data->len, &error));
  g_assert_no_error (error);
  stm32_test_wait_until (holder->received->len >= data->len || holder->eof, BULK_WAIT_MS);
  elapsed = g_get_monotonic_time () - start;
  g_assert_cmpmem (holder->received->data, holder->received->len, data->data, data->len);
  g_test_message ("1 MiB echoed through the stream in %.1f ms (%.1f MiB/s each way)",
                  elapsed / 1000.0, 1e6 / (double) elapsed);
  g_assert_cmpuint (stm32_dbus_link1_get_frames_sent (fixture->link), ==, 0);
}

/* Writes @len bytes of @data in chunks until one does not complete within
 * @stall_ms: everything between the holder and a board that stopped reading is
 * full. Returns how much was written; fails the test if a write fails. */
static gsize
holder_write_until_stalled (Holder *holder, GByteArray *data, gsize chunk, guint stall_ms,
                            GAsyncResult **pending)
{
  gsize written = 0;

  while (written < data->len)
    {
      gsize len = MIN (chunk, data->len - written);
      gint64 deadline = g_get_monotonic_time () + (gint64) stall_ms * 1000;
      g_autoptr (GError) error = NULL;

      g_output_stream_write_all_async (holder->out, data->data + written, len, G_PRIORITY_DEFAULT,
                                       NULL, stm32_test_store_result, pending);
      while (*pending == NULL && g_get_monotonic_time () < deadline)
        stm32_test_iterate (deadline);
      if (*pending == NULL)
        return written;
      g_assert_true (g_output_stream_write_all_finish (holder->out, *pending, NULL, &error));
      g_assert_no_error (error);
      g_clear_object (pending);
      written += len;
    }
  g_error ("wrote %" G_GSIZE_FORMAT " bytes to a silent board and never had to wait", written);
}

/* The board stops reading. The holder's writes must come to a halt in its own
 * socket, not overflow the 64 KiB send queue and end the stream; once the
 * board reads again, every line arrives, in order. (No echo: a loopback board
 * would answer faster than any holder reads.) */
static void
test_back_pressure (Fixture *fixture, gconstpointer options)
{
  const gsize line = 16 * 1024;
  g_autoptr (GByteArray) data = bulk_data (64 * 1024 * 1024, line);
  g_autoptr (GAsyncResult) pending = NULL;
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;
  gsize written;

  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  stm32_sim_command (fixture->sim, "blackhole on");
  written = holder_write_until_stalled (holder, data, 4 * line, 500, &pending);
  g_test_message ("%" G_GSIZE_FORMAT " bytes written before the stream stalled", written);

  stm32_sim_command (fixture->sim, "blackhole off");
  stm32_test_wait_until (pending != NULL, BULK_WAIT_MS);
  g_assert_true (g_output_stream_write_all_finish (holder->out, pending, NULL, &error));
  g_assert_no_error (error);
  written += 4 * line;
  for (gsize n = 1; n <= written / line; n++)
    {
      g_autoptr (JsonObject) frame = stm32_sim_wait_event (fixture->sim, "frame", BULK_WAIT_MS);

      g_assert_cmpint (json_object_get_int_member (frame, "n"), ==, n);
      g_assert_cmpint (json_object_get_int_member (frame, "bytes"), ==, line - 1);
    }
  g_assert_false (holder->eof);
}

/* One holder at a time; the link refuses frames while held and emits none. */
static void
test_busy (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GError) error = NULL;

  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);

  g_assert_false (stm32_daemon_link_send (fixture->link, "x", &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Busy", STM32_ERROR_BUSY);
  g_assert_nonnull (strstr (error->message, "AcquireStream"));
  g_clear_error (&error);
  g_assert_null (stm32_daemon_link_transact (fixture->link, "x", 2000, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Busy", STM32_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_cmpint (call_acquire_stream (fixture->link, &error), ==, -1);
  stm32_daemon_assert_error (error, "org.stm32d.Error.Busy", STM32_ERROR_BUSY);
  g_clear_error (&error);

  /* The board's line is the holder's, not a Received: a reply to any call
   * is dispatched after every signal the daemon sent before it. */
  holder_echo (holder, "line\n");
  stm32_dbus_link1_call_get_history (fixture->link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (
      stm32_dbus_link1_call_get_history_finish (fixture->link, &history, result, &error));
  g_assert_cmpuint (fixture->received, ==, 0);
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "frame"), ==, 1);
}

/* A transaction waiting for its reply when the stream is taken fails with
 * Busy; its reply, when it comes, is the holder's. */
static void
test_takes_transactions (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;

  stm32_sim_command (fixture->sim, "blackhole on");
  stm32_dbus_link1_call_transact (fixture->link, stm32_daemon_bytes ("q"), 30000, NULL,
                                  stm32_test_store_result, &result);
  stm32_test_wait_until (stm32_dbus_link1_get_frames_sent (fixture->link) == 1, WAIT_MS);
  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_false (stm32_dbus_link1_call_transact_finish (fixture->link, &reply, result, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Busy", STM32_ERROR_BUSY);
  stm32_sim_command (fixture->sim, "blackhole off");
  holder_expect (holder, "q\n");
  g_assert_cmpuint (fixture->received, ==, 0);
}

/* Closing the fd gives the link back to frames, and to the next holder. */
static void
test_holder_closes (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;

  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (holder, "abc\n");
  g_clear_pointer (&holder, holder_free);

  wait_until_released (fixture->link);
  stm32_test_wait_until (fixture->received == 1, WAIT_MS);
  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (holder, "again\n");
}

/* The board resets the connection: the fd reads EOF and stays dead; the next
 * connection starts free, and a new AcquireStream gets a new fd. */
static void
test_link_drops (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Holder) old = NULL;
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;

  old = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (old, "abc\n");
  stm32_sim_command (fixture->sim, "rst-all");
  stm32_test_wait_until (old->eof || old->read_error != NULL, WAIT_MS);
  g_assert_no_error (old->read_error);
  g_assert_cmpuint (old->received->len, ==, 0);

  stm32_test_wait_until (stm32_dbus_link1_get_connects (fixture->link) == 2, WAIT_MS);
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  g_assert_false (holder_write (old, "late\n", 5, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE);
  g_clear_error (&error);
  /* Not held after the reconnect. */
  g_assert_true (stm32_daemon_link_send (fixture->link, "framed", &error));
  g_assert_no_error (error);
  stm32_test_wait_until (fixture->received == 1, WAIT_MS);

  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (holder, "def\n");
  g_assert_cmpuint (old->received->len, ==, 0);
}

/* The board sends a burst and closes while the holder is not reading: the
 * burst waits in the daemon, and the holder still gets all of it, then EOF. */
static void
test_board_closes (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GByteArray) data = bulk_data (500 * 1024, 1024);
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;

  holder = holder_new (call_acquire_stream (fixture->link, &error), TRUE);
  g_assert_no_error (error);
  g_assert_true (holder_write (holder, data->data, data->len, &error));
  g_assert_no_error (error);
  stm32_test_wait_until (stm32_dbus_link1_get_disconnects (fixture->link) == 1, WAIT_MS);

  holder_read (holder);
  stm32_test_wait_until (holder->eof || holder->read_error != NULL, WAIT_MS);
  g_assert_no_error (holder->read_error);
  g_assert_cmpmem (holder->received->data, holder->received->len, data->data, data->len);
}

static GDBusConnection *
open_second_connection (void)
{
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  GDBusConnection *connection;

  g_assert_nonnull (address);
  g_dbus_connection_new_for_address (address,
                                     G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                         G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                     NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  connection = g_dbus_connection_new_for_address_finish (result, &error);
  g_assert_no_error (error);
  return connection;
}

static Stm32DbusLink1 *
link_proxy_on (GDBusConnection *connection)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  Stm32DbusLink1 *proxy;

  stm32_dbus_link1_proxy_new (connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, STM32_DBUS_NAME,
                              STM32_DBUS_LINK_PATH_PREFIX "default", NULL, stm32_test_store_result,
                              &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  proxy = stm32_dbus_link1_proxy_new_finish (result, &error);
  g_assert_no_error (error);
  return proxy;
}

/* The holder's connection goes away while its fd stays open: only the bus
 * can tell the daemon, and the link is released all the same. */
static void
test_holder_leaves_bus (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GDBusConnection) other = NULL;
  g_autoptr (Stm32DbusLink1) other_link = NULL;
  g_autoptr (GAsyncResult) closed = NULL;
  g_autoptr (Holder) holder = NULL;
  g_autoptr (Holder) next = NULL;
  g_autoptr (GError) error = NULL;

  other = open_second_connection ();
  other_link = link_proxy_on (other);
  holder = holder_new (call_acquire_stream (other_link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (holder, "mine\n");
  g_assert_false (stm32_daemon_link_send (fixture->link, "x", &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.Busy", STM32_ERROR_BUSY);
  g_clear_error (&error);

  g_dbus_connection_close (other, NULL, stm32_test_store_result, &closed);
  stm32_test_wait_until (closed != NULL, WAIT_MS);
  g_assert_true (g_dbus_connection_close_finish (other, closed, NULL));
  wait_until_released (fixture->link);
  stm32_test_wait_until (holder->eof, WAIT_MS);

  next = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (next, "ours\n");
}

static void
test_not_connected (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GError) error = NULL;

  stm32_daemon_link_disconnect (fixture->link);
  g_assert_cmpint (call_acquire_stream (fixture->link, &error), ==, -1);
  stm32_daemon_assert_error (error, "org.stm32d.Error.NotConnected", STM32_ERROR_NOT_CONNECTED);
}

/* The holder writes and never reads: the daemon neither blocks nor buffers
 * without bound, it ends the stream. What the holder does get is exact. */
static void
test_slow_holder (Fixture *fixture, gconstpointer options)
{
  g_autoptr (GByteArray) data = bulk_data (8 * 1024 * 1024, 1024);
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;

  holder = holder_new (call_acquire_stream (fixture->link, &error), TRUE);
  g_assert_no_error (error);
  g_assert_false (holder_write (holder, data->data, data->len, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE);
  wait_until_released (fixture->link);

  /* What was written to it before the end, then EOF, or a reset if the
   * daemon closed with the holder's unread bytes still in its socket. */
  holder_read (holder);
  stm32_test_wait_until (holder->eof || holder->read_error != NULL, WAIT_MS);
  if (holder->read_error != NULL)
    g_assert_error (holder->read_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_cmpuint (holder->received->len, >, 0);
  g_assert_cmpuint (holder->received->len, <, data->len);
  g_assert_cmpmem (holder->received->data, holder->received->len, data->data,
                   holder->received->len);
}

/* The daemon stops while a stream is held: the holder sees EOF, and the
 * daemon exits cleanly (status 0: no sanitizer findings either). */
static void
test_sigterm_while_held (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;

  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (holder, "abc\n");
  g_signal_handlers_disconnect_by_data (fixture->link, fixture);
  stm32_daemon_stop (g_steal_pointer (&fixture->daemon));
  stm32_test_wait_until (holder->eof || holder->read_error != NULL, WAIT_MS);
  g_assert_no_error (holder->read_error);
}

/* Every way a stream ends leaves the daemon with the fds it had before. */
static void
test_no_fd_leak (Fixture *fixture, gconstpointer options)
{
  g_autoptr (Holder) holder = NULL;
  g_autoptr (GError) error = NULL;
  guint pid, before;

  pid = stm32_daemon_get_pid (fixture->daemon);
  before = stm32_test_count_process_fds (pid);

  /* The holder closes. */
  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (holder, "one\n");
  g_assert_cmpuint (stm32_test_count_process_fds (pid), >, before);
  g_assert_cmpint (call_acquire_stream (fixture->link, &error), ==, -1);
  g_clear_error (&error);
  g_clear_pointer (&holder, holder_free);
  wait_until_released (fixture->link);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before, WAIT_MS);

  /* The board drops the link; the holder keeps its dead fd a while. */
  holder = holder_new (call_acquire_stream (fixture->link, &error), FALSE);
  g_assert_no_error (error);
  holder_echo (holder, "two\n");
  stm32_sim_command (fixture->sim, "rst-all");
  stm32_test_wait_until (holder->eof, WAIT_MS);
  stm32_test_wait_until (stm32_dbus_link1_get_connects (fixture->link) == 2, WAIT_MS);
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before, WAIT_MS);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  /* A write to a stream the daemon closed must fail with EPIPE, not kill the test. */
  signal (SIGPIPE, SIG_IGN);
  add_test ("/stream/bytes-both-ways", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_bytes_both_ways);
  add_test ("/stream/bulk", STM32_SIM_OPTIONS ("--reply", "echo", "--quiet"), config_fixture_setup,
            test_bulk);
  add_test ("/stream/back-pressure", STM32_SIM_OPTIONS ("--reply", "none"), config_fixture_setup,
            test_back_pressure);
  add_test ("/stream/busy", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup, test_busy);
  add_test ("/stream/takes-transactions", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_takes_transactions);
  add_test ("/stream/holder-closes", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_holder_closes);
  add_test ("/stream/link-drops", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_link_drops);
  add_test ("/stream/board-closes",
            STM32_SIM_OPTIONS ("--reply", "echo", "--quiet", "--close-after", "500"), fixture_setup,
            test_board_closes);
  add_test ("/stream/holder-leaves-bus", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_holder_leaves_bus);
  add_test ("/stream/not-connected", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_not_connected);
  add_test ("/stream/slow-holder", STM32_SIM_OPTIONS ("--reply", "echo", "--quiet"), fixture_setup,
            test_slow_holder);
  add_test ("/stream/sigterm-while-held", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_sigterm_while_held);
  add_test ("/stream/no-fd-leak", STM32_SIM_OPTIONS ("--reply", "echo"), fixture_setup,
            test_no_fd_leak);
  return stm32_daemon_test_run ();
}
