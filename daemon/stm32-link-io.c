/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One socket's life for a Stm32Link: connecting through the board's addresses
 * one at a time within ConnectTimeout, the read loop, writing, our FIN, and
 * closing the fd only once no operation can touch it. What the socket learns
 * goes to the link (stm32_link_on_*), which decides what it means.
 */
#include "stm32-link-private.h"

#include "stm32-connect.h"
#include "stm32-socket-options.h"

LinkIo *
stm32_link_io_new (Stm32Link *link)
{
  LinkIo *io = g_rc_box_new0 (LinkIo);

  io->link = link;
  io->phase = LINK_IO_CONNECTING;
  io->cancellable = g_cancellable_new ();
  io->write_cancellable = g_cancellable_new ();
  return io;
}

static void link_io_stop_reading (LinkIo *io);

static void
link_io_clear (LinkIo *io)
{
  link_io_stop_reading (io);
  stm32_deadline_stop (&io->connect_deadline);
  g_clear_object (&io->cancellable);
  g_clear_object (&io->write_cancellable);
  g_clear_object (&io->addresses);
  g_clear_object (&io->connection);
  g_clear_error (&io->connect_error);
  g_clear_pointer (&io->writing, g_bytes_unref);
}

LinkIo *
stm32_link_io_ref (LinkIo *io)
{
  return g_rc_box_acquire (io);
}

void
stm32_link_io_unref (LinkIo *io)
{
  g_rc_box_release_full (io, (GDestroyNotify) link_io_clear);
}

gboolean
stm32_link_io_is_ending (LinkIo *io)
{
  return io->phase >= LINK_IO_ENDING;
}

/* ---- closing ------------------------------------------------------------------ */

static void
on_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;

  /* Closing a socket cannot fail in a way that leaves the fd open. */
  if (!g_io_stream_close_finish (G_IO_STREAM (source), result, &error))
    g_debug ("close: %s", error->message);
  io->pending--;
  io->phase = LINK_IO_CLOSED;
  if (io->link != NULL)
    stm32_link_finish_attempt (io->link);
}

void
stm32_link_io_maybe_close (LinkIo *io)
{
  GSocket *socket;

  if (io->link == NULL || io->phase < LINK_IO_ENDING || io->pending > 0)
    return;
  if (io->connection == NULL || io->phase == LINK_IO_CLOSED)
    {
      stm32_link_finish_attempt (io->link);
      return;
    }
  socket = g_socket_connection_get_socket (io->connection);
  if (io->abortive)
    {
      g_autoptr (GError) error = NULL;

      if (!stm32_socket_set_abortive_close (socket, &error))
        LINK_LOG (io->link, G_LOG_LEVEL_WARNING, "%s", error->message);
    }
  io->pending++;
  /* Not cancellable: our cancellable is already cancelled, and a close that
   * never ran would leak the fd. With or without SO_LINGER {1, 0} it never blocks. */
  g_io_stream_close_async (G_IO_STREAM (io->connection), G_PRIORITY_DEFAULT, NULL, on_closed,
                           stm32_link_io_ref (io));
}

gboolean
stm32_link_io_begin_end (LinkIo *io, gboolean abortive)
{
  if (io->phase >= LINK_IO_ENDING)
    return FALSE;
  io->phase = LINK_IO_ENDING;
  io->abortive = abortive;
  link_io_stop_reading (io);
  g_cancellable_cancel (io->cancellable);
  /* A write is never cancelled: GTask would report one that already reached
   * the kernel as cancelled, and a frame that was sent would be answered "not
   * sent". A writable socket means it finished or will at once; one blocked on
   * a board that stopped reading is failed with EPIPE by shutting our side
   * down — then it really was not sent. (A FIN goes out only in that case.) */
  if (io->writing != NULL)
    {
      GSocket *socket = g_socket_connection_get_socket (io->connection);

      if ((g_socket_condition_check (socket, G_IO_OUT) & G_IO_OUT) == 0)
        g_socket_shutdown (socket, FALSE, TRUE, NULL);
    }
  return TRUE;
}

void
stm32_link_io_abandon (LinkIo *io)
{
  /* No one is left to wait for the board's FIN: reset, so it keeps no PCB. */
  if (io->connection != NULL && io->phase != LINK_IO_CLOSED)
    stm32_socket_set_abortive_close (g_socket_connection_get_socket (io->connection), NULL);
  io->link = NULL;
  io->phase = MAX (io->phase, LINK_IO_ENDING);
  link_io_stop_reading (io);
  g_cancellable_cancel (io->cancellable);
  g_cancellable_cancel (io->write_cancellable);
}

/* ---- connecting --------------------------------------------------------------- */

static void link_io_next_address (LinkIo *io);

