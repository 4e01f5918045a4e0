/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * The packets of org.stm32d.Link1.OpenSendChannel (its doc in the interface
 * XML is the contract), shared by stm32d and the client library.
 *
 * Client to stm32d: one or more frames per packet, each a 32-bit length in
 * the host's byte order followed by that many bytes, no padding. Many small
 * frames share a packet, so a stream of them costs a system call per batch,
 * not per frame.
 *
 * stm32d to client: a GVariant (uss) in the host's byte order: how many of
 * the frames not answered yet, oldest first, this answers, the D-Bus error
 * name they failed with ("" when the board acknowledged them) and its
 * message. Runs of frames with the same outcome share one answer.
 */

/* Bytes a frame takes in a packet beyond its own. */
#define STM32_SEND_WIRE_FRAME_OVERHEAD 4
/* Frames are batched into packets of at most this many bytes; a larger frame
 * goes alone in a packet of its own. */
#define STM32_SEND_WIRE_BATCH_MAX 65536

/* Appends @frame to @packet. */
void stm32_send_wire_append (GByteArray *packet, GBytes *frame);
/* The frame at *@offset in @packet (a slice of it), moving *@offset past it;
 * NULL at the end of @packet, or with @malformed set if what is left is not
 * a whole frame. */
GBytes *stm32_send_wire_next (GBytes *packet, gsize *offset, gboolean *malformed);

GBytes *stm32_send_wire_answer_new (guint32 count, const char *error_name, const char *message);
/* FALSE if @packet is not a (uss) in normal form, or answers no frame. */
gboolean stm32_send_wire_answer_parse (GBytes *packet, guint32 *count, char **error_name,
                                       char **message);

G_END_DECLS
