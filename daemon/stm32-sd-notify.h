/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Tells systemd about our state ("READY=1", "STATUS=…", "STOPPING=1") when it
 * started us with NOTIFY_SOCKET; does nothing otherwise. Never blocks: it is
 * one datagram on a non-blocking socket. */
void stm32_sd_notify (const char *state);

/* Starts petting systemd's watchdog at half of WATCHDOG_USEC, if it was set
 * for this process; returns the timer source id, or 0. */
guint stm32_sd_watchdog_start (void);

G_END_DECLS
