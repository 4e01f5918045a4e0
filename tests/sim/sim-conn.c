/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-conn.h"

#include <string.h>

#include "stm32-framer.h"
#include "sim-events.h"
#include "sim-listener.h"

#define SIM_READ_CHUNK 16384
/* Replies not yet taken by the kernel; past this the board stops reading, so
 * a PC that sends without reading cannot make it grow without bound. */
#define SIM_OUTBUF_HIGH (1024 * 1024)
/* Frames larger than this are reported by size only. */
#define SIM_EVENT_PAYLOAD_MAX 1024
/* A flood is encoded this far ahead of what the kernel took: far below
 * SIM_OUTBUF_HIGH, so a flood never stops the board reading requests. */
#define SIM_FLOOD_AHEAD (64 * 1024)
/* Refills and sends per wake-up while flooding: fast, yet other
 * connections and commands get their turn. */
#define SIM_FLOOD_BURST 16

typedef enum
{
  SIM_CONN_OPEN,     /* reading and answering */
  SIM_CONN_SILENT,   /* hung firmware */
  SIM_CONN_DRAINING, /* writing the last replies before an ending */
  SIM_CONN_LEAKED,   /* EOF ignored (leak firmware): held until a RST */
  SIM_CONN_FIN_WAIT, /* the board sent FIN; waiting for the PC's FIN or RST */
  SIM_CONN_RELEASED,
} SimConnState;

static const char *const state_names[] = {
  "open", "silent", "draining", "leaked", "fin-wait", "released",
};

/* What to do once the replies are written. */
typedef enum
{
  SIM_END_NONE,
  SIM_END_FIN,
  SIM_END_RST,
  SIM_END_CLOSE_AFTER_EOF,
} SimEnd;

/* Frames the firmware sends on its own, as fast as the socket takes them. */
typedef struct
{
  gboolean on;
  guint64 left;      /* payload bytes still to encode */
  gsize frame_size;  /* payload bytes per frame */
  guint64 seq;       /* the last frame's number, per connection across floods */
  guint64 frames;    /* this flood's frames so far */
  guint64 bytes;     /* and their payload bytes */
  guint64 wire;      /* and their bytes on the wire */
  gint64 started;    /* monotonic µs */
} SimFlood;

struct _SimConn
{
  guint64 id;
  GSocket *socket;
  char *peer;
  const SimConfig *config;
  SimConnReleasedFunc released;
  gpointer user_data;

  SimConnState state;
  SimEnd pending_end;
  SimRelease how;
  Stm32Decoder *decoder;
  GByteArray *outbuf;
  GSource *watch;
  GIOCondition watch_condition;
  guint timer;
  GQueue late;      /* LateReply: replies held back, in order (a serial firmware) */
  guint late_timer; /* at the first one's time */
  guint64 frames;
  guint64 bytes;
  SimFlood flood;
};

/* A reply the firmware sends only at @due (monotonic µs). */
typedef struct
{
  GBytes *wire;
  gint64 due;
} LateReply;

static void
late_reply_free (LateReply *late)
{
  g_bytes_unref (late->wire);
  g_free (late);
}

static void transition (SimConn *self, SimConnState state);
static void finish_draining (SimConn *self);

const char *
sim_release_to_string (SimRelease how)
{
  static const char *const names[] = {
    "closed-after-eof", "peer-reset", "board-closed", "board-reset", "restart",
  };

  g_return_val_if_fail (how < SIM_RELEASE_N, "unknown");
  return names[how];
}

SimConn *
sim_conn_new (guint64 id, GSocket *socket, const SimConfig *config, SimConnReleasedFunc released,
              gpointer user_data)
{
  SimConn *self = g_rc_box_new0 (SimConn);

  self->id = id;
  self->socket = g_object_ref (socket);
  g_socket_set_blocking (socket, FALSE);
  self->peer = sim_socket_describe_peer (socket);
  self->config = config;
  self->released = released;
  self->user_data = user_data;
  self->decoder = stm32_decoder_new (config->framing, config->max_frame);
  self->outbuf = g_byte_array_new ();
  return self;
}

