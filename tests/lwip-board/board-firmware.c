/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "board-firmware.h"

#include <gio/gio.h>

#include "lwip/ip.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"

#include "board-stats.h"
#include "board.h"
#include "sim-events.h"
#include "stm32-framer.h"

/* Frames larger than this are reported by size only. */
#define FW_EVENT_PAYLOAD_MAX 1024
/* Replies waiting for room in lwIP's send buffer. Past this the firmware stops
 * acknowledging received data to lwIP (tcp_recved), so the receive window
 * closes and a PC that sends without reading is held back by TCP itself. */
#define FW_OUT_HIGH (16 * 1024)
/* tcp_poll interval, in lwIP's coarse timer ticks (TCP_SLOW_INTERVAL, 500 ms):
 * the resolution of --idle-timeout and of the retries below. */
#define FW_POLL_TICKS 1
/* How many polls a closing connection may wait for its last replies to fit
 * into lwIP (a PC that stopped reading) before it is aborted instead. */
#define FW_CLOSE_POLLS_MAX 8

typedef enum
{
  CONN_OPEN,
  CONN_CLOSING, /* the firmware wants to close: writing the last replies first */
  CONN_LEAKED,  /* EOF ignored (leak firmware): held until lwIP drops the PCB */
} ConnState;

typedef enum
{
  REL_CLOSED_AFTER_EOF,
  REL_PEER_RESET,
  REL_BOARD_CLOSED,
  REL_BOARD_RESET,
  REL_STACK_ABORTED,
  REL_N,
} Release;

static const char *const release_names[] = {
  "closed-after-eof", "peer-reset", "board-closed", "board-reset", "stack-aborted",
};

/* One slot of the firmware's connection table, like the "struct
 * tcp_echoserver_struct" of ST's example; the PCB is lwIP's. */
typedef struct
{
  struct tcp_pcb *pcb; /* NULL once lwIP freed it or the firmware let go */
  guint64 id;
  char peer[IP4ADDR_STRLEN_MAX + 8];
  ConnState state;
  Release end; /* CLOSING: how the release is reported */
  Stm32Decoder *decoder;
  GByteArray *out;   /* encoded replies not yet given to tcp_write() */
  u32_t unacked;     /* received bytes not yet passed to tcp_recved() */
  u32_t last_rx;     /* sys_now() at the last received data */
  guint close_polls; /* polls spent in CLOSING */
  guint64 frames;
  guint64 bytes;
} Conn;

static struct
{
  FwConfig *config;
  struct tcp_pcb *listener;
  guint16 port;
  GPtrArray *conns; /* Conn, in accept order */
  guint64 last_id;
  guint64 accepted, rejected, released, pool_exhausted;
  guint64 released_how[REL_N];
} fw;

static err_t on_recv (void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err);
static err_t on_sent (void *arg, struct tcp_pcb *pcb, u16_t len);
static err_t on_poll (void *arg, struct tcp_pcb *pcb);
static void on_err (void *arg, err_t err);

/* --- events -------------------------------------------------------------- */

static JsonBuilder *
conn_event_new (Conn *c, const char *name)
{
  JsonBuilder *builder = sim_event_new (name);

  sim_event_add_int (builder, "id", (gint64) c->id);
  return builder;
}

static const char *
err_name (err_t err)
{
  switch (err)
    {
    case ERR_MEM:
      return "ERR_MEM";
    case ERR_ABRT:
      return "ERR_ABRT";
    case ERR_RST:
      return "ERR_RST";
    case ERR_CLSD:
      return "ERR_CLSD";
    case ERR_CONN:
      return "ERR_CONN";
    default:
      return "error";
    }
}

/* --- the connection table ------------------------------------------------ */

static void
conn_attach (Conn *c, struct tcp_pcb *pcb)
{
  c->pcb = pcb;
  tcp_arg (pcb, c);
  tcp_recv (pcb, on_recv);
  tcp_sent (pcb, on_sent);
  tcp_err (pcb, on_err);
  tcp_poll (pcb, on_poll, FW_POLL_TICKS);
}

