/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-board.h"

#include "sim-conn.h"
#include "sim-events.h"
#include "sim-listener.h"

/* Accepts per wake-up, so a flood of connects cannot starve the rest. */
#define SIM_ACCEPT_BURST 16
/* Retry interval when the listener cannot be (re)opened, or accept fails for
 * lack of resources (EMFILE): readiness would otherwise be reported at once again. */
#define SIM_RETRY_MS 100

struct _SimBoard
{
  SimConfig *config;
  GInetAddress *address;
  guint16 port;
  SimListener *listener; /* NULL while refusing */
  guint listen_timer;    /* reopens the listener, or resumes accepting */
  GPtrArray *conns;      /* SimConn, each holding a slot; in id order */
  guint64 last_id;
  guint64 accepted;
  guint64 rejected;
  guint slots_in_use_max; /* the most slots ever taken at once */
  guint64 released;
  guint64 released_how[SIM_RELEASE_N];
};

static gboolean slots_full (SimBoard *self);
static void update_admission (SimBoard *self);

static void
emit_with_slots (SimBoard *self, JsonBuilder *event)
{
  sim_event_add_int (event, "slots_in_use", self->conns->len);
  sim_event_emit (event);
}

/* --- slots ------------------------------------------------------------- */

static void
on_conn_released (SimConn *conn, SimRelease how, const char *detail, gpointer user_data)
{
  SimBoard *self = user_data;
  JsonBuilder *event = sim_event_new ("released");

  self->released++;
  self->released_how[how]++;
  sim_event_add_int (event, "id", (gint64) sim_conn_get_id (conn));
  sim_event_add_string (event, "how", sim_release_to_string (how));
  sim_event_add_int (event, "frames", (gint64) sim_conn_get_frames (conn));
  if (detail != NULL)
    sim_event_add_string (event, "detail", detail);
  /* Callers hold their own reference, so this does not free @conn under them. */
  g_ptr_array_remove (self->conns, conn);
  emit_with_slots (self, event);
  update_admission (self);
}

/* A reference to every connection, so that walking them survives their release. */
static GPtrArray *
snapshot (SimBoard *self)
{
  GPtrArray *conns = g_ptr_array_new_full (self->conns->len, (GDestroyNotify) sim_conn_unref);

  for (guint i = 0; i < self->conns->len; i++)
    g_ptr_array_add (conns, sim_conn_ref (self->conns->pdata[i]));
  return conns;
}

static gboolean
slots_full (SimBoard *self)
{
  return self->config->slots > 0 && self->conns->len >= self->config->slots;
}

static void
admit (SimBoard *self, GSocket *socket)
{
  g_autoptr (SimConn) conn =
      sim_conn_new (++self->last_id, socket, self->config, on_conn_released, self);
  JsonBuilder *event = sim_event_new ("accepted");

  self->accepted++;
  g_ptr_array_add (self->conns, sim_conn_ref (conn));
  self->slots_in_use_max = MAX (self->slots_in_use_max, self->conns->len);
  sim_event_add_int (event, "id", (gint64) self->last_id);
  sim_event_add_string (event, "peer", sim_conn_get_peer (conn));
  emit_with_slots (self, event);
  sim_conn_start (conn);
}

/* lwIP with its netconn pool empty completes the handshake, then aborts. */
static void
reject (SimBoard *self, GSocket *socket)
{
  g_autofree char *peer = sim_socket_describe_peer (socket);
  JsonBuilder *event = sim_event_new ("rejected");

  self->rejected++;
  sim_event_add_string (event, "reason", "table-full");
  sim_event_add_string (event, "action", "rst");
  sim_event_add_string (event, "peer", peer);
  emit_with_slots (self, event);
  sim_socket_set_abortive (socket);
  g_socket_close (socket, NULL);
}

/* --- listener ------------------------------------------------------------ */

static gboolean
on_listen_timer (gpointer user_data)
{
  SimBoard *self = user_data;

  self->listen_timer = 0;
  update_admission (self);
  return G_SOURCE_REMOVE;
}

