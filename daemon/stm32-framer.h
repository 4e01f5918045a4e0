/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "stm32-link-types.h"

G_BEGIN_DECLS

/* Framing (DESIGN.md, "Framing"): a frame is what Send takes and Received
 * delivers, without any wire delimiter. Errors are STM32_ERROR_FRAME_TOO_LARGE
 * or STM32_ERROR_INVALID_FRAME with a message that says which rule was broken. */

/* Wire form of @frame, or NULL with @error if it may not be sent. */
GBytes *stm32_frame_encode (Stm32Framing framing, gsize max_frame, GBytes *frame, GError **error);

typedef struct _Stm32Decoder Stm32Decoder;

Stm32Decoder *stm32_decoder_new (Stm32Framing framing, gsize max_frame);
void stm32_decoder_free (Stm32Decoder *self);

/* Feeds the next bytes read from the wire, split anywhere; appends each
 * complete frame to @frames (a GPtrArray of GBytes that owns them). Frames
 * completed before a violation are appended even when FALSE is returned; after a
 * violation the decoder stays failed, as the stream can no longer be trusted. */
gboolean stm32_decoder_feed (Stm32Decoder *self, const guint8 *data, gsize len, GPtrArray *frames,
                             GError **error);

/* Bytes held that do not yet form a frame. */
gsize stm32_decoder_pending (const Stm32Decoder *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32Decoder, stm32_decoder_free)

G_END_DECLS