/* The firmware lets go of the PCB: lwIP must not call back into a slot that
 * is about to be freed (ST's tcp_echoserver_connection_close does the same). */
static struct tcp_pcb *
conn_detach (Conn *c)
{
  struct tcp_pcb *pcb = c->pcb;

  if (pcb != NULL)
    {
      tcp_arg (pcb, NULL);
      tcp_recv (pcb, NULL);
      tcp_sent (pcb, NULL);
      tcp_err (pcb, NULL);
      tcp_poll (pcb, NULL, 0);
    }
  c->pcb = NULL;
  return pcb;
}

/* Frees the slot; @c is gone afterwards. The PCB must already be detached or
 * freed by lwIP. */
static void
conn_release (Conn *c, Release how, const char *detail)
{
  JsonBuilder *event = conn_event_new (c, "released");

  g_assert (c->pcb == NULL);
  g_ptr_array_remove (fw.conns, c);
  fw.released++;
  fw.released_how[how]++;
  sim_event_add_string (event, "how", release_names[how]);
  sim_event_add_int (event, "frames", (gint64) c->frames);
  sim_event_add_int (event, "slots_in_use", fw.conns->len);
  if (detail != NULL)
    sim_event_add_string (event, "detail", detail);
  sim_event_emit (event);
  stm32_decoder_free (c->decoder);
  g_byte_array_unref (c->out);
  g_free (c);
}

/* RST now. Inside a callback for this PCB, the callback must then return
 * ERR_ABRT. */
static void
conn_abort (Conn *c, Release how, const char *detail)
{
  struct tcp_pcb *pcb = conn_detach (c);

  if (pcb != NULL)
    tcp_abort (pcb);
  conn_release (c, how, detail);
}

/* Received data the firmware is done with goes back to lwIP, which reopens the
 * window; held back while the replies pile up (FW_OUT_HIGH). */
static void
conn_ack_received (Conn *c, gboolean all)
{
  while (c->unacked > 0 && (all || c->out->len < FW_OUT_HIGH))
    {
      u16_t n = (u16_t) MIN (c->unacked, G_MAXUINT16);

      tcp_recved (c->pcb, n);
      c->unacked -= n;
    }
}

/* Gives lwIP as much of the replies as its send buffer and heap take. */
static void
conn_push (Conn *c)
{
  guint taken = 0;

  while (taken < c->out->len)
    {
      /* At most one segment per tcp_write: it allocates all or nothing, and the
       * small heap (MEM_SIZE) may hold a segment but not a whole buffer. */
      u16_t n = (u16_t) MIN (MIN (c->out->len - taken, tcp_sndbuf (c->pcb)), TCP_MSS);

      if (n == 0 || tcp_sndqueuelen (c->pcb) >= TCP_SND_QUEUELEN)
        break;
      if (tcp_write (c->pcb, c->out->data + taken, n, TCP_WRITE_FLAG_COPY) != ERR_OK)
        break; /* ERR_MEM: retried from the sent or poll callback */
      taken += n;
    }
  if (taken == 0)
    return;
  g_byte_array_remove_range (c->out, 0, taken);
  tcp_output (c->pcb);
}

/* The FIN. TRUE if the slot was released. */
static gboolean
conn_try_close (Conn *c)
{
  struct tcp_pcb *pcb;

  conn_push (c);
  if (c->out->len > 0)
    return FALSE;
  /* Unacknowledged received data would make tcp_close() send a RST instead. */
  conn_ack_received (c, TRUE);
  pcb = conn_detach (c);
  if (tcp_close (pcb) != ERR_OK)
    {
      /* No memory for the FIN segment: keep the slot, retry from the poll. */
      conn_attach (c, pcb);
      return FALSE;
    }
  conn_release (c, c->end, NULL);
  return TRUE;
}

