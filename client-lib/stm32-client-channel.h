/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-client-visibility.h"

G_BEGIN_DECLS

/**
 * Stm32ClientChannel:
 *
 * A transaction channel to one link (org.stm32d.Link1.OpenTransactChannel):
 * the same transactions as stm32_client_link_transact(), without a D-Bus
 * round trip each, for clients that make many requests. Get one with
 * stm32_client_link_open_transact_channel().
 *
 * Any number of transactions may be outstanding; stm32d runs them one at a
 * time, in order, and each gets its own reply. Errors are the same
 * #STM32_ERROR codes Transact gives. When stm32d closes the channel (the link
 * was removed, or the daemon stopped) every transaction fails with
 * %G_IO_ERROR_CONNECTION_CLOSED; open a new channel then. The channel
 * outlives reconnects of the link.
 *
 * Use a channel from one thread: asynchronous transactions complete in the
 * thread-default main context of the thread that started them.
 */
#define STM32_TYPE_CLIENT_CHANNEL (stm32_client_channel_get_type ())
STM32_CLIENT_PUBLIC
G_DECLARE_FINAL_TYPE (Stm32ClientChannel, stm32_client_channel, STM32, CLIENT_CHANNEL, GObject)

STM32_CLIENT_PUBLIC void stm32_client_channel_transact (Stm32ClientChannel *self, GBytes *request,
                                                        guint timeout_ms, GCancellable *cancellable,
                                                        GAsyncReadyCallback callback,
                                                        gpointer user_data);
STM32_CLIENT_PUBLIC GBytes *stm32_client_channel_transact_finish (Stm32ClientChannel *self,
                                                                  GAsyncResult *result,
                                                                  GError **error);
STM32_CLIENT_PUBLIC GBytes *stm32_client_channel_transact_sync (Stm32ClientChannel *self,
                                                                GBytes *request, guint timeout_ms,
                                                                GCancellable *cancellable,
                                                                GError **error);

/* Closes the channel; outstanding transactions fail with G_IO_ERROR_CLOSED. */
STM32_CLIENT_PUBLIC void stm32_client_channel_close (Stm32ClientChannel *self);

G_END_DECLS
