/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Link1.OpenSendChannel against the real stm32d and the board simulator,
 * through libstm32client and on the wire: a stream of frames keeps every
 * promise Send makes. Each frame is answered, in order, once the board's TCP
 * stack acknowledged it, or with Send's error; the send queue's bound holds
 * by pushing back on the client, not by failing or by stm32d buffering; a
 * board that resets mid-stream gets nothing twice and no frame goes
 * unanswered; a client that leaves mid-stream costs the daemon nothing; and
 * `stm32ctl send` streams standard input through it.
 */
#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "stm32-client.h"
#include "stm32-error.h"
#include "test-util.h"

#define WAIT_MS 30000

/* ---- fixture: stm32d, its link "default" to the board, and a client ---------------- */

typedef struct
{
  const char *sim_options[8];
  const char *config;
} Setup;

typedef struct
{
  Stm32Sim *sim;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *dlink;
  Stm32Client *client;
  Stm32ClientLink *link;
  char *dir;
  char *config;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer data)
{
  const Setup *setup = data;
  g_autoptr (GError) error = NULL;

  fixture->sim = stm32_sim_startv (setup->sim_options);
  fixture->dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  fixture->config = g_build_filename (fixture->dir, "stm32d.conf", NULL);
  stm32_test_write_file (fixture->config, "[Link default]\nHost=127.0.0.1\nPort=%u\n%s",
                         stm32_sim_get_port (fixture->sim), setup->config ? setup->config : "");
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  fixture->dlink = stm32_daemon_get_link (fixture->daemon, "default");
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->dlink, "connected"), WAIT_MS);
  fixture->client = stm32_client_new_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  stm32_test_wait_until (stm32_client_get_link (fixture->client, "default") != NULL, WAIT_MS);
  fixture->link = stm32_client_get_link (fixture->client, "default");
}

static void
fixture_teardown (Fixture *fixture, gconstpointer data)
{
  fixture->link = NULL;
  g_clear_object (&fixture->client);
  stm32_daemon_stop (fixture->daemon);
  stm32_sim_stop (fixture->sim);
  g_assert_cmpint (g_unlink (fixture->config), ==, 0);
  g_assert_cmpint (g_rmdir (fixture->dir), ==, 0);
  g_free (fixture->config);
  g_free (fixture->dir);
}

static Stm32ClientSendChannel *
open_channel (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  Stm32ClientSendChannel *channel =
      stm32_client_link_open_send_channel_sync (fixture->link, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (channel);
  return channel;
}

/* The fd of an OpenSendChannel, for tests that speak the wire themselves. */
static int
open_channel_fd (Fixture *fixture)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  g_autoptr (GError) error = NULL;
  int fd;

  stm32_dbus_link1_call_open_send_channel (fixture->dlink, NULL, NULL, stm32_test_store_result,
                                           &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_assert_true (
      stm32_dbus_link1_call_open_send_channel_finish (fixture->dlink, &handle, &fds, result, &error));
  g_assert_no_error (error);
  fd = g_unix_fd_list_get (fds, g_variant_get_handle (handle), &error);
  g_assert_no_error (error);
  return fd;
}

/* ---- frames and their answers -------------------------------------------------------- */

/* Frame @i: its number first, so the board's account shows order and gaps. */
static GBytes *
numbered_frame (guint i, gsize size)
{
  g_autofree char *head = g_strdup_printf ("%06u:", i);
  char *data = g_malloc (size);

  g_assert_cmpuint (size, >=, strlen (head));
  memset (data, 'x', size);
  memcpy (data, head, strlen (head));
  return g_bytes_new_take (data, size);
}

/* Each send's outcome, and the order the answers came in. */
typedef struct
{
  GArray *order;    /* guint: frame numbers as answered */
  GPtrArray *errors; /* GError * per frame, NULL for acknowledged */
  guint answered;
} Outcomes;

typedef struct
{
  Outcomes *outcomes;
  guint index;
} Ticket;

static void
error_free (GError *error)
{
  if (error != NULL)
    g_error_free (error);
}

static GError *
outcome (Outcomes *outcomes, guint i)
{
  return g_ptr_array_index (outcomes->errors, i);
}

static Outcomes *
outcomes_new (guint n)
{
  Outcomes *outcomes = g_new0 (Outcomes, 1);

  outcomes->order = g_array_new (FALSE, FALSE, sizeof (guint));
  outcomes->errors = g_ptr_array_new_full (n, (GDestroyNotify) error_free);
  g_ptr_array_set_size (outcomes->errors, n);
  return outcomes;
}

static void
outcomes_free (Outcomes *outcomes)
{
  g_array_unref (outcomes->order);
  g_ptr_array_unref (outcomes->errors);
  g_free (outcomes);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Outcomes, outcomes_free)

static void
on_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Ticket *ticket = user_data;
  GError *error = NULL;

  if (!stm32_client_send_channel_send_finish (STM32_CLIENT_SEND_CHANNEL (source), result, &error))
    g_assert_nonnull (error);
  g_array_append_val (ticket->outcomes->order, ticket->index);
  g_ptr_array_index (ticket->outcomes->errors, ticket->index) = error;
  ticket->outcomes->answered++;
  g_free (ticket);
}