static gboolean
conn_close (Conn *c, Release how)
{
  c->state = CONN_CLOSING;
  c->end = how;
  return conn_try_close (c);
}

/* --- what the firmware does with what it receives ------------------------ */

static void
queue_reply (Conn *c, GBytes *frame)
{
  g_autoptr (GBytes) wire = NULL;
  g_autoptr (GError) error = NULL;

  if (!fw.config->echo)
    return;
  wire = stm32_frame_encode (fw.config->framing, fw.config->max_frame, frame, &error);
  if (wire == NULL)
    {
      sim_event_error ("connection %" G_GUINT64_FORMAT ": cannot send reply: %s", c->id,
                       error->message);
      return;
    }
  g_byte_array_append (c->out, g_bytes_get_data (wire, NULL), (guint) g_bytes_get_size (wire));
}

static void
emit_frame (Conn *c, GBytes *frame)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (frame, &size);
  JsonBuilder *event;

  if (fw.config->quiet)
    return;
  event = conn_event_new (c, "frame");
  sim_event_add_int (event, "n", (gint64) c->frames);
  sim_event_add_int (event, "bytes", (gint64) size);
  sim_event_add_payload (event, data, size, FW_EVENT_PAYLOAD_MAX);
  sim_event_emit_lossy (event);
}

/* ERR_ABRT if the connection was aborted, else ERR_OK. */
static err_t
handle_malformed (Conn *c, const GError *error)
{
  static const char *const actions[] = { "close", "abort", "ignore" };
  JsonBuilder *event = conn_event_new (c, "malformed");

  sim_event_add_string (event, "message", error->message);
  sim_event_add_string (event, "action", actions[fw.config->on_malformed]);
  sim_event_emit (event);
  switch (fw.config->on_malformed)
    {
    case FW_ON_MALFORMED_CLOSE:
      conn_close (c, REL_BOARD_CLOSED);
      break;
    case FW_ON_MALFORMED_ABORT:
      conn_abort (c, REL_BOARD_RESET, "malformed frame");
      return ERR_ABRT;
    case FW_ON_MALFORMED_IGNORE:
      /* The decoder stays failed after a violation; a fresh one resynchronises. */
      stm32_decoder_free (c->decoder);
      c->decoder = stm32_decoder_new (fw.config->framing, fw.config->max_frame);
      break;
    }
  return ERR_OK;
}

