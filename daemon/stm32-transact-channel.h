/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-link.h"

G_BEGIN_DECLS

/*
 * Stm32TransactChannel: one OpenTransactChannel, a SOCK_SEQPACKET socket
 * pair on which each packet from the client is a transaction on the link:
 * a GVariant (ayu) in, a GVariant (ayss) out (reply, D-Bus error name,
 * message), in order. It is D-Bus's Transact without the bus.
 *
 * One request is read at a time, and the next only once the reply is
 * written, so a client that writes faster than the board answers waits in
 * its own socket buffer; one that stops reading replies stops being read.
 *
 * It ends when the client closes its end (the transaction under way is
 * cancelled, as for a D-Bus caller that leaves) or on
 * stm32_transact_channel_close() (the client reads EOF); "closed" follows.
 * It knows nothing of D-Bus beyond error names.
 */
#define STM32_TYPE_TRANSACT_CHANNEL (stm32_transact_channel_get_type ())
G_DECLARE_FINAL_TYPE (Stm32TransactChannel, stm32_transact_channel, STM32, TRANSACT_CHANNEL,
                      GObject)

Stm32TransactChannel *stm32_transact_channel_new (Stm32Link *link, GError **error);
/* The client's end (blocking, close-on-exec), once; the caller owns it. -1 afterwards. */
int stm32_transact_channel_steal_fd (Stm32TransactChannel *self);
/* Ends the channel at once; @reason is logged. */
void stm32_transact_channel_close (Stm32TransactChannel *self, const char *reason);

G_END_DECLS