static void
send_numbered (Stm32ClientSendChannel *channel, Outcomes *outcomes, guint first, guint n,
               gsize size)
{
  for (guint i = first; i < first + n; i++)
    {
      g_autoptr (GBytes) frame = numbered_frame (i, size);
      Ticket *ticket = g_new0 (Ticket, 1);

      ticket->outcomes = outcomes;
      ticket->index = i;
      stm32_client_send_channel_send (channel, frame, NULL, on_sent, ticket);
    }
}

/* The board saw exactly frames 0 … @n - 1, in order, each once. */
static void
assert_board_saw (Stm32Sim *sim, guint n)
{
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (JsonObject) event = stm32_sim_wait_event (sim, "frame", WAIT_MS);
      g_autofree char *head = g_strdup_printf ("%06u:", i);

      g_assert_true (g_str_has_prefix (json_object_get_string_member (event, "data"), head));
    }
  g_assert_cmpuint (stm32_sim_count_events (sim, "frame"), ==, n);
}

/* How many frames the board took, over every connection it accepted, once
 * it holds none (call it once the link stays down). Not only the last one
 * released: on a loaded machine the link's first connect may outlast
 * ConnectTimeout, and stm32d resets the connection it gave up on, whose
 * empty release comes first. Takes every "released" event. */
static gint64
board_frames (Stm32Sim *sim)
{
  gint64 frames = 0;
  guint taken = 0;

  for (;;)
    {
      /* The status is written after every event before it, so each release it
       * counts is already read. */
      g_autoptr (JsonObject) status = stm32_sim_status (sim);
      guint released = (guint) json_object_get_int_member (status, "released");

      for (; taken < released; taken++)
        {
          g_autoptr (JsonObject) event = stm32_sim_wait_event (sim, "released", WAIT_MS);

          frames += json_object_get_int_member (event, "frames");
        }
      if (json_object_get_int_member (status, "slots_in_use") == 0)
        return frames;
      stm32_test_wait_until (stm32_sim_count_events (sim, "released") > taken, WAIT_MS);
    }
}

/* ---- tests ---------------------------------------------------------------------------- */

/* Every frame of a stream reaches the board once, in order, and every send
 * is answered, in the order the frames were given, after the board's
 * acknowledgement: they are the link's frames, counted as Send's are. */
static void
test_in_order (Fixture *fixture, gconstpointer data)
{
  const guint n = 3000;
  g_autoptr (Stm32ClientSendChannel) channel = open_channel (fixture);
  g_autoptr (Outcomes) outcomes = outcomes_new (n);

  send_numbered (channel, outcomes, 0, n, 64);
  stm32_test_wait_until (outcomes->answered == n, WAIT_MS);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (g_array_index (outcomes->order, guint, i), ==, i);
      g_assert_no_error (g_ptr_array_index (outcomes->errors, i));
    }
  g_assert_cmpuint (stm32_client_send_channel_get_unanswered (channel), ==, 0);
  g_assert_cmpuint (stm32_client_send_channel_get_unwritten (channel), ==, 0);
  assert_board_saw (fixture->sim, n);
  stm32_test_wait_until (stm32_client_link_get_frames_sent (fixture->link) == n, WAIT_MS);

  /* The sync wrapper, on the same channel once nothing is outstanding. */
  {
    g_autoptr (GBytes) frame = numbered_frame (n, 64);
    g_autoptr (GError) error = NULL;

    g_assert_true (stm32_client_send_channel_send_sync (channel, frame, NULL, &error));
    g_assert_no_error (error);
    stm32_test_wait_until (stm32_sim_count_events (fixture->sim, "frame") == n + 1, WAIT_MS);
  }
}