static void
sim_conn_clear (SimConn *self)
{
  if (self->watch != NULL)
    g_source_destroy (self->watch);
  g_clear_pointer (&self->watch, g_source_unref);
  g_clear_handle_id (&self->timer, g_source_remove);
  g_clear_handle_id (&self->late_timer, g_source_remove);
  g_queue_clear_full (&self->late, (GDestroyNotify) late_reply_free);
  /* Only reached unreleased when the board is torn down without an ending. */
  if (!g_socket_is_closed (self->socket))
    {
      sim_socket_set_abortive (self->socket);
      g_socket_close (self->socket, NULL);
    }
  g_object_unref (self->socket);
  g_free (self->peer);
  stm32_decoder_free (self->decoder);
  g_byte_array_unref (self->outbuf);
}

SimConn *
sim_conn_ref (SimConn *self)
{
  return g_rc_box_acquire (self);
}

void
sim_conn_unref (SimConn *self)
{
  g_rc_box_release_full (self, (GDestroyNotify) sim_conn_clear);
}

guint64
sim_conn_get_id (SimConn *self)
{
  return self->id;
}

const char *
sim_conn_get_peer (SimConn *self)
{
  return self->peer;
}

guint64
sim_conn_get_frames (SimConn *self)
{
  return self->frames;
}

guint64
sim_conn_get_bytes (SimConn *self)
{
  return self->bytes;
}

const char *
sim_conn_get_state (SimConn *self)
{
  return state_names[self->state];
}

gboolean
sim_conn_is_active (SimConn *self)
{
  return self->state == SIM_CONN_OPEN || self->state == SIM_CONN_SILENT;
}

gboolean
sim_conn_is_leaked (SimConn *self)
{
  return self->state == SIM_CONN_LEAKED;
}

static JsonBuilder *
conn_event_new (SimConn *self, const char *name)
{
  JsonBuilder *builder = sim_event_new (name);

  sim_event_add_int (builder, "id", (gint64) self->id);
  return builder;
}

/* --- sockets and sources ------------------------------------------------- */

static gboolean on_socket_ready (GSocket *socket, GIOCondition condition, gpointer user_data);

/* The condition each state waits for. HUP and ERR are always watched: after a
 * RST, poll() reports them, and that is how a board that no longer reads still
 * learns that the PC reset the connection (lwIP frees the PCB on RST). */
static GIOCondition
wanted_condition (SimConn *self)
{
  GIOCondition condition = G_IO_HUP | G_IO_ERR;

  switch (self->state)
    {
    case SIM_CONN_OPEN:
      if (self->outbuf->len < SIM_OUTBUF_HIGH)
        condition |= G_IO_IN;
      if (self->outbuf->len > 0 || self->flood.on)
        condition |= G_IO_OUT;
      break;
    case SIM_CONN_DRAINING:
      condition |= G_IO_OUT;
      break;
    case SIM_CONN_FIN_WAIT:
      condition |= G_IO_IN;
      break;
    case SIM_CONN_SILENT:
    case SIM_CONN_LEAKED:
      break;
    case SIM_CONN_RELEASED:
      condition = 0;
      break;
    }
  return condition;
}

static void
update_watch (SimConn *self)
{
  GIOCondition condition = wanted_condition (self);

  if (self->watch != NULL && condition == self->watch_condition)
    return;
  if (self->watch != NULL)
    g_source_destroy (self->watch);
  g_clear_pointer (&self->watch, g_source_unref);
  self->watch_condition = condition;
  if (condition == 0)
    return;
  self->watch = g_socket_create_source (self->socket, condition, NULL);
  g_source_set_callback (self->watch, G_SOURCE_FUNC (on_socket_ready), self, NULL);
  g_source_set_name (self->watch, "stm32-sim connection");
  g_source_attach (self->watch, NULL);
}

static void
arm_timer (SimConn *self, guint ms, GSourceFunc func)
{
  g_clear_handle_id (&self->timer, g_source_remove);
  if (ms > 0)
    self->timer = g_timeout_add (ms, func, self);
}

static void
release (SimConn *self, SimRelease how, const char *detail)
{
  if (self->state == SIM_CONN_RELEASED)
    return;
  self->how = how;
  transition (self, SIM_CONN_RELEASED);
  self->released (self, how, detail, self->user_data);
}

