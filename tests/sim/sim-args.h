/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Argument parsing shared by the board programs (stm32-sim, stm32-lwip-board):
 * their options and their stdin commands. Each fails with a message naming
 * what it expected. */

/* A command argument: a whole number 0…G_MAXINT. */
gboolean sim_parse_uint (const char *text, guint *value, GError **error);
/* A command argument that is @on or @off. */
gboolean sim_parse_on_off (const char *text, const char *on, const char *off, gboolean *value,
                           GError **error);
/* Index of option @value in the NULL-terminated @choices, or -1 with @error;
 * NULL (not given) is the first choice. */
int sim_parse_choice (const char *option, const char *value, const char *const *choices,
                      GError **error);
/* Whether option @value is within min…max. */
gboolean sim_check_range (const char *option, int value, int min, int max, GError **error);

G_END_DECLS
