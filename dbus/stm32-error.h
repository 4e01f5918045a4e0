/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * Stm32Error:
 *
 * One domain for every failure stm32d reports. It is registered with
 * g_dbus_error_register_error_domain(), so a code raised in the daemon arrives
 * in a client as the same typed GError, named org.stm32d.Error.<Name> on the bus.
 */
typedef enum
{
  STM32_ERROR_FAILED,          /* anything not covered below; the message says what */
  STM32_ERROR_NOT_CONNECTED,   /* the link is not connected (or went down first) */
  STM32_ERROR_TIMEOUT,         /* connect or transaction timed out */
  STM32_ERROR_REFUSED,         /* nothing listens at the board's port */
  STM32_ERROR_REMOTE_CLOSED,   /* the board closed the connection (FIN) */
  STM32_ERROR_RESET,           /* the connection was reset (RST) */
  STM32_ERROR_DEAD_PEER,       /* the board stopped answering (keepalive, watchdog) */
  STM32_ERROR_HOST_NOT_FOUND,  /* the board's host name does not resolve */
  STM32_ERROR_SERVER_BUSY,     /* accepted and dropped at once: board's tables full */
  STM32_ERROR_QUEUE_FULL,      /* the bounded send queue has no room */
  STM32_ERROR_FRAME_TOO_LARGE, /* frame exceeds MaxFrame (or the prefix width) */
  STM32_ERROR_INVALID_FRAME,   /* frame breaks the framing's rules */
  STM32_ERROR_INVALID_ARGS,    /* a caller's argument is out of range */
  STM32_ERROR_BUSY,            /* the link is held by another user (AcquireStream) */
  STM32_ERROR_UNREACHABLE,     /* no route to the board's network or host */
  /* the PC, not the board, ran out of local ports, file descriptors or memory */
  STM32_ERROR_OUT_OF_RESOURCES,
  /* not an error: how many there are, for arrays indexed by code */
  STM32_ERROR_N_ERRORS,
} Stm32Error;

#define STM32_ERROR (stm32_error_quark ())
GQuark stm32_error_quark (void);

G_END_DECLS
