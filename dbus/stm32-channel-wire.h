/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * The packets of org.stm32d.Link1.OpenTransactChannel (its doc in the
 * interface XML is the contract), shared by stm32d and the client library:
 * a request is a GVariant (ayu), a reply a (ayss), serialized in the host's
 * byte order.
 *
 * Packets come from another process, so parsing accepts only the normal
 * form. It checks that by encoding what it read again and comparing: GLib's
 * g_variant_is_normal_form() visits every byte of an "ay" as a child, which
 * made it the largest cost in stm32d of a 1 KiB transaction.
 */

/* Serialized size of a request beyond its frame: alignment padding, the u
 * and the array's framing offset (at most 8 bytes). */
#define STM32_CHANNEL_REQUEST_OVERHEAD 16
/* The same for a successful reply, whose strings are empty (an error comes
 * with an empty frame instead). */
#define STM32_CHANNEL_REPLY_OVERHEAD 32

GBytes *stm32_channel_request_new (GBytes *frame, guint32 timeout_ms);
/* FALSE if @packet is not a (ayu) in normal form. */
gboolean stm32_channel_request_parse (GBytes *packet, GBytes **frame, guint32 *timeout_ms);

/* @error_name and @message are "" on success; @frame is empty on failure. */
GBytes *stm32_channel_reply_new (GBytes *frame, const char *error_name, const char *message);
/* FALSE if @packet is not a (ayss) in normal form. */
gboolean stm32_channel_reply_parse (GBytes *packet, GBytes **frame, char **error_name,
                                    char **message);

G_END_DECLS