/* Writes what the kernel takes now. FALSE if the connection was released. */
static gboolean
flush (SimConn *self)
{
  g_autoptr (GError) error = NULL;
  gssize n;

  if (self->outbuf->len == 0)
    return TRUE;
  n = g_socket_send (self->socket, (const char *) self->outbuf->data, self->outbuf->len, NULL,
                     &error);
  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return TRUE;
  if (n < 0)
    {
      release (self, SIM_RELEASE_PEER_RESET, error->message);
      return FALSE;
    }
  g_byte_array_remove_range (self->outbuf, 0, (guint) n);
  return TRUE;
}

/* --- flooding ------------------------------------------------------------ */

static void
flood_end (SimConn *self, gboolean complete)
{
  SimFlood *flood = &self->flood;
  JsonBuilder *event;

  if (!flood->on)
    return;
  flood->on = FALSE;
  event = conn_event_new (self, "flood-done");
  sim_event_add_int (event, "frames", (gint64) flood->frames);
  sim_event_add_int (event, "bytes", (gint64) flood->bytes);
  sim_event_add_int (event, "wire_bytes", (gint64) flood->wire);
  sim_event_add_int (event, "ms", (g_get_monotonic_time () - flood->started) / 1000);
  sim_event_add_bool (event, "complete", complete);
  sim_event_emit (event);
}

/* Encodes the next frames until SIM_FLOOD_AHEAD bytes wait for the kernel. */
static void
flood_refill (SimConn *self)
{
  SimFlood *flood = &self->flood;
  gsize size = flood->frame_size;
  g_autofree char *payload = NULL;

  if (flood->left == 0 || self->outbuf->len >= SIM_FLOOD_AHEAD)
    return;
  payload = g_malloc (size + 1);
  while (flood->left > 0 && self->outbuf->len < SIM_FLOOD_AHEAD)
    {
      g_autoptr (GBytes) frame = NULL;
      g_autoptr (GBytes) wire = NULL;
      g_autoptr (GError) error = NULL;
      int head = g_snprintf (payload, size + 1, "[%" G_GUINT64_FORMAT ",\"", flood->seq + 1);

      memset (payload + head, 'x', size - (gsize) head - 2);
      memcpy (payload + size - 2, "\"]", 2);
      frame = g_bytes_new (payload, size);
      wire = stm32_frame_encode (self->config->framing, self->config->max_frame, frame, &error);
      if (wire == NULL)
        {
          sim_event_error ("connection %" G_GUINT64_FORMAT ": cannot flood: %s", self->id,
                           error->message);
          flood->left = 0;
          return;
        }
      g_byte_array_append (self->outbuf, g_bytes_get_data (wire, NULL), g_bytes_get_size (wire));
      flood->seq++;
      flood->frames++;
      flood->bytes += size;
      flood->wire += g_bytes_get_size (wire);
      flood->left -= MIN (flood->left, size);
    }
}

/* Keeps the kernel fed while it takes more, a burst at a time. FALSE if the
 * connection was released. */
static gboolean
flood_send (SimConn *self)
{
  for (guint i = 0; i < SIM_FLOOD_BURST && self->flood.on; i++)
    {
      guint before;

      flood_refill (self);
      before = self->outbuf->len;
      if (!flush (self))
        return FALSE;
      if (self->flood.left == 0 && self->outbuf->len == 0)
        flood_end (self, TRUE);
      else if (self->outbuf->len == before)
        break;
    }
  return TRUE;
}

/* --- state machine ------------------------------------------------------- */

static gboolean
on_idle_timeout (gpointer user_data)
{
  SimConn *self = user_data;
  g_autoptr (SimConn) hold G_GNUC_UNUSED = sim_conn_ref (self);
  JsonBuilder *event = conn_event_new (self, "idle-timeout");

  self->timer = 0;
  sim_event_add_int (event, "ms", self->config->idle_timeout_ms);
  sim_event_emit (event);
  sim_conn_close (self);
  return G_SOURCE_REMOVE;
}

/* Ends the wait for the PC's reply to our FIN, or for room to write the last
 * replies: a board does not keep a dead PCB forever. */
static gboolean
on_wait_bound (gpointer user_data)
{
  SimConn *self = user_data;
  g_autoptr (SimConn) hold G_GNUC_UNUSED = sim_conn_ref (self);

  self->timer = 0;
  if (self->state == SIM_CONN_DRAINING)
    {
      g_byte_array_set_size (self->outbuf, 0);
      finish_draining (self);
    }
  else
    release (self, SIM_RELEASE_BOARD_CLOSED, "no answer to the board's FIN in time");
  return G_SOURCE_REMOVE;
}

