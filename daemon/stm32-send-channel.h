/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-link.h"

G_BEGIN_DECLS

/*
 * Stm32SendChannel: one OpenSendChannel, a SOCK_SEQPACKET socket pair on
 * which the client writes frames in batches (stm32-send-wire.h) and reads
 * their answers: D-Bus's Send without the bus, one answer per run of frames
 * with the same outcome, in order.
 *
 * Each frame is a stm32_link_send_async(), so it keeps every promise Send
 * makes. The channel reads the client only while the link's send queue has
 * room for the next frame, fewer than STM32_SEND_CHANNEL_UNANSWERED_MAX of
 * its frames are unanswered, and its answers are not waiting for room in the
 * client's buffer: a client that writes faster than the board takes frames
 * waits in its own socket buffer, and stm32d holds one packet at most.
 *
 * It ends when the client closes its end (frames not yet written are
 * dropped, as for a D-Bus caller that leaves) or on
 * stm32_send_channel_close() (the client reads EOF); "closed" follows. It
 * knows nothing of D-Bus beyond error names.
 */
#define STM32_TYPE_SEND_CHANNEL (stm32_send_channel_get_type ())
G_DECLARE_FINAL_TYPE (Stm32SendChannel, stm32_send_channel, STM32, SEND_CHANNEL, GObject)

Stm32SendChannel *stm32_send_channel_new (Stm32Link *link, GError **error);
/* The client's end (blocking, close-on-exec), once; the caller owns it. -1 afterwards. */
int stm32_send_channel_steal_fd (Stm32SendChannel *self);
/* Ends the channel at once; @reason is logged. */
void stm32_send_channel_close (Stm32SendChannel *self, const char *reason);

G_END_DECLS