/* A RST the kernel took before the SYN that queued a new connection is
 * handled first, as lwIP handles segments in order: otherwise a leaked slot
 * freed by the PC just before it connected again would still look taken to
 * the newcomer, depending only on which of our sources the loop runs first. */
static void
settle_resets (SimBoard *self)
{
  g_autoptr (GPtrArray) conns = snapshot (self);

  for (guint i = 0; i < conns->len; i++)
    sim_conn_settle (conns->pdata[i]);
}

static void
on_listener_ready (SimListener *listener, gpointer user_data)
{
  SimBoard *self = user_data;

  settle_resets (self);
  for (guint i = 0; i < SIM_ACCEPT_BURST && self->listener != NULL; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GSocket) socket = NULL;

      /* With --when-full drop, connections already in the accept queue wait
       * there, as on a board that has no PCB to give them. */
      if (slots_full (self) && self->config->when_full == SIM_WHEN_FULL_DROP)
        break;
      socket = sim_listener_accept (listener, &error);
      if (socket == NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        break;
      if (socket == NULL)
        {
          sim_event_error ("accept: %s", error->message);
          sim_listener_set_watching (listener, FALSE);
          self->listen_timer = g_timeout_add (SIM_RETRY_MS, on_listen_timer, self);
          return;
        }
      if (slots_full (self))
        reject (self, socket);
      else
        admit (self, socket);
    }
  update_admission (self);
}

static gboolean
open_listener (SimBoard *self, GError **error)
{
  self->listener = sim_listener_new (self->address, self->port, self->config->backlog,
                                     on_listener_ready, self, error);
  if (self->listener == NULL)
    return FALSE;
  self->port = sim_listener_get_port (self->listener);
  return TRUE;
}

static void
set_dropping (SimBoard *self, gboolean dropping)
{
  g_autoptr (GError) error = NULL;

  if (dropping == sim_listener_get_dropping (self->listener))
    return;
  if (!sim_listener_set_dropping (self->listener, dropping, &error))
    sim_event_error ("%s", error->message);
  else
    emit_with_slots (self, sim_event_new (dropping ? "drop-on" : "drop-off"));
}

/* Makes the listener match the table: accepting while there is room (or
 * while full rejects with RST); with --when-full drop and a full table, not
 * accepting and dropping SYNs. Also reopens a listener after a refusal. */
static void
update_admission (SimBoard *self)
{
  gboolean drop = slots_full (self) && self->config->when_full == SIM_WHEN_FULL_DROP;
  g_autoptr (GError) error = NULL;
  JsonBuilder *event;

  if (self->listen_timer != 0)
    return;
  if (self->listener == NULL)
    {
      if (!open_listener (self, &error))
        {
          sim_event_error ("cannot listen on port %u: %s", self->port, error->message);
          self->listen_timer = g_timeout_add (SIM_RETRY_MS, on_listen_timer, self);
          return;
        }
      event = sim_event_new ("listener-open");
      sim_event_add_int (event, "port", self->port);
      emit_with_slots (self, event);
    }
  set_dropping (self, drop);
  sim_listener_set_watching (self->listener, !drop);
}

/* --- public -------------------------------------------------------------- */

/* Without a listener the kernel answers SYNs with RST, as lwIP does; the
 * connections waiting in the accept queue are reset too. */
static void
close_listener_for (SimBoard *self, guint ms)
{
  g_clear_pointer (&self->listener, sim_listener_free);
  g_clear_handle_id (&self->listen_timer, g_source_remove);
  self->listen_timer = g_timeout_add (ms, on_listen_timer, self);
}

static void
emit_refusing (SimBoard *self, guint ms)
{
  JsonBuilder *event = sim_event_new ("refusing");

  sim_event_add_int (event, "port", self->port);
  sim_event_add_int (event, "ms", ms);
  sim_event_emit (event);
}