/* The end we were draining for, now that the replies are written. */
static void
finish_draining (SimConn *self)
{
  switch (self->pending_end)
    {
    case SIM_END_FIN:
      transition (self, SIM_CONN_FIN_WAIT);
      break;
    case SIM_END_RST:
      release (self, SIM_RELEASE_BOARD_RESET, NULL);
      break;
    case SIM_END_CLOSE_AFTER_EOF:
      release (self, SIM_RELEASE_CLOSED_AFTER_EOF, NULL);
      break;
    case SIM_END_NONE:
      g_assert_not_reached ();
    }
}

/* Entry actions of each state; also re-evaluates what to watch. */
static void
transition (SimConn *self, SimConnState state)
{
  self->state = state;
  if (state != SIM_CONN_OPEN)
    flood_end (self, FALSE);
  switch (state)
    {
    case SIM_CONN_OPEN:
      arm_timer (self, self->config->idle_timeout_ms, on_idle_timeout);
      break;
    case SIM_CONN_SILENT:
    case SIM_CONN_LEAKED:
      g_clear_handle_id (&self->timer, g_source_remove);
      break;
    case SIM_CONN_DRAINING:
      if (self->outbuf->len == 0)
        {
          finish_draining (self);
          return;
        }
      if (self->timer == 0)
        arm_timer (self, self->config->fin_wait_ms, on_wait_bound);
      break;
    case SIM_CONN_FIN_WAIT:
      g_byte_array_set_size (self->outbuf, 0);
      g_socket_shutdown (self->socket, FALSE, TRUE, NULL);
      arm_timer (self, self->config->fin_wait_ms, on_wait_bound);
      break;
    case SIM_CONN_RELEASED:
      g_clear_handle_id (&self->timer, g_source_remove);
      if (self->how == SIM_RELEASE_BOARD_RESET || self->how == SIM_RELEASE_RESTART)
        sim_socket_set_abortive (self->socket);
      g_socket_close (self->socket, NULL);
      break;
    }
  update_watch (self);
}

/* Writes the replies first, then ends as @end. */
static void
end_after_replies (SimConn *self, SimEnd end)
{
  g_clear_handle_id (&self->timer, g_source_remove);
  self->pending_end = end;
  transition (self, SIM_CONN_DRAINING);
}

static void
go_silent (SimConn *self)
{
  JsonBuilder *event = conn_event_new (self, "blackhole");

  sim_event_add_bool (event, "on", TRUE);
  sim_event_add_int (event, "frames", (gint64) self->frames);
  sim_event_emit (event);
  transition (self, SIM_CONN_SILENT);
}

/* --- what the firmware does with what it reads ---------------------------- */

static gboolean on_late_timer (gpointer user_data);

static void
arm_late_timer (SimConn *self)
{
  LateReply *first = g_queue_peek_head (&self->late);
  gint64 now = g_get_monotonic_time ();

  if (first != NULL && self->late_timer == 0)
    self->late_timer = g_timeout_add (
        first->due > now ? (guint) ((first->due - now + 999) / 1000) : 0, on_late_timer, self);
}

static gboolean
on_late_timer (gpointer user_data)
{
  SimConn *self = user_data;
  g_autoptr (SimConn) hold G_GNUC_UNUSED = sim_conn_ref (self);
  gint64 now = g_get_monotonic_time ();
  LateReply *late;

  self->late_timer = 0;
  while ((late = g_queue_peek_head (&self->late)) != NULL && late->due <= now)
    {
      g_queue_pop_head (&self->late);
      g_byte_array_append (self->outbuf, g_bytes_get_data (late->wire, NULL),
                           g_bytes_get_size (late->wire));
      late_reply_free (late);
    }
  if (self->state == SIM_CONN_OPEN && flush (self))
    update_watch (self);
  if (self->state != SIM_CONN_RELEASED)
    arm_late_timer (self);
  return G_SOURCE_REMOVE;
}

