/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include "stm32-link-types.h"

G_BEGIN_DECLS

/* The firmware: a TCP server on lwIP's raw API, written like ST's raw-API
 * echo server (tcp_new/bind/listen/accept, recv/sent/err/poll callbacks, a
 * fixed table of per-connection state), with the failure modes of real
 * firmware on demand. Frames are the daemon's (daemon/stm32-framer.h). */

typedef enum
{
  FW_MODE_GOOD, /* closes on EOF (recv callback with p == NULL) */
  FW_MODE_LEAK, /* ignores EOF: the PCB stays in CLOSE_WAIT until a RST */
} FwMode;

typedef enum
{
  FW_WHEN_FULL_CLOSE, /* accept, then tcp_close(): the PC reads EOF */
  FW_WHEN_FULL_ABORT, /* accept, then tcp_abort(): the PC reads ECONNRESET */
} FwWhenFull;

typedef enum
{
  FW_ON_MALFORMED_CLOSE,
  FW_ON_MALFORMED_ABORT,
  FW_ON_MALFORMED_IGNORE,
} FwOnMalformed;

typedef struct
{
  guint16 port; /* 0: lwIP picks one, kept across "listen off/on" and restarts */
  Stm32Framing framing;
  gsize max_frame;
  gboolean echo; /* else no replies */
  FwMode mode;
  guint slots; /* application connection table; 0 = unlimited */
  FwWhenFull when_full;
  gboolean prio_min;     /* tcp_setprio (TCP_PRIO_MIN) on accept, as ST's example */
  guint idle_timeout_ms; /* 0 = off */
  FwOnMalformed on_malformed;
  gboolean listen; /* listen once the stack is up */
  gboolean quiet;  /* no "frame" events */
} FwConfig;

/* Keeps @config (the commands change slots, mode and listen in it). */
void fw_init (FwConfig *config);
/* After lwip_init() and the netif: opens the listener if config->listen. */
gboolean fw_start (GError **error);
/* Aborts every connection (RST) and closes the listener: the board stops. */
void fw_stop (void);

gboolean fw_set_listening (gboolean on, GError **error);
gboolean fw_is_listening (void);
guint16 fw_get_port (void);

void fw_close_all (void);
void fw_rst_all (void);
void fw_set_slots (guint slots);
void fw_set_mode (FwMode mode);
guint fw_slots_in_use (void);

/* Adds the firmware's members to a status event. */
void fw_add_status (JsonBuilder *builder);

G_END_DECLS
