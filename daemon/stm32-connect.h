/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * One TCP connect to @address that owns its socket from the socket's
 * creation. GSocketClient, cancelled just after the handshake completed,
 * closes the socket itself with a FIN only, and firmware that ignores EOF
 * then keeps its slot for good; here a socket that may have reached the
 * board and will not be used is reset (SO_LINGER {1, 0}) before it is closed.
 *
 * Cancelling @cancellable ends the connect at once with G_IO_ERROR_CANCELLED.
 * A connection this returned is the caller's even if @cancellable was
 * cancelled meanwhile: the caller resets what it will not use.
 *
 * Errors are G_IO_ERROR, as g_io_error_from_errno() names the errno, except
 * two that GIO folds into G_IO_ERROR_FAILED although they name a shortage on
 * the PC: EADDRNOTAVAIL (no free local port) comes as
 * G_IO_ERROR_ADDRESS_IN_USE, ENOBUFS as G_IO_ERROR_NO_SPACE like ENOMEM.
 * EMFILE and ENFILE are G_IO_ERROR_TOO_MANY_OPEN_FILES.
 */
void stm32_connect_async (GSocketAddress *address, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data);
GSocketConnection *stm32_connect_finish (GAsyncResult *result, GError **error);

G_END_DECLS