SimBoard *
sim_board_new (SimConfig *config, GError **error)
{
  g_autoptr (SimBoard) self = g_new0 (SimBoard, 1);
  JsonBuilder *event;

  self->config = config;
  self->conns = g_ptr_array_new_with_free_func ((GDestroyNotify) sim_conn_unref);
  self->port = config->port;
  self->address = g_inet_address_new_from_string (config->listen_address);
  if (self->address == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "--listen: “%s” is not an IPv4 or IPv6 address", config->listen_address);
      return NULL;
    }
  /* Bound first even when refusing, so the port is known and stays ours. */
  if (!open_listener (self, error))
    return NULL;
  if (config->refuse_for_ms > 0)
    close_listener_for (self, config->refuse_for_ms);
  /* Only now: a test connects as soon as it reads this. */
  event = sim_event_new ("listening");
  sim_event_add_int (event, "port", self->port);
  sim_event_add_bool (event, "open", self->listener != NULL);
  sim_event_emit (event);
  if (config->refuse_for_ms > 0)
    emit_refusing (self, config->refuse_for_ms);
  else
    update_admission (self);
  return g_steal_pointer (&self);
}

static void
abort_all (SimBoard *self, SimRelease how)
{
  g_autoptr (GPtrArray) conns = snapshot (self);

  for (guint i = 0; i < conns->len; i++)
    sim_conn_abort (conns->pdata[i], how);
}

void
sim_board_free (SimBoard *self)
{
  if (self == NULL)
    return;
  if (self->conns != NULL)
    abort_all (self, SIM_RELEASE_BOARD_RESET);
  g_clear_handle_id (&self->listen_timer, g_source_remove);
  g_clear_pointer (&self->listener, sim_listener_free);
  g_clear_pointer (&self->conns, g_ptr_array_unref);
  g_clear_object (&self->address);
  g_free (self);
}

gboolean
sim_board_refuse (SimBoard *self, guint ms, GError **error)
{
  if (ms == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "refuse: MS must be > 0");
      return FALSE;
    }
  close_listener_for (self, ms);
  emit_refusing (self, ms);
  return TRUE;
}

void
sim_board_restart (SimBoard *self)
{
  JsonBuilder *event;

  abort_all (self, SIM_RELEASE_RESTART);
  /* A rebooted stack has forgotten the connections in its accept queue too. */
  if (self->listener != NULL)
    {
      g_clear_pointer (&self->listener, sim_listener_free);
      g_clear_handle_id (&self->listen_timer, g_source_remove);
    }
  event = sim_event_new ("restart");
  sim_event_add_int (event, "port", self->port);
  sim_event_emit (event);
  update_admission (self);
}

void
sim_board_set_blackhole (SimBoard *self, gboolean on)
{
  g_autoptr (GPtrArray) conns = snapshot (self);

  for (guint i = 0; i < conns->len; i++)
    sim_conn_set_silent (conns->pdata[i], on);
}

void
sim_board_close_all (SimBoard *self)
{
  g_autoptr (GPtrArray) conns = snapshot (self);

  for (guint i = 0; i < conns->len; i++)
    sim_conn_close (conns->pdata[i]);
}

void
sim_board_rst_all (SimBoard *self)
{
  abort_all (self, SIM_RELEASE_BOARD_RESET);
}

void
sim_board_set_slots (SimBoard *self, guint slots)
{
  self->config->slots = slots;
  update_admission (self);
}

void
sim_board_set_mode (SimBoard *self, SimMode mode)
{
  self->config->mode = mode;
}

gboolean
sim_board_flood (SimBoard *self, guint64 bytes, gsize frame_size, GError **error)
{
  g_autoptr (GPtrArray) conns = snapshot (self);
  guint flooding = 0;

  if (bytes == 0 || frame_size < SIM_FLOOD_FRAME_MIN || frame_size > self->config->max_frame)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "flood: BYTES must be > 0 and SIZE %u to %" G_GSIZE_FORMAT " (--max-frame)",
                   SIM_FLOOD_FRAME_MIN, self->config->max_frame);
      return FALSE;
    }
  for (guint i = 0; i < conns->len; i++)
    flooding += sim_conn_flood (conns->pdata[i], bytes, frame_size);
  if (flooding == 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                           "flood: no open connection");
      return FALSE;
    }
  return TRUE;
}

