/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A TCP connect that never leaves a half-used socket to a FIN (stm32-connect.h). */
#include "stm32-connect.h"

#include "stm32-socket-options.h"

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

static gboolean
on_writable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  GTask *task = user_data;
  GError *error = NULL;

  if (g_cancellable_set_error_if_cancelled (g_task_get_cancellable (task), &error) ||
      !g_socket_check_connect_result (socket, &error))
    connect_return_error (task, socket, error);
  else
    g_task_return_pointer (task, g_socket_connection_factory_create_connection (socket),
                           g_object_unref);
  return G_SOURCE_REMOVE;
}

void
stm32_connect_async (GSocketAddress *address, GCancellable *cancellable,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_autoptr (GSocket) socket = NULL;
  g_autoptr (GSource) source = NULL;
  GError *error = NULL;

  g_task_set_source_tag (task, stm32_connect_async);
  /* The caller decides what a connection it gets after a late cancel becomes. */
  g_task_set_check_cancellable (task, FALSE);
  socket = g_socket_new (g_socket_address_get_family (address), G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_TCP, &error);
  if (socket == NULL)
    {
      connect_return_error (task, NULL, error);
      return;
    }
  /* Non-blocking: the connect only starts here, and says G_IO_ERROR_PENDING
   * while the handshake runs (loopback may finish it at once). */
  g_socket_set_blocking (socket, FALSE);
  if (g_socket_connect (socket, address, NULL, &error))
    {
      g_task_return_pointer (task, g_socket_connection_factory_create_connection (socket),
                             g_object_unref);
      return;
    }
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING))
    {
      connect_return_error (task, socket, error);
      return;
    }
  g_clear_error (&error);
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
