/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A TCP connect that never leaves a half-used socket to a FIN (stm32-connect.h). */
#include "stm32-connect.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stm32-socket-options.h"

/* GIO folds two errnos that name a shortage on the PC into G_IO_ERROR_FAILED:
 * they get the codes of their kin (stm32-connect.h). */
static GIOErrorEnum
connect_error_code (int errsv)
{
  switch (errsv)
    {
    case EADDRNOTAVAIL:
      return G_IO_ERROR_ADDRESS_IN_USE;
    case ENOBUFS:
      return G_IO_ERROR_NO_SPACE;
    default:
      return g_io_error_from_errno (errsv);
    }
}

static GError *
connect_error_new (const char *what, int errsv)
{
  return g_error_new (G_IO_ERROR, connect_error_code (errsv), "%s: %s", what, g_strerror (errsv));
}

/* A socket whose handshake may have completed, that nobody will use: a RST,
 * so the board frees its control block and its slot. */
static void
reset_and_close (GSocket *socket)
{
  stm32_socket_set_abortive_close (socket, NULL);
  g_socket_close (socket, NULL);
}

static void
connect_return_error (GTask *task, GSocket *socket, GError *error)
{
  if (socket != NULL)
    reset_and_close (socket);
  g_task_return_error (task, error);
}

static void
connect_return_connected (GTask *task, GSocket *socket)
{
  GError *error = NULL;

  /* Only marks @socket connected: SO_ERROR was 0. */
  if (!g_socket_check_connect_result (socket, &error))
    connect_return_error (task, socket, error);
  else
    g_task_return_pointer (task, g_socket_connection_factory_create_connection (socket),
                           g_object_unref);
}

static gboolean
on_writable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  GTask *task = user_data;
  GError *error = NULL;
  int errsv = 0;

  if (g_cancellable_set_error_if_cancelled (g_task_get_cancellable (task), &error))
    connect_return_error (task, socket, error);
  /* SO_ERROR read here, not by g_socket_check_connect_result(), to keep the errno. */
  else if (!g_socket_get_option (socket, SOL_SOCKET, SO_ERROR, &errsv, &error))
    connect_return_error (task, socket, error);
  else if (errsv != 0)
    connect_return_error (task, socket, connect_error_new ("Could not connect", errsv));
  else
    connect_return_connected (task, socket);
  return G_SOURCE_REMOVE;
}

/* socket() itself, for its errno: GIO reports ENOBUFS as G_IO_ERROR_FAILED. */
static GSocket *
connect_socket_new (GSocketFamily family, GError **error)
{
  int fd = socket (family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  int errsv = errno;
  GSocket *socket;

  if (fd < 0)
    {
      g_propagate_error (error, connect_error_new ("Could not create a socket", errsv));
      return NULL;
    }
  socket = g_socket_new_from_fd (fd, error);
  if (socket == NULL)
    close (fd);
  return socket;
}

void
stm32_connect_async (GSocketAddress *address, GCancellable *cancellable,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GSource) source = NULL;
  struct sockaddr_storage native;
  gssize native_len = g_socket_address_get_native_size (address);
  GError *error = NULL;
  int errsv;

  g_task_set_source_tag (task, stm32_connect_async);
  /* The caller decides what a connection it gets after a late cancel becomes. */
  g_task_set_check_cancellable (task, FALSE);
  if (native_len < 0 || !g_socket_address_to_native (address, &native, sizeof native, &error))
    {
      connect_return_error (task, NULL,
                            error ? error
                                  : g_error_new_literal (G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                                         "Not a socket address"));
      return;
    }
  socket = connect_socket_new (g_socket_address_get_family (address), &error);
  if (socket == NULL)
    {
      connect_return_error (task, NULL, error);
      return;
    }
  g_socket_set_blocking (socket, FALSE);
  /* connect() itself, for its errno: GIO reports EADDRNOTAVAIL (no free local
   * port) as G_IO_ERROR_FAILED. Non-blocking: EINPROGRESS while the handshake
   * runs (loopback may finish it at once). */
  if (connect (g_socket_get_fd (socket), (struct sockaddr *) &native, (socklen_t) native_len) == 0)
    {
      connect_return_connected (task, socket);
      return;
    }
  errsv = errno;
  /* EINTR: the handshake goes on as with EINPROGRESS. */
  if (errsv != EINPROGRESS && errsv != EINTR)
    {
      connect_return_error (task, socket, connect_error_new ("Could not connect", errsv));
      return;
    }
  /* Dispatched once writable, or at once when @cancellable is cancelled. */
  source = g_socket_create_source (socket, G_IO_OUT, cancellable);
  g_source_set_callback (source, G_SOURCE_FUNC (on_writable), g_object_ref (task), g_object_unref);
  g_source_attach (source, g_task_get_context (task));
}

GSocketConnection *
stm32_connect_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