/* A frame Send would refuse is refused with Send's error, in its place; the
 * frames around it go on. */
static void
test_errors (Fixture *fixture, gconstpointer data)
{
  g_autoptr (Stm32ClientSendChannel) channel = open_channel (fixture);
  g_autoptr (Outcomes) outcomes = outcomes_new (3);
  g_autoptr (GBytes) bad = g_bytes_new_static ("two\nlines", 9);
  g_autoptr (GError) send_error = NULL;
  Ticket *ticket = g_new0 (Ticket, 1);

  send_numbered (channel, outcomes, 0, 1, 16);
  ticket->outcomes = outcomes;
  ticket->index = 1;
  stm32_client_send_channel_send (channel, bad, NULL, on_sent, ticket);
  send_numbered (channel, outcomes, 2, 1, 16);
  stm32_test_wait_until (outcomes->answered == 3, WAIT_MS);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpuint (g_array_index (outcomes->order, guint, i), ==, i);
  g_assert_no_error (g_ptr_array_index (outcomes->errors, 0));
  g_assert_no_error (g_ptr_array_index (outcomes->errors, 2));
  g_assert_false (stm32_client_link_send_sync (fixture->link, bad, NULL, &send_error));
  g_assert_error (outcome (outcomes, 1), STM32_ERROR, STM32_ERROR_INVALID_FRAME);
  g_assert_cmpstr (((GError *) g_ptr_array_index (outcomes->errors, 1))->message, ==,
                   send_error->message);
  {
    g_autoptr (JsonObject) first = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);
    g_autoptr (JsonObject) third = stm32_sim_wait_event (fixture->sim, "frame", WAIT_MS);

    g_assert_true (g_str_has_prefix (json_object_get_string_member (first, "data"), "000000:"));
    g_assert_true (g_str_has_prefix (json_object_get_string_member (third, "data"), "000002:"));
  }

  /* While the link is down, frames fail as Send's do. */
  g_clear_error (&send_error);
  stm32_daemon_link_disconnect (fixture->dlink);
  {
    g_autoptr (GBytes) frame = numbered_frame (3, 16);
    g_autoptr (GError) error = NULL;

    g_assert_false (stm32_client_send_channel_send_sync (channel, frame, NULL, &error));
    g_assert_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  }
}

static guint64
rss_kib (GPid pid)
{
  Stm32ProcessStat stat;
  g_autoptr (GError) error = NULL;

  g_assert_true (stm32_test_read_process_stat (pid, &stat, &error));
  g_assert_no_error (error);
  return (guint64) stat.rss_kib;
}

/* Reads every answer waiting on @fd, asserting each acknowledges; returns
 * how many frames they answered. */
static guint
read_answers (int fd)
{
  guint answered = 0;
  guint8 buffer[4096];
  ssize_t n;

  while ((n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT)) > 0)
    {
      g_autoptr (GBytes) bytes = g_bytes_new (buffer, n);
      g_autoptr (GVariant) answer =
          g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(uss)"), bytes, FALSE));
      const char *name, *message;
      guint32 count;

      g_assert_true (g_variant_is_normal_form (answer));
      g_variant_get (answer, "(u&s&s)", &count, &name, &message);
      g_assert_cmpstr (name, ==, "");
      g_assert_cmpuint (count, >, 0);
      answered += count;
    }
  g_assert_true (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  return answered;
}

/* Whether @fd takes a packet within @timeout_ms, the main context turning. */
static gboolean
wait_writable (int fd, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (g_get_monotonic_time () < deadline)
    {
      struct pollfd p = { .fd = fd, .events = POLLOUT };

      if (poll (&p, 1, 10) == 1)
        return TRUE;
      g_main_context_iteration (NULL, FALSE);
    }
  return FALSE;
}

#define BOUND_FRAMES 4096
#define BOUND_FRAME_SIZE 16384
#define BOUND_PER_PACKET 3
/* 64 MiB sent against a 64 KiB queue: stm32d may hold the queue, what the
 * board's TCP window lets it write and has not been acknowledged (a few MiB
 * of kernel buffers it keeps a copy of), and ASan's quarantine (8 MiB). */
#define BOUND_RSS_KIB (32 * 1024)

/* A board that stops reading: the client's writes block once the send queue
 * is full (stm32d stops reading the channel, never failing a frame for it),
 * stm32d's memory stays bounded however much the client has to send, and
 * once the board reads again every frame arrives once, in order, and is
 * acknowledged. */