/* An operation of the connect came back after the link stopped waiting for it. */
static gboolean
link_io_connect_abandoned (LinkIo *io, GSocketConnection **connection)
{
  if (io->link != NULL && io->phase < LINK_IO_ENDING && !io->connect_deadline.timed_out)
    return FALSE;
  /* Connected just as we gave up: nothing was exchanged, reset it at once. */
  if (connection != NULL && *connection != NULL)
    {
      stm32_socket_set_abortive_close (g_socket_connection_get_socket (*connection), NULL);
      io->connection = g_steal_pointer (connection);
    }
  if (io->link != NULL && io->phase < LINK_IO_ENDING)
    stm32_link_on_connect_timeout (io->link);
  else
    stm32_link_io_maybe_close (io);
  return TRUE;
}

static void
on_socket_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketConnection) connection = stm32_connect_finish (result, &error);

  io->pending--;
  if (link_io_connect_abandoned (io, &connection))
    return;
  if (connection == NULL)
    {
      /* Try the host's next address, one socket at a time. */
      g_clear_error (&io->connect_error);
      io->connect_error = g_steal_pointer (&error);
      link_io_next_address (io);
      return;
    }
  stm32_deadline_stop (&io->connect_deadline);
  io->connection = g_object_ref (connection);
  io->phase = LINK_IO_OPEN;
  stm32_link_on_connected (io->link, connection);
}

static void
on_next_address (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) address = g_socket_address_enumerator_next_finish (
      G_SOCKET_ADDRESS_ENUMERATOR (source), result, &error);

  io->pending--;
  if (link_io_connect_abandoned (io, NULL))
    return;
  if (address != NULL)
    {
      /* Not GSocketClient: see stm32-connect.h for the FIN it would leave. */
      io->pending++;
      stm32_connect_async (address, io->connect_deadline.cancellable, on_socket_connected,
                           stm32_link_io_ref (io));
      return;
    }
  stm32_deadline_stop (&io->connect_deadline);
  if (error == NULL)
    error = g_steal_pointer (&io->connect_error);
  if (error == NULL)
    error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "no address to connect to");
  stm32_link_on_connect_failed (io->link, error);
}

static void
link_io_next_address (LinkIo *io)
{
  io->pending++;
  g_socket_address_enumerator_next_async (io->addresses, io->connect_deadline.cancellable,
                                          on_next_address, stm32_link_io_ref (io));
}

void
stm32_link_io_connect (LinkIo *io, const char *host, guint16 port, guint timeout_ms)
{
  g_autoptr (GSocketConnectable) endpoint = g_network_address_new (host, port);

  /* Addresses are tried one at a time, never raced (happy eyeballs): the
   * board has room for few connections. */
  io->addresses = g_socket_connectable_enumerate (endpoint);
  /* A timer that cancels the attempt: no socket option bounds a connect. */
  stm32_deadline_start (&io->connect_deadline, io->cancellable, timeout_ms);
  link_io_next_address (io);
}

/* ---- reading ------------------------------------------------------------------ */

/* One read buffer for every link: a read waits for readiness and then takes
 * what the kernel holds at once, so no buffer sits idle per connection
 * (16 KiB each was most of a quiet link's memory). Links run on the main
 * thread only, and stm32_link_on_data() copies what it keeps. */
static guint8 read_buffer[STM32_READ_CHUNK];

/* One source watches the socket for the connection's whole life, rather
 * than one per read: in GLib 2.74 each source attached or destroyed, and
 * each blocked and unblocked around its own dispatch, adds or removes a poll
 * record, which writes the context's eventfd and costs the loop an extra
 * turn (six eventfd writes per reply a transaction waited for). This one may
 * recurse (no daemon code runs a nested loop), so it is not blocked around
 * its dispatch either. */
typedef struct
{
  GSource source;
  LinkIo *io; /* unowned: @io destroys its watch before it goes */
} ReadWatch;

static void
link_io_stop_reading (LinkIo *io)
{
  if (io->read_watch == NULL)
    return;
  g_source_destroy (io->read_watch);
  g_clear_pointer (&io->read_watch, g_source_unref);
}

static void
link_io_on_readable (LinkIo *watched)
{
  /* What the data causes may end the connection and drop the link's reference. */
  g_autoptr (LinkIo) io = stm32_link_io_ref (watched);
  g_autoptr (Stm32Link) self = io->link ? g_object_ref (io->link) : NULL;
  g_autoptr (GError) error = NULL;
  gssize n;

  if (self == NULL || stm32_link_io_is_ending (io) || stm32_link_get_receiving_held (self))
    {
      /* Held since the last read: what the board sends waits in the kernel. */
      link_io_stop_reading (io);
      return;
    }
  n = g_socket_receive_with_blocking (g_socket_connection_get_socket (io->connection),
                                      (char *) read_buffer, sizeof read_buffer, FALSE, NULL,
                                      &error);
  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return;
  if (n <= 0)
    {
      link_io_stop_reading (io);
      if (n < 0)
        stm32_link_on_io_error (self, error);
      else
        stm32_link_on_eof (self);
      return;
    }
  stm32_link_on_data (self, read_buffer, (gsize) n);
  /* What it caused may have held receiving, or ended the connection. */
  stm32_link_io_read (io);
}

