/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * Processes confined the way systemd/stm32d.service confines stm32d, for
 * tests that must see what stm32d sees in production: a mount namespace of
 * their own with /proc mounted hidepid=invisible,subset=pid
 * (ProtectProc=invisible, ProcSubset=pid),
 * and a user namespace of their own that maps only root (PrivateUsers=yes).
 * Such a process keeps uid 0 for the bus but holds no capability over the
 * host's processes: every other user's process is invisible to it, as the
 * lab user's GUI is to stm32d. Needs root.
 */

/* NULL if this machine can confine processes, else why not (for g_test_skip()). */
char *stm32_sandbox_unavailable (void);

/* @launcher's children run confined, and die with the test (like
 * stm32_test_launcher_new()'s: this replaces its child setup). */
void stm32_sandbox_confine (GSubprocessLauncher *launcher);

/* @launcher's children run as user and group nobody (65534), like a lab
 * user's program: a user stm32d's sandbox hides. They die with the test. */
void stm32_sandbox_as_nobody (GSubprocessLauncher *launcher);

G_END_DECLS
