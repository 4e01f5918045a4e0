/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-client-visibility.h"

G_BEGIN_DECLS

/**
 * Stm32ClientSendChannel:
 *
 * A send channel to one link (org.stm32d.Link1.OpenSendChannel): the same
 * sends as stm32_client_link_send(), without a D-Bus call each, for clients
 * that send streams of frames. Get one with
 * stm32_client_link_open_send_channel().
 *
 * Any number of sends may be outstanding; frames reach the board in the
 * order they were given, and each send completes once the board's TCP stack
 * acknowledged its frame, or with the #STM32_ERROR code Send gives. Frames
 * given in one main-loop iteration travel to stm32d together. When stm32d
 * stops taking frames (its send queue is full, the board does not read),
 * frames wait in the channel: stm32_client_send_channel_get_unwritten()
 * says how many bytes, and sends complete later. When stm32d closes the
 * channel (the link was removed, or the daemon stopped) every send fails
 * with %G_IO_ERROR_CONNECTION_CLOSED; open a new channel then. The channel
 * outlives reconnects of the link.
 *
 * Use a channel from one thread: asynchronous sends complete in the
 * thread-default main context of the thread that started them.
 */
#define STM32_TYPE_CLIENT_SEND_CHANNEL (stm32_client_send_channel_get_type ())
STM32_CLIENT_PUBLIC
G_DECLARE_FINAL_TYPE (Stm32ClientSendChannel, stm32_client_send_channel, STM32,
                      CLIENT_SEND_CHANNEL, GObject)

STM32_CLIENT_PUBLIC void stm32_client_send_channel_send (Stm32ClientSendChannel *self,
                                                         GBytes *frame, GCancellable *cancellable,
                                                         GAsyncReadyCallback callback,
                                                         gpointer user_data);
STM32_CLIENT_PUBLIC gboolean stm32_client_send_channel_send_finish (Stm32ClientSendChannel *self,
                                                                    GAsyncResult *result,
                                                                    GError **error);
STM32_CLIENT_PUBLIC gboolean stm32_client_send_channel_send_sync (Stm32ClientSendChannel *self,
                                                                  GBytes *frame,
                                                                  GCancellable *cancellable,
                                                                  GError **error);

STM32_CLIENT_PUBLIC guint stm32_client_send_channel_get_unanswered (Stm32ClientSendChannel *self);
STM32_CLIENT_PUBLIC gsize stm32_client_send_channel_get_unwritten (Stm32ClientSendChannel *self);

/* Closes the channel; outstanding sends fail with G_IO_ERROR_CLOSED. */
STM32_CLIENT_PUBLIC void stm32_client_send_channel_close (Stm32ClientSendChannel *self);

G_END_DECLS