static void
test_bound (Fixture *fixture, gconstpointer data)
{
  GPid pid = stm32_daemon_get_pid (fixture->daemon);
  guint64 idle_kib = rss_kib (pid);
  guint written = 0, answered = 0;
  gboolean pushed_back = FALSE;
  gint64 deadline;
  int fd = open_channel_fd (fixture);

  stm32_sim_command (fixture->sim, "blackhole on");
  while (written < BOUND_FRAMES && !pushed_back)
    {
      g_autoptr (GByteArray) packet = g_byte_array_new ();

      for (guint i = written; i < MIN (written + BOUND_PER_PACKET, BOUND_FRAMES); i++)
        {
          g_autoptr (GBytes) frame = numbered_frame (i, BOUND_FRAME_SIZE);
          guint32 length = BOUND_FRAME_SIZE;

          g_byte_array_append (packet, (const guint8 *) &length, sizeof length);
          g_byte_array_append (packet, g_bytes_get_data (frame, NULL), BOUND_FRAME_SIZE);
        }
      /* Waits for stm32d to read, or finds it stopped reading for good. */
      if (!wait_writable (fd, 2000))
        {
          pushed_back = TRUE;
          continue;
        }
      g_assert_cmpint (send (fd, packet->data, packet->len, MSG_NOSIGNAL | MSG_DONTWAIT), ==,
                       (gssize) packet->len);
      written = MIN (written + BOUND_PER_PACKET, BOUND_FRAMES);
      answered += read_answers (fd);
    }
  g_test_message ("stm32d stopped reading after %u of %u frames; grew %" G_GUINT64_FORMAT " KiB",
                  written, BOUND_FRAMES, rss_kib (pid) - MIN (idle_kib, rss_kib (pid)));
  g_assert_true (pushed_back);
  g_assert_cmpuint (written, <, BOUND_FRAMES / 2);
  g_assert_cmpuint (rss_kib (pid), <=, idle_kib + BOUND_RSS_KIB);
  /* Nothing was refused for the full queue: all that was answered was acknowledged. */
  answered += read_answers (fd);

  stm32_sim_command (fixture->sim, "blackhole off");
  deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  while ((written < BOUND_FRAMES || answered < BOUND_FRAMES) && g_get_monotonic_time () < deadline)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN | (written < BOUND_FRAMES ? POLLOUT : 0) };

      /* Short waits: the simulator's events must keep being read, or it
       * blocks on them and stops reading the link. */
      g_main_context_iteration (NULL, FALSE);
      if (poll (&p, 1, 10) <= 0)
        continue;
      if (p.revents & POLLIN)
        answered += read_answers (fd);
      if ((p.revents & POLLOUT) && written < BOUND_FRAMES)
        {
          g_autoptr (GBytes) frame = numbered_frame (written, BOUND_FRAME_SIZE);
          guint32 length = BOUND_FRAME_SIZE;
          g_autoptr (GByteArray) packet = g_byte_array_new ();

          g_byte_array_append (packet, (const guint8 *) &length, sizeof length);
          g_byte_array_append (packet, g_bytes_get_data (frame, NULL), BOUND_FRAME_SIZE);
          g_assert_cmpint (send (fd, packet->data, packet->len, MSG_NOSIGNAL), ==,
                           (gssize) packet->len);
          written++;
        }
    }
  g_assert_cmpuint (answered, ==, BOUND_FRAMES);
  close (fd);
  /* The board's own count (frames this large come without their data). */
  stm32_daemon_link_disconnect (fixture->dlink);
  g_assert_cmpint (board_frames (fixture->sim), ==, BOUND_FRAMES);
}

/* The same through libstm32client: frames the daemon does not take wait in
 * the channel, and every one is acknowledged once the board reads again. */
static void
test_bound_client (Fixture *fixture, gconstpointer data)
{
  const guint n = 1000;
  g_autoptr (Stm32ClientSendChannel) channel = open_channel (fixture);
  g_autoptr (Outcomes) outcomes = outcomes_new (n);

  stm32_sim_command (fixture->sim, "blackhole on");
  send_numbered (channel, outcomes, 0, n, BOUND_FRAME_SIZE);
  /* The board's buffers and the queue fill; the rest waits with us. */
  stm32_test_wait_until (stm32_client_send_channel_get_unwritten (channel) <
                             (gsize) n * BOUND_FRAME_SIZE,
                         WAIT_MS);
  g_assert_cmpuint (outcomes->answered, <, n);
  stm32_sim_command (fixture->sim, "blackhole off");
  stm32_test_wait_until (outcomes->answered == n, WAIT_MS);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (g_array_index (outcomes->order, guint, i), ==, i);
      g_assert_no_error (outcome (outcomes, i));
    }
  g_assert_cmpuint (stm32_client_send_channel_get_unwritten (channel), ==, 0);
  stm32_daemon_link_disconnect (fixture->dlink);
  g_assert_cmpint (board_frames (fixture->sim), ==, n);
}