static err_t
handle_data (Conn *c, struct pbuf *p)
{
  g_autoptr (GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;
  gboolean ok = TRUE;

  c->last_rx = sys_now ();
  c->bytes += p->tot_len;
  c->unacked += p->tot_len;
  for (struct pbuf *q = p; q != NULL && ok; q = q->next)
    ok = stm32_decoder_feed (c->decoder, q->payload, q->len, frames, &error);
  pbuf_free (p);
  for (guint i = 0; i < frames->len; i++)
    {
      c->frames++;
      emit_frame (c, frames->pdata[i]);
      queue_reply (c, frames->pdata[i]);
    }
  if (!ok)
    return handle_malformed (c, error);
  conn_push (c);
  conn_ack_received (c, FALSE);
  return ERR_OK;
}

static err_t
handle_eof (Conn *c)
{
  gboolean leak = fw.config->mode == FW_MODE_LEAK;
  JsonBuilder *event = conn_event_new (c, "eof");

  sim_event_add_int (event, "pending", (gint64) stm32_decoder_pending (c->decoder));
  sim_event_add_string (event, "action", leak ? "ignore" : "close");
  sim_event_emit (event);
  if (leak)
    {
      /* The bug: nothing is done, so the PCB sits in CLOSE_WAIT. Replies
       * already queued still go out, as the stack would send them. */
      c->state = CONN_LEAKED;
      conn_push (c);
      return ERR_OK;
    }
  conn_close (c, REL_CLOSED_AFTER_EOF);
  return ERR_OK;
}

/* --- lwIP callbacks ------------------------------------------------------ */

static err_t
on_recv (void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
  Conn *c = arg;

  if (p == NULL)
    return c->state == CONN_OPEN ? handle_eof (c) : ERR_OK;
  if (err != ERR_OK)
    {
      /* Never happens with lwIP 2.1; the documented answer if it did. */
      pbuf_free (p);
      return err;
    }
  if (c->state != CONN_OPEN)
    {
      /* A closing firmware reads no more; the data is dropped, not refused. */
      c->unacked += p->tot_len;
      pbuf_free (p);
      conn_ack_received (c, TRUE);
      return ERR_OK;
    }
  return handle_data (c, p);
}

static err_t
on_sent (void *arg, struct tcp_pcb *pcb, u16_t len)
{
  Conn *c = arg;

  if (c->state == CONN_CLOSING)
    {
      conn_try_close (c);
      return ERR_OK;
    }
  conn_push (c);
  if (c->state == CONN_OPEN)
    conn_ack_received (c, FALSE);
  return ERR_OK;
}

static err_t
on_poll (void *arg, struct tcp_pcb *pcb)
{
  Conn *c = arg;
  guint idle = fw.config->idle_timeout_ms;

  switch (c->state)
    {
    case CONN_OPEN:
      if (idle > 0 && (u32_t) (sys_now () - c->last_rx) >= idle)
        {
          JsonBuilder *event = conn_event_new (c, "idle-timeout");

          sim_event_add_int (event, "ms", idle);
          sim_event_emit (event);
          conn_close (c, REL_BOARD_CLOSED);
          return ERR_OK;
        }
      conn_push (c);
      conn_ack_received (c, FALSE);
      break;
    case CONN_CLOSING:
      if (conn_try_close (c))
        break;
      if (++c->close_polls >= FW_CLOSE_POLLS_MAX)
        {
          conn_abort (c, REL_BOARD_RESET, "the last replies could not be sent in time");
          return ERR_ABRT;
        }
      break;
    case CONN_LEAKED:
      break;
    }
  return ERR_OK;
}

/* lwIP has already freed the PCB (RST from the PC, or lwIP gave up on it). */
static void
on_err (void *arg, err_t err)
{
  Conn *c = arg;
  g_autofree char *detail = NULL;

  if (c == NULL)
    return;
  c->pcb = NULL;
  if (err == ERR_RST)
    {
      conn_release (c, REL_PEER_RESET, NULL);
      return;
    }
  /* The firmware detaches before its own tcp_abort(), so ERR_ABRT here is
   * lwIP's doing: tcp_alloc() evicting the PCB for a new connection
   * (tcp_kill_prio), during input, or a retransmission or keep-alive
   * timeout, in the timers. */
  if (err == ERR_ABRT && board_context == BOARD_CONTEXT_INPUT)
    detail = g_strdup ("evicted by lwIP for a new connection");
  else if (err == ERR_ABRT && board_context == BOARD_CONTEXT_TIMER)
    detail = g_strdup ("timed out (retransmissions or keep-alive)");
  else
    detail = g_strdup (err_name (err));
  conn_release (c, REL_STACK_ABORTED, detail);
}

static void
format_peer (const struct tcp_pcb *pcb, char *buffer, gsize size)
{
  char ip[IP4ADDR_STRLEN_MAX];

  ip4addr_ntoa_r (ip_2_ip4 (&pcb->remote_ip), ip, sizeof ip);
  g_snprintf (buffer, size, "%s:%u", ip, pcb->remote_port);
}

/* lwIP 2.1 calls accept with no PCB when a SYN found the PCB pool empty (and
 * nothing to evict): the SYN is dropped and the PC's connect will time out. */
static void
emit_pool_exhausted (void)
{
  JsonBuilder *event = sim_event_new ("pool-exhausted");
  char ip[IP4ADDR_STRLEN_MAX] = "";
  guint used, errors;

  fw.pool_exhausted++;
  ip4addr_ntoa_r (ip_2_ip4 (ip_current_src_addr ()), ip, sizeof ip);
  board_stats_tcp_pcb_pool (&used, &errors);
  sim_event_add_string (event, "pool", "TCP_PCB");
  sim_event_add_string (event, "from", ip);
  sim_event_add_int (event, "used", used);
  sim_event_add_int (event, "err", errors);
  sim_event_emit (event);
}

static err_t
reject (struct tcp_pcb *pcb)
{
  gboolean abort = fw.config->when_full == FW_WHEN_FULL_ABORT;
  JsonBuilder *event = sim_event_new ("rejected");
  char peer[IP4ADDR_STRLEN_MAX + 8];

  format_peer (pcb, peer, sizeof peer);
  fw.rejected++;
  sim_event_add_string (event, "reason", "table-full");
  sim_event_add_string (event, "action", abort ? "abort" : "close");
  sim_event_add_string (event, "peer", peer);
  sim_event_add_int (event, "slots_in_use", fw.conns->len);
  sim_event_emit (event);
  /* A fresh PCB has no unread data, so tcp_close() sends a FIN, not a RST. */
  if (!abort && tcp_close (pcb) == ERR_OK)
    return ERR_OK;
  tcp_abort (pcb);
  return ERR_ABRT;
}

static err_t
on_accept (void *arg, struct tcp_pcb *pcb, err_t err)
{
  JsonBuilder *event;
  Conn *c;

  if (pcb == NULL || err != ERR_OK)
    {
      emit_pool_exhausted ();
      return ERR_VAL;
    }
  if (fw.config->slots > 0 && fw.conns->len >= fw.config->slots)
    return reject (pcb);
  if (fw.config->prio_min)
    tcp_setprio (pcb, TCP_PRIO_MIN);
  c = g_new0 (Conn, 1);
  c->id = ++fw.last_id;
  format_peer (pcb, c->peer, sizeof c->peer);
  c->decoder = stm32_decoder_new (fw.config->framing, fw.config->max_frame);
  c->out = g_byte_array_new ();
  c->last_rx = sys_now ();
  conn_attach (c, pcb);
  g_ptr_array_add (fw.conns, c);
  fw.accepted++;
  event = conn_event_new (c, "accepted");
  sim_event_add_string (event, "peer", c->peer);
  sim_event_add_int (event, "slots_in_use", fw.conns->len);
  sim_event_emit (event);
  return ERR_OK;
}

/* --- the listener -------------------------------------------------------- */

static gboolean
open_listener (GError **error)
{
  struct tcp_pcb *pcb = tcp_new ();
  struct tcp_pcb *listener;
  err_t err;

  if (pcb == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "tcp_new: no free TCP PCB for the listener");
      return FALSE;
    }
  /* See SO_REUSE in lwipopts.h: accepted PCBs inherit the option. */
  ip_set_option (pcb, SOF_REUSEADDR);
  err = tcp_bind (pcb, IP4_ADDR_ANY, fw.port);
  if (err != ERR_OK)
    {
      tcp_abort (pcb);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE, "tcp_bind to port %u: error %d",
                   fw.port, err);
      return FALSE;
    }
  listener = tcp_listen (pcb);
  if (listener == NULL)
    {
      tcp_abort (pcb);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "tcp_listen: no free TCP_PCB_LISTEN for the listener");
      return FALSE;
    }
  fw.listener = listener;
  fw.port = listener->local_port;
  tcp_accept (listener, on_accept);
  return TRUE;
}

