/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-error.h"

G_BEGIN_DECLS

/* The nicks of these enums (glib-mkenums) are the strings users see: in
 * properties, history, logs and config files. */

typedef enum
{
  STM32_LINK_STATE_DISCONNECTED, /*< nick=disconnected >*/
  STM32_LINK_STATE_CONNECTING,   /*< nick=connecting >*/
  STM32_LINK_STATE_CONNECTED,    /*< nick=connected >*/
  STM32_LINK_STATE_CLOSING,      /*< nick=closing >*/
  STM32_LINK_STATE_WAITING,      /*< nick=waiting >*/
} Stm32LinkState;

/* Why a connection attempt or a connection ended (DESIGN.md, "How a board fails"). */
typedef enum
{
  STM32_END_REASON_NONE,           /*< nick=none >*/
  STM32_END_REASON_LOCAL,          /*< nick=local >*/
  STM32_END_REASON_REMOTE_CLOSED,  /*< nick=remote-closed >*/
  STM32_END_REASON_RESET,          /*< nick=reset >*/
  STM32_END_REASON_SERVER_BUSY,    /*< nick=server-busy >*/
  STM32_END_REASON_TIMEOUT,        /*< nick=timeout >*/
  STM32_END_REASON_REFUSED,        /*< nick=refused >*/
  STM32_END_REASON_DEAD_PEER,      /*< nick=dead-peer >*/
  STM32_END_REASON_HOST_NOT_FOUND, /*< nick=host-not-found >*/
  STM32_END_REASON_UNREACHABLE,    /*< nick=unreachable >*/
  STM32_END_REASON_PROTOCOL_ERROR, /*< nick=protocol-error >*/
  /* replies could no longer be matched to requests */
  STM32_END_REASON_OUT_OF_STEP, /*< nick=out-of-step >*/
  /* The PC, not the board, ran short: no free local port (EADDRNOTAVAIL), no
   * file descriptor (EMFILE, ENFILE), no kernel memory (ENOBUFS, ENOMEM). */
  STM32_END_REASON_PC_NO_PORTS,  /*< nick=pc-no-ports >*/
  STM32_END_REASON_PC_NO_FDS,    /*< nick=pc-no-fds >*/
  STM32_END_REASON_PC_NO_MEMORY, /*< nick=pc-no-memory >*/
  STM32_END_REASON_FAILED,       /*< nick=failed >*/
  /* not a reason: how many there are, for arrays indexed by reason */
  STM32_END_REASON_N_REASONS, /*< skip >*/
} Stm32EndReason;

/* What noticed that a connection or an attempt was over, when the socket
 * itself did not say so (FIN, RST, an error from connect): the doctor tells
 * a hung firmware (its TCP stack still ACKs) from a gone board by it. */
typedef enum
{
  STM32_DETECTOR_NONE,            /*< nick=none >*/
  STM32_DETECTOR_CONNECT_TIMEOUT, /*< nick=connect-timeout >*/
  /* the kernel gave up: keepalive probes or data unacknowledged for UserTimeout */
  STM32_DETECTOR_KEEPALIVE,    /*< nick=keepalive >*/
  STM32_DETECTOR_IDLE_TIMEOUT, /*< nick=idle-timeout >*/
  STM32_DETECTOR_HEARTBEAT,    /*< nick=heartbeat >*/
  /* transactions that got no reply even ReplyGrace after their timeout */
  STM32_DETECTOR_REPLY_GRACE, /*< nick=reply-grace >*/
  STM32_DETECTOR_N            /*< skip >*/
} Stm32Detector;

/* Which side ended a connection first. */
typedef enum
{
  STM32_CLOSED_BY_NONE,  /*< nick=none >*/
  STM32_CLOSED_BY_PC,    /*< nick=pc >*/
  STM32_CLOSED_BY_BOARD, /*< nick=board >*/
} Stm32ClosedBy;

/* CloseMode: how a link closes a connection it ends on request. */
typedef enum
{
  STM32_CLOSE_MODE_AUTO,     /*< nick=auto >*/
  STM32_CLOSE_MODE_GRACEFUL, /*< nick=graceful >*/
  STM32_CLOSE_MODE_RESET,    /*< nick=reset >*/
} Stm32CloseMode;

/* How one close on request is (or will be) done. */
typedef enum
{
  STM32_CLOSE_KIND_NONE,     /*< nick=none >*/
  STM32_CLOSE_KIND_GRACEFUL, /*< nick=graceful >*/
  /* graceful, to see whether a board learned to ignore EOF answers again */
  STM32_CLOSE_KIND_RECHECK, /*< nick=recheck >*/
  /* the board ignores EOF: RST once it acknowledged everything, no FIN wait */
  STM32_CLOSE_KIND_LEARNED_RESET, /*< nick=learned-reset >*/
  STM32_CLOSE_KIND_RESET,         /*< nick=reset >*/
} Stm32CloseKind;

typedef enum
{
  STM32_FRAMING_RAW,   /*< nick=raw >*/
  STM32_FRAMING_LINE,  /*< nick=line >*/
  STM32_FRAMING_U16BE, /*< nick=u16be >*/
  STM32_FRAMING_U32BE, /*< nick=u32be >*/
  STM32_FRAMING_JSON,  /*< nick=json >*/
} Stm32Framing;

/* Nick of @value in @enum_type, or "unknown"; never NULL. */
const char *stm32_enum_to_string (GType enum_type, int value);

/* Parses a nick; on failure names the valid choices in @error (STM32_ERROR_INVALID_ARGS). */
gboolean stm32_enum_from_string (GType enum_type, const char *nick, int *value, GError **error);

/* The error code a caller gets for a connection that ended for @reason. */
Stm32Error stm32_end_reason_to_error_code (Stm32EndReason reason);
/* Why a connect failed, from GIO's error. */
Stm32EndReason stm32_classify_connect_error (const GError *error);
/* Why an established connection failed, from GIO's error on a read or write. */
Stm32EndReason stm32_classify_io_error (const GError *error);

G_END_DECLS