/* The board resets mid-stream: every frame is answered, those the board
 * acknowledged first and the rest with the reset (or NotConnected, once the
 * link is down), never one success after a failure; the board saw a prefix
 * of the stream, each frame once, and every frame it saw was acknowledged.
 * (Its TCP stack may have acknowledged a few more that its firmware dropped
 * unread when it reset: acknowledged is what Send promises too.)
 * The board answers each frame: a firmware that only reads may reset before
 * its stack's delayed ACK of the last frames it read went out, and a RST's
 * ACK field is not looked at (RFC 9293, 3.10.7.4: the RST check comes before
 * the ACK's), so those frames are rightly answered as not delivered. A
 * reply's segment carries the ACK of everything read before it. */
static void
test_board_reset (Fixture *fixture, gconstpointer data)
{
  /* 20 MiB: more than the socket buffers on both sides hold, so the reset
   * comes with frames still to send. */
  const guint n = 20000;
  g_autoptr (Stm32ClientSendChannel) channel = open_channel (fixture);
  g_autoptr (Outcomes) outcomes = outcomes_new (n);
  guint acknowledged = 0, received;

  send_numbered (channel, outcomes, 0, n, 1024);
  stm32_test_wait_until (outcomes->answered == n, WAIT_MS);
  for (guint i = 0; i < n; i++)
    {
      const GError *error = g_ptr_array_index (outcomes->errors, i);

      g_assert_cmpuint (g_array_index (outcomes->order, guint, i), ==, i);
      if (error == NULL)
        {
          g_assert_cmpuint (acknowledged, ==, i);
          acknowledged++;
          continue;
        }
      g_assert_true (error->domain == STM32_ERROR);
      g_assert_true (error->code == STM32_ERROR_RESET || error->code == STM32_ERROR_NOT_CONNECTED);
      g_assert_cmpstr (error->message, !=, "");
    }
  received = board_frames (fixture->sim);
  g_test_message ("%u frames acknowledged, %u received by the board, %u failed", acknowledged,
                  received, n - acknowledged);
  g_assert_cmpuint (acknowledged, <, n);
  assert_board_saw (fixture->sim, received);
  g_assert_cmpuint (acknowledged, >=, received);
  g_assert_cmpuint (received, ==, 700);
}

/* A client that leaves mid-stream, with frames queued and others waiting for
 * the board's acknowledgement: stm32d drops what it had not written, keeps no
 * fd and no memory of it (LeakSanitizer checks at its exit), and the link
 * goes on. */
static void
test_client_leaves (Fixture *fixture, gconstpointer data)
{
  GPid pid = stm32_daemon_get_pid (fixture->daemon);
  guint before = stm32_test_count_process_fds (pid);
  g_autoptr (Outcomes) outcomes = outcomes_new (2000);
  g_autoptr (GError) error = NULL;
  Stm32ClientSendChannel *channel;
  int fd;

  stm32_sim_command (fixture->sim, "blackhole on");
  channel = open_channel (fixture);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before + 1, WAIT_MS);
  send_numbered (channel, outcomes, 0, 2000, 4096);
  /* Part of it went to stm32d, the rest waits in the channel. */
  stm32_test_wait_until (stm32_client_send_channel_get_unwritten (channel) < 2000 * 4100, WAIT_MS);
  stm32_client_send_channel_close (channel);
  g_object_unref (channel);
  stm32_test_wait_until (outcomes->answered == 2000, WAIT_MS);
  for (guint i = 0; i < 2000; i++)
    if (g_ptr_array_index (outcomes->errors, i) != NULL)
      g_assert_error (outcome (outcomes, i), G_IO_ERROR, G_IO_ERROR_CLOSED);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before, WAIT_MS);

  /* The same on the wire, leaving without reading a single answer. */
  fd = open_channel_fd (fixture);
  {
    g_autoptr (GBytes) frame = numbered_frame (0, 64);
    guint32 length = 64;
    g_autoptr (GByteArray) packet = g_byte_array_new ();

    g_byte_array_append (packet, (const guint8 *) &length, sizeof length);
    g_byte_array_append (packet, g_bytes_get_data (frame, NULL), 64);
    g_assert_cmpint (send (fd, packet->data, packet->len, MSG_NOSIGNAL), ==, (gssize) packet->len);
  }
  close (fd);
  stm32_test_poll_until (stm32_test_count_process_fds (pid) == before, WAIT_MS);

  stm32_sim_command (fixture->sim, "blackhole off");
  {
    g_autoptr (GBytes) frame = g_bytes_new_static ("after", 5);

    g_assert_true (stm32_client_link_send_sync (fixture->link, frame, NULL, &error));
    g_assert_no_error (error);
  }
}