/* SYNs to a port without a listener are answered with RST: "refused". */
static void
close_listener (void)
{
  if (fw.listener == NULL)
    return;
  tcp_close (fw.listener); /* always succeeds on a listener */
  fw.listener = NULL;
}

/* --- public -------------------------------------------------------------- */

void
fw_init (FwConfig *config)
{
  fw.config = config;
  fw.port = config->port;
  fw.conns = g_ptr_array_new ();
}

gboolean
fw_start (GError **error)
{
  return !fw.config->listen || open_listener (error);
}

gboolean
fw_set_listening (gboolean on, GError **error)
{
  fw.config->listen = on;
  if (!board_is_up ())
    return TRUE;
  if (!on)
    close_listener ();
  else if (fw.listener == NULL)
    return open_listener (error);
  return TRUE;
}

gboolean
fw_is_listening (void)
{
  return fw.listener != NULL;
}

guint16
fw_get_port (void)
{
  return fw.port;
}

void
fw_close_all (void)
{
  g_autoptr (GPtrArray) conns = g_ptr_array_copy (fw.conns, NULL, NULL);

  for (guint i = 0; i < conns->len; i++)
    {
      Conn *c = conns->pdata[i];

      if (c->state == CONN_OPEN)
        conn_close (c, REL_BOARD_CLOSED);
      else if (c->state == CONN_LEAKED)
        conn_close (c, REL_CLOSED_AFTER_EOF);
    }
}