gboolean
stm32_link_io_has_unread (LinkIo *io)
{
  return io != NULL && io->connection != NULL && !stm32_link_io_is_ending (io) &&
         (g_socket_condition_check (g_socket_connection_get_socket (io->connection), G_IO_IN) &
          G_IO_IN) != 0;
}

static gboolean
read_watch_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  link_io_on_readable (((ReadWatch *) source)->io);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs read_watch_funcs = { .dispatch = read_watch_dispatch };

/* Reads while the connection is open and receiving is not held. A watch
 * would still wake for HUP and ERR without G_IO_IN, so a hold removes it. */
void
stm32_link_io_read (LinkIo *io)
{
  GSocket *socket;

  if (io->connection == NULL || stm32_link_io_is_ending (io) || io->link == NULL ||
      stm32_link_get_receiving_held (io->link))
    {
      link_io_stop_reading (io);
      return;
    }
  if (io->read_watch != NULL)
    return;
  socket = g_socket_connection_get_socket (io->connection);
  io->read_watch = g_source_new (&read_watch_funcs, sizeof (ReadWatch));
  ((ReadWatch *) io->read_watch)->io = io;
  g_source_set_static_name (io->read_watch, "[stm32d] board socket");
  g_source_set_can_recurse (io->read_watch, TRUE);
  g_source_add_unix_fd (io->read_watch, g_socket_get_fd (socket), G_IO_IN);
  g_source_attach (io->read_watch, g_main_context_get_thread_default ());
}

/* ---- writing ------------------------------------------------------------------ */

static void on_written (GObject *source, GAsyncResult *result, gpointer user_data);

static void
link_io_write_rest (LinkIo *io)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (io->connection));
  gsize size;
  const guint8 *data = g_bytes_get_data (io->writing, &size);

  io->pending++;
  g_output_stream_write_async (out, data + io->write_offset, size - io->write_offset,
                               G_PRIORITY_DEFAULT, io->write_cancellable, on_written,
                               stm32_link_io_ref (io));
}

/* Partial writes are counted as they happen, so that what the kernel holds
 * unacknowledged can be matched byte for byte against what we gave it. */
static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (LinkIo) io = user_data;
  g_autoptr (GError) error = NULL;
  gssize n = g_output_stream_write_finish (G_OUTPUT_STREAM (source), result, &error);
  g_autoptr (Stm32Link) self = io->link ? g_object_ref (io->link) : NULL;
  gboolean complete;

  io->pending--;
  if (n > 0)
    {
      io->written += (gsize) n;
      io->write_offset += (gsize) n;
    }
  complete = n >= 0 && io->write_offset == g_bytes_get_size (io->writing);
  if (self == NULL)
    {
      g_clear_pointer (&io->writing, g_bytes_unref);
      stm32_link_io_maybe_close (io);
      return;
    }
  /* Once the connection is ending a frame not yet whole stays unsent. */
  if (n >= 0 && !complete && !stm32_link_io_is_ending (io))
    {
      link_io_write_rest (io);
      return;
    }
  g_clear_pointer (&io->writing, g_bytes_unref);
  io->write_offset = 0;
  stm32_link_on_written (self, complete, n < 0 ? error : NULL);
}

void
stm32_link_io_write (LinkIo *io, GBytes *bytes, gsize offset)
{
  g_return_if_fail (io->writing == NULL);
  io->writing = g_bytes_ref (bytes);
  io->write_offset = offset;
  link_io_write_rest (io);
}

gsize
stm32_link_io_write_now (LinkIo *io, const GOutputVector *vectors, gsize n_vectors)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (io->connection));
  gsize taken = 0;

  g_return_val_if_fail (io->writing == NULL, 0);
  /* An error is met again by the write that goes on, which reports it. */
  if (g_pollable_output_stream_writev_nonblocking (G_POLLABLE_OUTPUT_STREAM (out), vectors,
                                                   n_vectors, &taken, NULL,
                                                   NULL) != G_POLLABLE_RETURN_OK)
    return 0;
  io->written += taken;
  return taken;
}

void
stm32_link_io_shutdown_write (LinkIo *io)
{
  GSocket *socket = g_socket_connection_get_socket (io->connection);
  g_autoptr (GError) error = NULL;

  io->phase = LINK_IO_FIN_SENT;
  io->fin_sent = TRUE;
  if (!g_socket_shutdown (socket, FALSE, TRUE, &error))
    stm32_link_on_io_error (io->link, error);
}

gboolean
stm32_link_io_get_acknowledged (LinkIo *io, guint64 *acknowledged)
{
  guint64 kernel;

  if (io->connection == NULL ||
      !stm32_socket_get_acknowledged (g_socket_connection_get_socket (io->connection), &kernel))
    return FALSE;
  /* Beyond @written: our FIN, or bytes of a write whose callback has not
   * run yet; no request ends there before it does. */
  *acknowledged = MIN (kernel, io->written);
  return TRUE;
}
