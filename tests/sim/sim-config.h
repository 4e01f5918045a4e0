/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "stm32-link-types.h"
#include "sim-reply.h"

G_BEGIN_DECLS

/* What the firmware does when the PC closes its side (read returns 0). */
typedef enum
{
  SIM_MODE_GOOD, /* closes its socket at once: FIN, slot freed */
  SIM_MODE_LEAK, /* ignores EOF: only a RST from the PC frees the slot */
} SimMode;

/* What a board with a full connection table does to a new connection. */
typedef enum
{
  SIM_WHEN_FULL_RST,  /* lwIP netconn pool empty: accept, then abort */
  SIM_WHEN_FULL_DROP, /* lwIP PCB pool empty: the SYN is dropped */
} SimWhenFull;

typedef enum
{
  SIM_ON_MALFORMED_CLOSE,
  SIM_ON_MALFORMED_RST,
  SIM_ON_MALFORMED_IGNORE,
} SimOnMalformed;

/* Everything the command line sets. Owned by main; the board changes the
 * fields that control commands may change (slots, mode). */
typedef struct
{
  char *listen_address;
  guint16 port;
  Stm32Framing framing;
  gsize max_frame;
  SimReply *reply;
  guint slots; /* 0 = unlimited */
  SimWhenFull when_full;
  int backlog;
  SimMode mode;
  guint idle_timeout_ms; /* 0 = off */
  SimOnMalformed on_malformed;
  int blackhole_after; /* frames; -1 = off */
  int rst_after;
  int close_after;
  guint refuse_for_ms;
  guint fin_wait_ms;
  gboolean quiet; /* no per-frame events */
  guint64 flood_bytes;    /* each connection floods this much from its accept; 0 = off */
  gsize flood_frame_size; /* payload bytes of each flood frame */
} SimConfig;

G_END_DECLS