static void
add_connection_list (SimBoard *self, JsonBuilder *builder)
{
  json_builder_set_member_name (builder, "list");
  json_builder_begin_array (builder);
  for (guint i = 0; i < self->conns->len; i++)
    {
      SimConn *conn = self->conns->pdata[i];

      json_builder_begin_object (builder);
      sim_event_add_int (builder, "id", (gint64) sim_conn_get_id (conn));
      sim_event_add_string (builder, "peer", sim_conn_get_peer (conn));
      sim_event_add_string (builder, "state", sim_conn_get_state (conn));
      sim_event_add_int (builder, "frames", (gint64) sim_conn_get_frames (conn));
      sim_event_add_int (builder, "bytes", (gint64) sim_conn_get_bytes (conn));
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

void
sim_board_emit_status (SimBoard *self)
{
  JsonBuilder *event = sim_event_new ("status");
  guint active = 0, leaked = 0;

  for (guint i = 0; i < self->conns->len; i++)
    {
      active += sim_conn_is_active (self->conns->pdata[i]);
      leaked += sim_conn_is_leaked (self->conns->pdata[i]);
    }
  sim_event_add_int (event, "port", self->port);
  sim_event_add_bool (event, "listening", self->listener != NULL);
  sim_event_add_bool (event, "dropping",
                      self->listener != NULL && sim_listener_get_dropping (self->listener));
  sim_event_add_int (event, "slots", self->config->slots);
  sim_event_add_int (event, "slots_in_use", self->conns->len);
  sim_event_add_int (event, "slots_in_use_max", self->slots_in_use_max);
  sim_event_add_int (event, "connections", active);
  sim_event_add_int (event, "leaked", leaked);
  sim_event_add_string (event, "mode", self->config->mode == SIM_MODE_LEAK ? "leak" : "good");
  sim_event_add_int (event, "accepted", (gint64) self->accepted);
  sim_event_add_int (event, "rejected", (gint64) self->rejected);
  sim_event_add_int (event, "released", (gint64) self->released);
  json_builder_set_member_name (event, "released_how");
  json_builder_begin_object (event);
  for (SimRelease how = 0; how < SIM_RELEASE_N; how++)
    sim_event_add_int (event, sim_release_to_string (how), (gint64) self->released_how[how]);
  json_builder_end_object (event);
  add_connection_list (self, event);
  sim_event_emit (event);
}

void
sim_boards_emit_status (SimBoard **boards, guint n)
{
  JsonBuilder *event;
  guint64 totals[6] = { 0 }, how[SIM_RELEASE_N] = { 0 };
  guint listening = 0;

  if (n == 1)
    {
      sim_board_emit_status (boards[0]);
      return;
    }
  for (guint b = 0; b < n; b++)
    {
      SimBoard *self = boards[b];

      listening += self->listener != NULL;
      totals[0] += self->conns->len;
      for (guint i = 0; i < self->conns->len; i++)
        {
          totals[1] += sim_conn_is_active (self->conns->pdata[i]);
          totals[2] += sim_conn_is_leaked (self->conns->pdata[i]);
        }
      totals[3] += self->accepted;
      totals[4] += self->rejected;
      totals[5] += self->released;
      for (SimRelease r = 0; r < SIM_RELEASE_N; r++)
        how[r] += self->released_how[r];
    }
  event = sim_event_new ("status");
  sim_event_add_int (event, "boards", n);
  sim_event_add_int (event, "port", boards[0]->port);
  sim_event_add_int (event, "listening", listening);
  sim_event_add_int (event, "slots", boards[0]->config->slots);
  sim_event_add_int (event, "slots_in_use", (gint64) totals[0]);
  sim_event_add_int (event, "connections", (gint64) totals[1]);
  sim_event_add_int (event, "leaked", (gint64) totals[2]);
  sim_event_add_int (event, "accepted", (gint64) totals[3]);
  sim_event_add_int (event, "rejected", (gint64) totals[4]);
  sim_event_add_int (event, "released", (gint64) totals[5]);
  json_builder_set_member_name (event, "released_how");
  json_builder_begin_object (event);
  for (SimRelease r = 0; r < SIM_RELEASE_N; r++)
    sim_event_add_int (event, sim_release_to_string (r), (gint64) how[r]);
  json_builder_end_object (event);
  sim_event_emit (event);
}
