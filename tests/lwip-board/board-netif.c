/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "board-netif.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>

#include "lwip/etharp.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "netif/ethernet.h"

#include "board.h"
#include "sim-events.h"

/* Ethernet II without FCS at the netif's MTU: the largest frame either way. */
#define BOARD_MTU 1500
#define BOARD_FRAME_MAX (BOARD_MTU + 14)
/* Frames taken per wake-up before the timers get a turn: a flooding PC cannot
 * starve lwIP's timers, as an RX DMA ring of this size could not either. */
#define BOARD_RX_BURST 32

static struct
{
  struct netif netif;
  gboolean added;
  int fd;
  guint watch;
  gboolean cut;
  guint64 rx_frames, tx_frames;
  guint64 rx_cut, tx_cut; /* dropped while the cable was pulled */
  guint64 rx_no_pbuf;     /* dropped: PBUF_POOL empty, as a MAC with no RX buffer */
  guint64 rx_oversize, tx_errors;
} nif = { .fd = -1 };

/* lwIP's linkoutput: one whole frame, possibly in a pbuf chain. */
static err_t
link_output (struct netif *netif, struct pbuf *p)
{
  guint8 frame[BOARD_FRAME_MAX];
  u16_t len;
  ssize_t n;

  if (nif.cut)
    {
      nif.tx_cut++;
      return ERR_OK;
    }
  if (p->tot_len > sizeof frame)
    {
      nif.tx_errors++;
      return ERR_BUF;
    }
  len = pbuf_copy_partial (p, frame, p->tot_len, 0);
  do
    n = write (nif.fd, frame, len);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t) len)
    {
      nif.tx_errors++;
      return ERR_IF;
    }
  nif.tx_frames++;
  return ERR_OK;
}

static void
input_frame (const guint8 *frame, gsize len)
{
  struct pbuf *p;

  if (nif.cut)
    {
      nif.rx_cut++;
      return;
    }
  if (len > BOARD_FRAME_MAX)
    {
      nif.rx_oversize++;
      return;
    }
  /* From the pool, as ST's ethernetif.c does: a full pool drops the frame. */
  p = pbuf_alloc (PBUF_RAW, (u16_t) len, PBUF_POOL);
  if (p == NULL)
    {
      nif.rx_no_pbuf++;
      return;
    }
  pbuf_take (p, frame, (u16_t) len);
  nif.rx_frames++;
  board_context = BOARD_CONTEXT_INPUT;
  if (nif.netif.input (p, &nif.netif) != ERR_OK)
    pbuf_free (p);
  board_context = BOARD_CONTEXT_OTHER;
}

static gboolean
on_tap_readable (int fd, GIOCondition condition, gpointer user_data)
{
  /* Larger than any frame, so that an oversize one is seen, not truncated. */
  guint8 frame[BOARD_FRAME_MAX + 64];

  for (guint i = 0; i < BOARD_RX_BURST; i++)
    {
      ssize_t n = read (fd, frame, sizeof frame);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n <= 0)
        {
          g_warning ("TAP device: %s; the board is off the network",
                     n < 0 ? g_strerror (errno) : "end of file");
          nif.watch = 0;
          board_stack_poll ();
          return G_SOURCE_REMOVE;
        }
      input_frame (frame, (gsize) n);
    }
  board_stack_poll ();
  return G_SOURCE_CONTINUE;
}

static err_t
init_netif (struct netif *netif)
{
  netif->name[0] = 'e';
  netif->name[1] = 't';
  netif->mtu = BOARD_MTU;
  netif->hwaddr_len = ETH_HWADDR_LEN;
  netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
  netif->output = etharp_output;
  netif->linkoutput = link_output;
  return ERR_OK;
}

static int
open_tap (const char *name, GError **error)
{
  struct ifreq ifr = { 0 };
  int fd;

  /* TUNSETIFF would create a new, unconfigured device rather than fail. */
  if (if_nametoindex (name) == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "no network device “%s” (create it first: ip tuntap add dev %s mode tap)", name,
                   name);
      return -1;
    }
  if (strlen (name) >= IFNAMSIZ)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "“%s” is too long", name);
      return -1;
    }
  fd = open ("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "/dev/net/tun: %s",
                   g_strerror (saved));
      return -1;
    }
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy (ifr.ifr_name, name, strlen (name));
  if (ioctl (fd, TUNSETIFF, &ifr) < 0)
    {
      int saved = errno;

      close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot attach to TAP device “%s”: %s", name, g_strerror (saved));
      return -1;
    }
  return fd;
}

gboolean
board_netif_open (const BoardNetifConfig *config, GError **error)
{
  g_return_val_if_fail (nif.fd < 0, FALSE);

  nif.fd = open_tap (config->tap, error);
  if (nif.fd < 0)
    return FALSE;
  memcpy (nif.netif.hwaddr, config->mac, ETH_HWADDR_LEN);
  if (netif_add (&nif.netif, &config->ip, &config->netmask, &config->gw, NULL, init_netif,
                 ethernet_input) == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "lwIP refused the network interface");
      close (nif.fd);
      nif.fd = -1;
      return FALSE;
    }
  nif.added = TRUE;
  netif_set_default (&nif.netif);
  netif_set_link_up (&nif.netif);
  netif_set_up (&nif.netif);
  nif.watch = g_unix_fd_add (nif.fd, G_IO_IN, on_tap_readable, NULL);
  return TRUE;
}

void
board_netif_unplug (void)
{
  g_clear_handle_id (&nif.watch, g_source_remove);
  if (nif.fd >= 0)
    close (nif.fd);
  nif.fd = -1;
}

void
board_netif_close (void)
{
  board_netif_unplug ();
  if (nif.added)
    netif_remove (&nif.netif);
  nif.added = FALSE;
}

void
board_netif_set_cut (gboolean cut)
{
  nif.cut = cut;
}

gboolean
board_netif_get_cut (void)
{
  return nif.cut;
}

void
board_netif_add_status (JsonBuilder *builder)
{
  sim_event_add_bool (builder, "cut", nif.cut);
  json_builder_set_member_name (builder, "link");
  json_builder_begin_object (builder);
  sim_event_add_int (builder, "rx_frames", (gint64) nif.rx_frames);
  sim_event_add_int (builder, "tx_frames", (gint64) nif.tx_frames);
  sim_event_add_int (builder, "rx_cut", (gint64) nif.rx_cut);
  sim_event_add_int (builder, "tx_cut", (gint64) nif.tx_cut);
  sim_event_add_int (builder, "rx_no_pbuf", (gint64) nif.rx_no_pbuf);
  sim_event_add_int (builder, "rx_oversize", (gint64) nif.rx_oversize);
  sim_event_add_int (builder, "tx_errors", (gint64) nif.tx_errors);
  json_builder_end_object (builder);
}
