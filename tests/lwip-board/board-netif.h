/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include "lwip/ip4_addr.h"

G_BEGIN_DECLS

/* The board's Ethernet MAC and PHY: an lwIP netif whose frames go to and come
 * from a Linux TAP device, as an STM32's ETH peripheral and its driver would. */

typedef struct
{
  const char *tap;
  ip4_addr_t ip;
  ip4_addr_t netmask;
  ip4_addr_t gw;
  guint8 mac[6];
} BoardNetifConfig;

/* Attaches to the existing TAP device @config->tap, adds the netif to lwIP and
 * brings it up (the gratuitous ARP goes out). */
gboolean board_netif_open (const BoardNetifConfig *config, GError **error);
/* Removes the netif and closes the TAP: the PC sees the link go down. lwIP
 * aborts the PCBs on the netif's address, with a RST each. */
void board_netif_close (void);
/* Only closes the TAP, leaving lwIP as it is: a board losing power sends
 * nothing more (for restart, which replaces the process image next). */
void board_netif_unplug (void);

/* A pulled cable: every frame in either direction is dropped while on. */
void board_netif_set_cut (gboolean cut);
gboolean board_netif_get_cut (void);

/* Adds "cut" and "link" (frame counters) to a status event. */
void board_netif_add_status (JsonBuilder *builder);

G_END_DECLS
