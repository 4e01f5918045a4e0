/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "stm32-link-config.h"

G_BEGIN_DECLS

/* One [Link NAME] group of the config file. */
typedef struct
{
  char *name; /* only [A-Za-z0-9_]: it is the last element of the link's object path */
  Stm32LinkConfig *config;
} Stm32ConfigLink;

void stm32_config_link_free (Stm32ConfigLink *link);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32ConfigLink, stm32_config_link_free)

/* Reads the daemon's config file (GKeyFile, DESIGN.md "Defaults"): a GPtrArray
 * of Stm32ConfigLink, in the order of the file, with every key not given at its
 * default. A file without links is valid and gives an empty array.
 *
 * Nothing is guessed: any unknown group or key, duplicate, or bad value fails
 * the whole file with STM32_ERROR_INVALID_ARGS and a message of the form
 * "FILE:LINE: [Link NAME] KEY: why". A UTF-8 byte order mark at the start is
 * skipped. A file that cannot be read fails with its G_FILE_ERROR (so a
 * caller can treat G_FILE_ERROR_NOENT specially); one larger than
 * STM32_CONFIG_FILE_MAX, whatever it is (/dev/zero, a pipe), with
 * STM32_ERROR_INVALID_ARGS once that much has been read. Time is linear in
 * the size of the text. */
GPtrArray *stm32_config_load_file (const char *path, GError **error);

/* Same for text in memory; @display_name stands for the file in messages.
 * @length may be -1 if @data is nul-terminated. */
GPtrArray *stm32_config_load_data (const char *data, gssize length, const char *display_name,
                                   GError **error);

G_END_DECLS
