/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-defaults.h"
#include "stm32-link.h"

G_BEGIN_DECLS

/*
 * Stm32StreamBridge: one AcquireStream, a stream socket pair whose other end
 * (the holder's) is bridged to a link held in raw mode.
 *
 * Holder → board: one read of at most STM32_STREAM_READ_CHUNK, then one
 * stm32_link_write_raw_async(), and the next read only once it finished, so a
 * fast holder waits in its own socket buffer and can never fill the link's
 * send queue. Board → holder: each "received-raw" chunk is queued, in order,
 * and written with write_all_async; a holder that lets more than
 * STM32_STREAM_BUFFER_MAX wait has the stream closed on it (logged), rather
 * than the daemon blocking or dropping bytes silently.
 *
 * It ends when the holder closes its end (the link goes back to frames), when
 * the connection ends (what the board sent is written to the holder first,
 * then EOF), or on stm32_stream_bridge_close(); "closed" follows once our fd
 * is gone. It knows nothing of D-Bus.
 */
#define STM32_TYPE_STREAM_BRIDGE (stm32_stream_bridge_get_type ())
G_DECLARE_FINAL_TYPE (Stm32StreamBridge, stm32_stream_bridge, STM32, STREAM_BRIDGE, GObject)

/* Holds @link in raw mode; fails as stm32_link_acquire_raw() does. */
Stm32StreamBridge *stm32_stream_bridge_new (Stm32Link *link, GError **error);
/* The holder's end (blocking, close-on-exec), once; the caller owns it. -1 afterwards. */
int stm32_stream_bridge_steal_fd (Stm32StreamBridge *self);
/* Ends the stream at once: gives the link back, drops what waits for the
 * holder, who sees EOF. @reason is logged. */
void stm32_stream_bridge_close (Stm32StreamBridge *self, const char *reason);

G_END_DECLS