/* A packet that is not whole frames closes the channel: the client reads EOF. */
static void
test_bad_packet (Fixture *fixture, gconstpointer data)
{
  int fd = open_channel_fd (fixture);
  guint32 length = 100;
  char byte;
  struct pollfd p = { .fd = fd, .events = POLLIN };

  g_assert_cmpint (send (fd, &length, sizeof length, MSG_NOSIGNAL), ==, sizeof length);
  g_assert_cmpint (poll (&p, 1, WAIT_MS), ==, 1);
  g_assert_cmpint (recv (fd, &byte, 1, 0), ==, 0);
  close (fd);
  g_assert_true (stm32_daemon_link_state_is (fixture->dlink, "connected"));
}

/* `stm32ctl send` with many lines on standard input: every line is on the
 * board, in order, and stm32ctl says how many were acknowledged. */
static void
test_ctl_stdin (Fixture *fixture, gconstpointer data)
{
  const guint n = 5000;
  g_autoptr (GString) input = g_string_new (NULL);
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *ctl = stm32_test_build_path ("cli/stm32ctl");
  g_autofree char *out = NULL, *err = NULL;

  for (guint i = 0; i < n; i++)
    g_string_append_printf (input, "%06u:line\n", i);
  process = g_subprocess_launcher_spawn (launcher, &error, ctl, "--session", "--link", "default",
                                         "send", "--lines", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, input->str, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, WAIT_MS);
  g_subprocess_communicate_utf8_finish (process, result, &out, &err, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (err, ==, "");
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
  assert_board_saw (fixture->sim, n);
  /* One channel, not a bus call per line: the daemon's Send counter is the
   * link's, and the lines came as frames of the stream. */
  stm32_test_wait_until (stm32_client_link_get_frames_sent (fixture->link) == n, WAIT_MS);
}

static const Setup plain = { { "--reply", "none", NULL }, NULL };
static const Setup small_queue = { { "--reply", "none", NULL }, "SendQueueMax=64KiB\n" };
/* The link stays down once the board reset it; so a first connect given up
 * on (a loaded machine can stall stm32d past the default 3 s) would not be
 * retried within the test either: it gets as long as the test waits. */
static const Setup resetting = {
  { "--reply", "echo", "--rst-after", "700", NULL },
  "BusyWindow=0\nRetryMin=600000\nRetryMax=600000\nConnectTimeout=30000\n"
};

static void
add_test (const char *path, const Setup *setup, void (*test) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, setup, fixture_setup, test, fixture_teardown);
}

int
main (int argc, char **argv)
{
  /* stm32d inherits it: its memory is measured, and ASan's default
   * quarantine would hold 256 MiB of freed frames. */
  g_autofree char *asan = g_strdup_printf (
      "%s:quarantine_size_mb=8", g_getenv ("ASAN_OPTIONS") ? g_getenv ("ASAN_OPTIONS") : "");

  g_setenv ("ASAN_OPTIONS", asan, TRUE);
  stm32_daemon_test_init (&argc, &argv);
  add_test ("/send-channel/in-order", &plain, test_in_order);
  add_test ("/send-channel/errors", &plain, test_errors);
  add_test ("/send-channel/bound", &small_queue, test_bound);
  add_test ("/send-channel/bound-client", &small_queue, test_bound_client);
  add_test ("/send-channel/board-reset", &resetting, test_board_reset);
  add_test ("/send-channel/client-leaves", &plain, test_client_leaves);
  add_test ("/send-channel/bad-packet", &plain, test_bad_packet);
  add_test ("/send-channel/ctl-stdin", &plain, test_ctl_stdin);
  return stm32_daemon_test_run ();
}
