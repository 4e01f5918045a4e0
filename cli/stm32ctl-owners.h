/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/*
 * The owners of the board's sockets that stm32d could not name. Its unit
 * (PrivateUsers=yes, ProtectProc=invisible) hides every other user's
 * process from it, so the program that holds the board's slots shows as a
 * bare uid; stm32ctl, run by a person (often root), looks again.
 */

/* @report (Link1.Diagnose's a{sv}) with each census entry stm32d gave no
 * "pid" filled in where this process sees its owner, and "seen-by" in every
 * census entry: "stm32d", "stm32ctl", or "" when neither saw the owner
 * (there may be none: TIME_WAIT). Pids found are added to the
 * competing-client finding's "pids". A new, non-floating reference. */
GVariant *stm32ctl_owners_fill (GVariant *report);

G_END_DECLS