static void
queue_reply (SimConn *self, GBytes *request)
{
  guint delay_ms;
  g_autoptr (GBytes) reply = sim_reply_answer (self->config->reply, request, &delay_ms);
  g_autoptr (GBytes) wire = NULL;
  g_autoptr (GError) error = NULL;

  if (reply == NULL)
    return;
  wire = stm32_frame_encode (self->config->framing, self->config->max_frame, reply, &error);
  if (wire == NULL)
    {
      sim_event_error ("connection %" G_GUINT64_FORMAT ": cannot send reply: %s", self->id,
                       error->message);
      return;
    }
  /* One request at a time: a late reply holds back the ones after it. */
  if (delay_ms > 0 || !g_queue_is_empty (&self->late))
    {
      LateReply *late = g_new0 (LateReply, 1);

      late->wire = g_steal_pointer (&wire);
      late->due = g_get_monotonic_time () + (gint64) delay_ms * 1000;
      g_queue_push_tail (&self->late, late);
      arm_late_timer (self);
      return;
    }
  g_byte_array_append (self->outbuf, g_bytes_get_data (wire, NULL), g_bytes_get_size (wire));
}

/* FALSE once the connection takes no more frames. */
static gboolean
handle_frame (SimConn *self, GBytes *frame)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (frame, &size);
  const SimConfig *config = self->config;

  self->frames++;
  if (!config->quiet)
    {
      JsonBuilder *event = conn_event_new (self, "frame");

      sim_event_add_int (event, "n", (gint64) self->frames);
      sim_event_add_int (event, "bytes", (gint64) size);
      sim_event_add_payload (event, data, size, SIM_EVENT_PAYLOAD_MAX);
      sim_event_emit_lossy (event);
    }
  queue_reply (self, frame);
  if (config->rst_after >= 0 && self->frames == (guint64) config->rst_after)
    end_after_replies (self, SIM_END_RST);
  else if (config->close_after >= 0 && self->frames == (guint64) config->close_after)
    end_after_replies (self, SIM_END_FIN);
  else if (config->blackhole_after >= 0 && self->frames == (guint64) config->blackhole_after)
    {
      if (flush (self))
        go_silent (self);
    }
  return self->state == SIM_CONN_OPEN;
}

static void
handle_malformed (SimConn *self, const GError *error)
{
  static const char *const actions[] = { "close", "rst", "ignore" };
  JsonBuilder *event = conn_event_new (self, "malformed");

  sim_event_add_string (event, "message", error->message);
  sim_event_add_string (event, "action", actions[self->config->on_malformed]);
  sim_event_emit (event);
  switch (self->config->on_malformed)
    {
    case SIM_ON_MALFORMED_CLOSE:
      end_after_replies (self, SIM_END_FIN);
      break;
    case SIM_ON_MALFORMED_RST:
      end_after_replies (self, SIM_END_RST);
      break;
    case SIM_ON_MALFORMED_IGNORE:
      /* The decoder stays failed after a violation; a fresh one resynchronises. */
      stm32_decoder_free (self->decoder);
      self->decoder = stm32_decoder_new (self->config->framing, self->config->max_frame);
      break;
    }
}