void
fw_rst_all (void)
{
  while (fw.conns->len > 0)
    conn_abort (fw.conns->pdata[0], REL_BOARD_RESET, NULL);
}

void
fw_stop (void)
{
  if (fw.conns == NULL)
    return;
  fw_rst_all ();
  close_listener ();
  g_clear_pointer (&fw.conns, g_ptr_array_unref);
}

void
fw_set_slots (guint slots)
{
  fw.config->slots = slots;
}

void
fw_set_mode (FwMode mode)
{
  fw.config->mode = mode;
}

guint
fw_slots_in_use (void)
{
  return fw.conns->len;
}

static void
add_list (JsonBuilder *builder)
{
  static const char *const states[] = { "open", "closing", "leaked" };

  json_builder_set_member_name (builder, "list");
  json_builder_begin_array (builder);
  for (guint i = 0; i < fw.conns->len; i++)
    {
      Conn *c = fw.conns->pdata[i];

      json_builder_begin_object (builder);
      sim_event_add_int (builder, "id", (gint64) c->id);
      sim_event_add_string (builder, "peer", c->peer);
      sim_event_add_string (builder, "state", states[c->state]);
      sim_event_add_string (builder, "tcp_state",
                            c->pcb != NULL ? board_stats_tcp_state_name (c->pcb->state) : "");
      sim_event_add_int (builder, "frames", (gint64) c->frames);
      sim_event_add_int (builder, "bytes", (gint64) c->bytes);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

void
fw_add_status (JsonBuilder *builder)
{
  guint open = 0, leaked = 0;

  for (guint i = 0; i < fw.conns->len; i++)
    {
      const Conn *c = fw.conns->pdata[i];

      open += c->state == CONN_OPEN;
      leaked += c->state == CONN_LEAKED;
    }
  sim_event_add_int (builder, "port", fw.port);
  sim_event_add_bool (builder, "listening", fw.listener != NULL);
  sim_event_add_int (builder, "slots", fw.config->slots);
  sim_event_add_int (builder, "slots_in_use", fw.conns->len);
  sim_event_add_int (builder, "connections", open);
  sim_event_add_int (builder, "leaked", leaked);
  sim_event_add_string (builder, "mode", fw.config->mode == FW_MODE_LEAK ? "leak" : "good");
  sim_event_add_int (builder, "accepted", (gint64) fw.accepted);
  sim_event_add_int (builder, "rejected", (gint64) fw.rejected);
  sim_event_add_int (builder, "released", (gint64) fw.released);
  sim_event_add_int (builder, "pool_exhausted", (gint64) fw.pool_exhausted);
  json_builder_set_member_name (builder, "released_how");
  json_builder_begin_object (builder);
  for (guint how = 0; how < REL_N; how++)
    sim_event_add_int (builder, release_names[how], (gint64) fw.released_how[how]);
  json_builder_end_object (builder);
  add_list (builder);
}