static void
handle_data (SimConn *self, const guint8 *data, gsize len)
{
  g_autoptr (GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;
  gboolean ok;

  self->bytes += len;
  arm_timer (self, self->config->idle_timeout_ms, on_idle_timeout);
  ok = stm32_decoder_feed (self->decoder, data, len, frames, &error);
  /* Frames after a connection's last one were received by the stack but never
   * read by the firmware: they are dropped, as on the board. */
  for (guint i = 0; i < frames->len; i++)
    if (!handle_frame (self, frames->pdata[i]))
      return;
  if (!ok)
    handle_malformed (self, error);
  if (self->state == SIM_CONN_OPEN && flush (self))
    update_watch (self);
}

static void
handle_eof (SimConn *self)
{
  gboolean leak = self->config->mode == SIM_MODE_LEAK;
  JsonBuilder *event = conn_event_new (self, "eof");

  sim_event_add_int (event, "pending", (gint64) stm32_decoder_pending (self->decoder));
  sim_event_add_string (event, "action", leak ? "ignore" : "close");
  sim_event_emit (event);
  if (!leak)
    {
      end_after_replies (self, SIM_END_CLOSE_AFTER_EOF);
      return;
    }
  /* The leaking firmware sent what it had, then never looks at the socket again. */
  if (flush (self))
    transition (self, SIM_CONN_LEAKED);
}

static void
read_some (SimConn *self)
{
  guint8 buffer[SIM_READ_CHUNK];
  g_autoptr (GError) error = NULL;
  gssize n = g_socket_receive (self->socket, (char *) buffer, sizeof buffer, NULL, &error);
  gboolean fin_wait = self->state == SIM_CONN_FIN_WAIT;

  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return;
  if (n < 0)
    release (self, fin_wait ? SIM_RELEASE_BOARD_CLOSED : SIM_RELEASE_PEER_RESET, error->message);
  else if (n == 0 && fin_wait)
    release (self, SIM_RELEASE_BOARD_CLOSED, NULL);
  else if (n == 0)
    handle_eof (self);
  else if (!fin_wait)
    handle_data (self, buffer, (gsize) n);
}

static gboolean
on_socket_ready (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  SimConn *self = user_data;
  g_autoptr (SimConn) hold G_GNUC_UNUSED = sim_conn_ref (self);

  switch (self->state)
    {
    case SIM_CONN_OPEN:
      if ((condition & G_IO_OUT) && !(self->flood.on ? flood_send (self) : flush (self)))
        break;
      if (condition & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        read_some (self);
      break;
    case SIM_CONN_DRAINING:
      if (flush (self) && self->outbuf->len == 0)
        finish_draining (self);
      break;
    case SIM_CONN_FIN_WAIT:
      read_some (self);
      break;
    case SIM_CONN_SILENT:
    case SIM_CONN_LEAKED:
      release (self, SIM_RELEASE_PEER_RESET, "reset by the PC");
      break;
    case SIM_CONN_RELEASED:
      break;
    }
  if (self->state != SIM_CONN_RELEASED)
    update_watch (self);
  return G_SOURCE_CONTINUE;
}

/* --- what the board's operator does -------------------------------------- */

void
sim_conn_start (SimConn *self)
{
  const SimConfig *config = self->config;

  transition (self, SIM_CONN_OPEN);
  if (config->rst_after == 0)
    release (self, SIM_RELEASE_BOARD_RESET, NULL);
  else if (config->close_after == 0)
    transition (self, SIM_CONN_FIN_WAIT);
  else if (config->blackhole_after == 0)
    go_silent (self);
  else if (config->flood_bytes > 0)
    sim_conn_flood (self, config->flood_bytes, config->flood_frame_size);
}

gboolean
sim_conn_flood (SimConn *self, guint64 bytes, gsize frame_size)
{
  g_return_val_if_fail (bytes > 0, FALSE);
  g_return_val_if_fail (frame_size >= SIM_FLOOD_FRAME_MIN, FALSE);

  if (self->state != SIM_CONN_OPEN)
    return FALSE;
  flood_end (self, FALSE);
  self->flood.on = TRUE;
  self->flood.left = bytes;
  self->flood.frame_size = frame_size;
  self->flood.frames = self->flood.bytes = self->flood.wire = 0;
  self->flood.started = g_get_monotonic_time ();
  update_watch (self);
  return TRUE;
}

void
sim_conn_set_silent (SimConn *self, gboolean silent)
{
  if (silent && self->state == SIM_CONN_OPEN)
    {
      if (flush (self))
        go_silent (self);
    }
  else if (!silent && self->state == SIM_CONN_SILENT)
    {
      JsonBuilder *event = conn_event_new (self, "blackhole");

      sim_event_add_bool (event, "on", FALSE);
      sim_event_add_int (event, "frames", (gint64) self->frames);
      sim_event_emit (event);
      transition (self, SIM_CONN_OPEN);
    }
}

void
sim_conn_close (SimConn *self)
{
  switch (self->state)
    {
    case SIM_CONN_OPEN:
      end_after_replies (self, SIM_END_FIN);
      break;
    case SIM_CONN_SILENT:
      transition (self, SIM_CONN_FIN_WAIT);
      break;
    case SIM_CONN_LEAKED:
      release (self, SIM_RELEASE_CLOSED_AFTER_EOF, NULL);
      break;
    case SIM_CONN_DRAINING:
    case SIM_CONN_FIN_WAIT:
    case SIM_CONN_RELEASED:
      break;
    }
}

void
sim_conn_settle (SimConn *self)
{
  if ((self->state == SIM_CONN_LEAKED || self->state == SIM_CONN_SILENT) &&
      g_socket_condition_check (self->socket, G_IO_HUP | G_IO_ERR) != 0)
    release (self, SIM_RELEASE_PEER_RESET, "reset by the PC");
}

void
sim_conn_abort (SimConn *self, SimRelease how)
{
  release (self, how, NULL);
}
