/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stm32Link, the GObject: its properties, and the state machine that keeps
 * one board's connection — attempts, their ending and classification,
 * retries with backoff, Connect/Disconnect, Autoconnect and network changes.
 * The socket itself, transactions, watchdogs and raw mode live in the
 * stm32-link-*.c files beside it (stm32-link-private.h).
 */
#include "stm32-link-private.h"

#include "stm32-enum-types.h"
#include "stm32-error.h"
#include "stm32-socket-options.h"

G_DEFINE_FINAL_TYPE (Stm32Link, stm32_link, G_TYPE_OBJECT)

GParamSpec *stm32_link_props[N_LINK_PROPS];

guint stm32_link_signals[N_LINK_SIGNALS];

static void link_start_attempt (Stm32Link *self);

/* ---- small helpers ------------------------------------------------------ */

static char *
address_to_string (GSocketAddress *address)
{
  return address ? g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address)) : NULL;
}

GError *
stm32_link_error_new (Stm32Link *self, Stm32EndReason reason, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  return g_error_new (STM32_ERROR, stm32_end_reason_to_error_code (reason), "%s:%u: %s",
                      self->config->host, self->config->port, message);
}

/* A notify per counter, four or more per transaction, each through GObject's
 * signal machinery to the export that publishes them at most every
 * STM32_COUNTER_PUBLISH_MS anyway, was a third of stm32d's instructions per
 * channel transaction. */
static void
link_counters_changed (Stm32Link *self)
{
  if (self->counter_holds > 0)
    self->counters_changed_held = TRUE;
  else
    g_signal_emit (self, stm32_link_signals[SIGNAL_COUNTERS_CHANGED], 0);
}

void
stm32_link_add_counter (Stm32Link *self, guint64 *counter, guint64 amount)
{
  *counter += amount;
  link_counters_changed (self);
}

void
stm32_link_hold_counters (Stm32Link *self)
{
  self->counter_holds++;
}

void
stm32_link_release_counters (Stm32Link *self)
{
  g_return_if_fail (self->counter_holds > 0);
  if (--self->counter_holds > 0 || !self->counters_changed_held)
    return;
  self->counters_changed_held = FALSE;
  link_counters_changed (self);
}

void
stm32_link_count_round_trip (Stm32Link *self, gint64 round_trip)
{
  guint64 us = (guint64) MAX (round_trip, 0);
  guint bucket = 0;

  while (bucket < G_N_ELEMENTS (stm32_round_trip_bounds_us) &&
         us > stm32_round_trip_bounds_us[bucket])
    bucket++;
  self->round_trips[bucket]++;
  stm32_link_add_counter (self, &self->round_trip_sum, us);
}

/* A built container is a tree of GVariants, one per element and key (about
 * 4 KiB for Failures' 17 entries and RoundTrips' buckets, under 0.5 KiB
 * serialised), which the Link1 skeleton keeps as the property's value until
 * an equality check serialises it. Serialised at once, no link holds the
 * tree: at 4,096 links every link's trees, alive at once before their first
 * change, were the start's peak heap, and 13 MiB of RSS left behind. */
static GVariant *
link_compact (GVariant *value)
{
  g_variant_ref_sink (value);
  (void) g_variant_get_data (value);
  return value;
}

/* Every reason but "none" and "local", 0 until it happened: a monitor sees
 * each counter before its first increment. */
static GVariant *
link_build_failures (const guint64 *failures)
{
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{st}"));
  for (int reason = 0; reason < STM32_END_REASON_N_REASONS; reason++)
    if (reason != STM32_END_REASON_NONE && reason != STM32_END_REASON_LOCAL)
      g_variant_builder_add (&builder, "{st}", stm32_enum_to_string (STM32_TYPE_END_REASON, reason),
                             failures[reason]);
  return link_compact (g_variant_builder_end (&builder));
}

static gboolean
link_all_zero (const guint64 *counters, guint n)
{
  for (guint i = 0; i < n; i++)
    if (counters[i] != 0)
      return FALSE;
  return TRUE;
}

/* Most links never fail nor transact: their Failures and RoundTrips stay
 * all 0, one value for every such link, built once. At 4,096 links,
 * building each link's own at export and at connect was a sixth of
 * stm32d's CPU to start, and each held its own copy. */
static GVariant *
link_dup_failures (Stm32Link *self)
{
  static gsize none;

  if (!link_all_zero (self->failures, G_N_ELEMENTS (self->failures)))
    return link_build_failures (self->failures);
  if (g_once_init_enter (&none))
    {
      static const guint64 zero[STM32_END_REASON_N_REASONS] = { 0 };

      g_once_init_leave (&none, (gsize) link_build_failures (zero));
    }
  return g_variant_ref ((GVariant *) none);
}

static GVariant *
link_build_round_trips (const guint64 *round_trips)
{
  guint64 cumulative[STM32_ROUND_TRIP_N_BUCKETS];
  guint64 sum = 0;

  for (guint i = 0; i < STM32_ROUND_TRIP_N_BUCKETS; i++)
    cumulative[i] = sum += round_trips[i];
  /* Serialised as it is made: no tree of GVariants (link_compact). */
  return g_variant_ref_sink (g_variant_new_fixed_array (
      G_VARIANT_TYPE_UINT64, cumulative, STM32_ROUND_TRIP_N_BUCKETS, sizeof (guint64)));
}

static GVariant *
link_dup_round_trips (Stm32Link *self)
{
  static gsize none;

  if (!link_all_zero (self->round_trips, G_N_ELEMENTS (self->round_trips)))
    return link_build_round_trips (self->round_trips);
  if (g_once_init_enter (&none))
    {
      static const guint64 zero[STM32_ROUND_TRIP_N_BUCKETS] = { 0 };

      g_once_init_leave (&none, (gsize) link_build_round_trips (zero));
    }
  return g_variant_ref ((GVariant *) none);
}

static void
link_set_string (Stm32Link *self, char **field, char *value, int prop)
{
  if (g_strcmp0 (*field, value) == 0)
    {
      g_free (value);
      return;
    }
  g_free (*field);
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[prop]);
}

/* Completes every task in @waiters, which the caller has stolen from the link,
 * so callbacks that call back into the link see it in a consistent state. */
static void
complete_waiters (GPtrArray *waiters, const GError *error)
{
  for (guint i = 0; waiters && i < waiters->len; i++)
    {
      GTask *task = g_ptr_array_index (waiters, i);

      if (error)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

/* ---- the state machine ---------------------------------------------------- */

/* The one place the state changes, and RetryIn with it (@retry_in: the delay
 * before the next attempt, for WAITING). State, LastError and RetryIn are
 * notified together (freeze/thaw), so an observer never sees one without the
 * others. */
static void
link_transition_full (Stm32Link *self, Stm32LinkState state, Stm32EndReason error,
                      const char *error_message, guint retry_in)
{
  GObject *object = G_OBJECT (self);

  g_object_freeze_notify (object);
  if (self->state != state)
    {
      LINK_LOG (self, G_LOG_LEVEL_INFO, "%s → %s",
                stm32_enum_to_string (STM32_TYPE_LINK_STATE, self->state),
                stm32_enum_to_string (STM32_TYPE_LINK_STATE, state));
      self->state = state;
      g_object_notify_by_pspec (object, stm32_link_props[PROP_STATE]);
    }
  if (state != STM32_LINK_STATE_CONNECTED)
    stm32_link_raw_end_hold (self);
  if (self->last_error != error)
    {
      self->last_error = error;
      g_object_notify_by_pspec (object, stm32_link_props[PROP_LAST_ERROR]);
    }
  link_set_string (self, &self->last_error_message, g_strdup (error_message),
                   PROP_LAST_ERROR_MESSAGE);
  if (state == STM32_LINK_STATE_WAITING || self->retry_in != 0)
    {
      self->retry_in = state == STM32_LINK_STATE_WAITING ? retry_in : 0;
      g_object_notify_by_pspec (object, stm32_link_props[PROP_RETRY_IN]);
    }
  if (state != STM32_LINK_STATE_CONNECTED && state != STM32_LINK_STATE_CLOSING)
    {
      link_set_string (self, &self->local_address, NULL, PROP_LOCAL_ADDRESS);
      link_set_string (self, &self->remote_address, NULL, PROP_REMOTE_ADDRESS);
      if (self->connected_since != 0)
        {
          self->connected_since = 0;
          g_object_notify_by_pspec (object, stm32_link_props[PROP_CONNECTED_SINCE]);
        }
    }
  g_object_thaw_notify (object);
}

static void
link_transition (Stm32Link *self, Stm32LinkState state, Stm32EndReason error,
                 const char *error_message)
{
  g_return_if_fail (state != STM32_LINK_STATE_WAITING);
  link_transition_full (self, state, error, error_message, 0);
}

static gboolean
on_retry_timer (gpointer user_data)
{
  Stm32Link *self = user_data;

  self->retry_timer = 0;
  link_start_attempt (self);
  return G_SOURCE_REMOVE;
}

static void
link_schedule_retry (Stm32Link *self, const Stm32HistoryEntry *ended)
{
  guint delay;

  if (ended->connected != 0 &&
      ended->closed - ended->connected >= (gint64) self->config->retry_reset_after * 1000)
    stm32_backoff_reset (&self->backoff);
  delay = stm32_backoff_next (&self->backoff);
  /* A board that turns us away for a full table needs time to free a slot. */
  if (ended->reason == STM32_END_REASON_SERVER_BUSY)
    delay = MAX (delay, self->config->busy_backoff);

  link_transition_full (self, STM32_LINK_STATE_WAITING, ended->reason, ended->error, delay);
  self->retry_timer = g_timeout_add (delay, on_retry_timer, self);
  LINK_LOG (self, G_LOG_LEVEL_INFO, "retrying in %u ms", delay);
}

static void
link_clear_timers (Stm32Link *self)
{
  stm32_link_close_clear_timers (self);
  stm32_link_watchdog_disarm (self);
}

void
stm32_link_finish_attempt (Stm32Link *self)
{
  g_autoptr (LinkIo) io = g_steal_pointer (&self->io);
  g_autoptr (GPtrArray) disconnect_waiters = g_steal_pointer (&self->disconnect_waiters);
  g_autoptr (GPtrArray) connect_waiters = NULL;
  Stm32HistoryEntry *entry = g_steal_pointer (&self->attempt);
  g_autoptr (GError) end_error = g_steal_pointer (&self->end_error);
  gboolean was_connected = entry->connected != 0;

  io->link = NULL;
  g_clear_pointer (&self->decoder, stm32_decoder_free);
  self->disconnect_waiters = g_ptr_array_new_with_free_func (g_object_unref);

  entry->closed = g_get_real_time ();
  entry->reason = self->end_reason;
  entry->closed_by = self->end_closed_by;
  entry->detector = self->end_detector;
  entry->aborted = io->abortive;
  entry->error = end_error ? g_strdup (end_error->message) : NULL;
  stm32_link_close_record (self, entry);
  LINK_LOG (self, G_LOG_LEVEL_MESSAGE, "connection ended: %s%s%s%s",
            stm32_enum_to_string (STM32_TYPE_END_REASON, entry->reason), entry->error ? " (" : "",
            entry->error ? entry->error : "", entry->error ? ")" : "");

  /* Connect() called while we closed on request is served by the next
   * attempt; any other ending is the answer to the Connect() calls waiting. */
  if (!(self->wanted && entry->reason == STM32_END_REASON_LOCAL))
    {
      connect_waiters = g_steal_pointer (&self->connect_waiters);
      self->connect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
    }

  g_object_freeze_notify (G_OBJECT (self));
  if (was_connected)
    stm32_link_add_counter (self, &self->disconnects, 1);
  else
    stm32_link_add_counter (self, &self->connect_failures, 1);
  if (entry->reason != STM32_END_REASON_LOCAL && entry->reason != STM32_END_REASON_NONE)
    stm32_link_add_counter (self, &self->failures[entry->reason], 1);
  if (entry->aborted)
    stm32_link_add_counter (self, &self->resets_sent, 1);

  if (self->wanted && entry->reason == STM32_END_REASON_LOCAL)
    {
      /* Connect() arrived while we were closing: the old fd is gone, go again now. */
      stm32_history_push (self->history, entry);
      link_start_attempt (self);
    }
  else if (self->wanted)
    {
      link_schedule_retry (self, entry);
      stm32_history_push (self->history, entry);
    }
  else
    {
      gboolean failed = entry->reason != STM32_END_REASON_LOCAL;

      link_transition (self, STM32_LINK_STATE_DISCONNECTED,
                       failed ? entry->reason : STM32_END_REASON_NONE,
                       failed ? entry->error : NULL);
      stm32_history_push (self->history, entry);
    }
  g_object_thaw_notify (G_OBJECT (self));

  complete_waiters (disconnect_waiters, NULL);
  complete_waiters (connect_waiters, end_error);
}

/* Fails every frame and transaction waiting on this connection, with the reason it ended. */
static void
link_fail_pending (Stm32Link *self, const GError *end_error, gboolean including_writing)
{
  g_autoptr (GError) not_sent = stm32_link_not_sent_error_new (end_error);

  stm32_link_transactions_fail_all (self, end_error);
  stm32_send_queue_fail_unconfirmed (self->send_queue, end_error);
  stm32_send_queue_fail_queued (self->send_queue, not_sent, including_writing);
}

void
stm32_link_end_detected (Stm32Link *self, Stm32Detector detector, Stm32EndReason reason,
                         Stm32ClosedBy closed_by, gboolean abortive, GError *error)
{
  g_autoptr (GError) owned_error = error;
  LinkIo *io = self->io;

  if (io == NULL || !stm32_link_io_begin_end (io, abortive))
    return;
  self->end_reason = reason;
  self->end_closed_by = closed_by;
  self->end_detector = detector;
  if (owned_error == NULL)
    owned_error = stm32_link_error_new (self, reason, "disconnected");
  self->end_error = g_error_copy (owned_error);
  link_clear_timers (self);

  g_object_ref (self);
  if (self->state == STM32_LINK_STATE_CONNECTED)
    link_transition (self, STM32_LINK_STATE_CLOSING, self->last_error, self->last_error_message);
  link_fail_pending (self, owned_error, FALSE);
  stm32_link_io_maybe_close (io);
  g_object_unref (self);
}

void
stm32_link_end (Stm32Link *self, Stm32EndReason reason, Stm32ClosedBy closed_by, gboolean abortive,
                GError *error)
{
  stm32_link_end_detected (self, STM32_DETECTOR_NONE, reason, closed_by, abortive, error);
}

/* ---- connecting ------------------------------------------------------------ */

/* A shortage on the PC: what ran out and what fixes it, so that nobody looks
 * for the fault on the board. */
static const char *
pc_shortage_advice (Stm32EndReason reason)
{
  switch (reason)
    {
    case STM32_END_REASON_PC_NO_PORTS:
      return "this PC has no free local port to connect from, not the board's fault: too many "
             "recent connections (TIME_WAIT) or open ones use them all; widen "
             "net.ipv4.ip_local_port_range or make fewer connections";
    case STM32_END_REASON_PC_NO_FDS:
      return "stm32d has no file descriptor left, not the board's fault: raise LimitNOFILE= of "
             "stm32d.service (fs.file-max if the whole PC is out), or see what holds them in "
             "/proc/PID/fd";
    case STM32_END_REASON_PC_NO_MEMORY:
      return "this PC's kernel has no memory for another socket, not the board's fault: free "
             "memory on the PC";
    default:
      return NULL;
    }
}

void
stm32_link_on_connect_failed (Stm32Link *self, const GError *error)
{
  Stm32EndReason reason = stm32_classify_connect_error (error);
  const char *advice = pc_shortage_advice (reason);

  stm32_link_end (
      self, reason,
      reason == STM32_END_REASON_SERVER_BUSY ? STM32_CLOSED_BY_BOARD : STM32_CLOSED_BY_NONE, FALSE,
      advice ? stm32_link_error_new (self, reason, "%s (%s)", advice, error->message)
             : stm32_link_error_new (self, reason, "%s", error->message));
}

void
stm32_link_on_connect_timeout (Stm32Link *self)
{
  stm32_link_end_detected (self, STM32_DETECTOR_CONNECT_TIMEOUT, STM32_END_REASON_TIMEOUT,
                           STM32_CLOSED_BY_NONE, FALSE,
                           stm32_link_error_new (self, STM32_END_REASON_TIMEOUT,
                                                 "no answer to connect within %u ms (board "
                                                 "unreachable, or its TCP control-block pool "
                                                 "exhausted?)",
                                                 self->config->connect_timeout));
}

void
stm32_link_on_connected (Stm32Link *self, GSocketConnection *connection)
{
  g_autoptr (GPtrArray) connect_waiters = g_steal_pointer (&self->connect_waiters);
  GSocket *socket = g_socket_connection_get_socket (connection);
  g_autoptr (GSocketAddress) local = g_socket_connection_get_local_address (connection, NULL);
  g_autoptr (GSocketAddress) remote = g_socket_connection_get_remote_address (connection, NULL);
  g_autoptr (GError) error = NULL;

  self->connect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  if (!stm32_socket_arm_liveness (socket, self->config, &error))
    {
      g_ptr_array_extend_and_steal (self->connect_waiters, g_steal_pointer (&connect_waiters));
      stm32_link_end (self, STM32_END_REASON_FAILED, STM32_CLOSED_BY_PC, TRUE,
                      g_steal_pointer (&error));
      return;
    }

  self->attempt->connected = g_get_real_time ();
  self->attempt->local_address = address_to_string (local);
  self->attempt->remote_address = address_to_string (remote);
  self->connected_mono = self->last_rx_mono = g_get_monotonic_time ();
  self->decoder = stm32_decoder_new (self->config->framing, self->config->max_frame);

  g_object_freeze_notify (G_OBJECT (self));
  link_set_string (self, &self->local_address, g_strdup (self->attempt->local_address),
                   PROP_LOCAL_ADDRESS);
  link_set_string (self, &self->remote_address, g_strdup (self->attempt->remote_address),
                   PROP_REMOTE_ADDRESS);
  self->connected_since = self->attempt->connected;
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_CONNECTED_SINCE]);
  stm32_link_add_counter (self, &self->connects, 1);
  link_transition (self, STM32_LINK_STATE_CONNECTED, STM32_END_REASON_NONE, NULL);
  g_object_thaw_notify (G_OBJECT (self));

  stm32_link_io_read (self->io);
  stm32_link_watchdog_arm (self);
  complete_waiters (connect_waiters, NULL);
}

static void
link_start_attempt (Stm32Link *self)
{
  g_return_if_fail (self->io == NULL);
  g_clear_handle_id (&self->retry_timer, g_source_remove);
  if (self->admit != NULL)
    {
      Stm32LinkAdmitFunc admit = g_steal_pointer (&self->admit);

      admit (self, self->admit_data);
    }
  if (self->holds > 0)
    {
      /* No attempt, no history entry: no socket exists until the release. */
      self->start_held = TRUE;
      link_transition (self, STM32_LINK_STATE_CONNECTING, self->last_error,
                       self->last_error_message);
      return;
    }
  self->start_held = FALSE;

  self->io = stm32_link_io_new (self);
  self->attempt = g_new0 (Stm32HistoryEntry, 1);
  self->attempt->started = g_get_real_time ();
  self->end_reason = STM32_END_REASON_NONE;
  self->end_closed_by = STM32_CLOSED_BY_NONE;
  self->end_detector = STM32_DETECTOR_NONE;
  link_transition (self, STM32_LINK_STATE_CONNECTING, self->last_error, self->last_error_message);
  stm32_link_io_connect (self->io, self->config->host, self->config->port,
                         self->config->connect_timeout);
}

/* ---- public API -------------------------------------------------------------- */

void
stm32_link_connect_async (Stm32Link *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                          gpointer user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_link_connect_async);
  self->wanted = TRUE;
  switch (self->state)
    {
    case STM32_LINK_STATE_CONNECTED:
      g_task_return_boolean (task, TRUE);
      return;
    case STM32_LINK_STATE_DISCONNECTED:
    case STM32_LINK_STATE_WAITING:
      g_ptr_array_add (self->connect_waiters, g_steal_pointer (&task));
      link_start_attempt (self);
      return;
    case STM32_LINK_STATE_CONNECTING:
    case STM32_LINK_STATE_CLOSING:
    default:
      /* Joins the attempt under way, or the one that follows the close. */
      g_ptr_array_add (self->connect_waiters, g_steal_pointer (&task));
      return;
    }
}

gboolean
stm32_link_connect_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Disconnect() while held: nothing reached the board, so Connect() callers
 * are answered at once, as for a close on request. */
static void
link_give_up_held_start (Stm32Link *self)
{
  g_autoptr (GPtrArray) connect_waiters = g_steal_pointer (&self->connect_waiters);
  g_autoptr (GError) error =
      stm32_link_error_new (self, STM32_END_REASON_LOCAL, "disconnected before connecting");

  self->connect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  self->start_held = FALSE;
  link_transition (self, STM32_LINK_STATE_DISCONNECTED, self->last_error, self->last_error_message);
  complete_waiters (connect_waiters, error);
}

void
stm32_link_hold (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));
  self->holds++;
}

void
stm32_link_release (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));
  g_return_if_fail (self->holds > 0);
  if (--self->holds == 0 && self->start_held)
    link_start_attempt (self);
}

void
stm32_link_set_admit_func (Stm32Link *self, Stm32LinkAdmitFunc func, gpointer user_data)
{
  g_return_if_fail (STM32_IS_LINK (self));
  self->admit = func;
  self->admit_data = user_data;
}

void
stm32_link_disconnect_async (Stm32Link *self, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (STM32_IS_LINK (self));
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_link_disconnect_async);
  self->wanted = FALSE;
  switch (self->state)
    {
    case STM32_LINK_STATE_DISCONNECTED:
      g_task_return_boolean (task, TRUE);
      return;
    case STM32_LINK_STATE_WAITING:
      g_clear_handle_id (&self->retry_timer, g_source_remove);
      link_transition (self, STM32_LINK_STATE_DISCONNECTED, self->last_error,
                       self->last_error_message);
      g_task_return_boolean (task, TRUE);
      return;
    case STM32_LINK_STATE_CONNECTING:
      if (self->start_held)
        {
          link_give_up_held_start (self);
          g_task_return_boolean (task, TRUE);
          return;
        }
      g_ptr_array_add (self->disconnect_waiters, g_steal_pointer (&task));
      stm32_link_end (
          self, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, FALSE,
          stm32_link_error_new (self, STM32_END_REASON_LOCAL, "disconnected while connecting"));
      return;
    case STM32_LINK_STATE_CONNECTED:
      g_ptr_array_add (self->disconnect_waiters, g_steal_pointer (&task));
      link_transition (self, STM32_LINK_STATE_CLOSING, STM32_END_REASON_NONE, NULL);
      stm32_link_close_begin (self);
      return;
    case STM32_LINK_STATE_CLOSING:
    default:
      g_ptr_array_add (self->disconnect_waiters, g_steal_pointer (&task));
      return;
    }
}

gboolean
stm32_link_disconnect_finish (Stm32Link *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
stm32_link_network_changed (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));
  stm32_backoff_reset (&self->backoff);
  if (self->state == STM32_LINK_STATE_WAITING)
    {
      LINK_LOG (self, G_LOG_LEVEL_INFO, "network changed, retrying now");
      link_start_attempt (self);
    }
}

const char *
stm32_link_get_name (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return self->name;
}

const Stm32LinkConfig *
stm32_link_get_config (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return self->config;
}

Stm32LinkState
stm32_link_get_state (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), STM32_LINK_STATE_DISCONNECTED);
  return self->state;
}

gboolean
stm32_link_get_autoconnect (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), FALSE);
  return self->config->autoconnect;
}

void
stm32_link_set_autoconnect (Stm32Link *self, gboolean autoconnect)
{
  g_return_if_fail (STM32_IS_LINK (self));
  autoconnect = !!autoconnect;
  if (self->config->autoconnect == autoconnect)
    return;
  self->config->autoconnect = autoconnect;
  g_object_notify_by_pspec (G_OBJECT (self), stm32_link_props[PROP_AUTOCONNECT]);
  /* Turning it on brings the link up; turning it off leaves a live link alone. */
  if (autoconnect)
    {
      self->wanted = TRUE;
      if (self->state == STM32_LINK_STATE_DISCONNECTED)
        link_start_attempt (self);
    }
}

Stm32EndReason
stm32_link_get_last_error (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), STM32_END_REASON_NONE);
  return self->last_error;
}

const char *
stm32_link_get_last_error_message (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return self->last_error_message;
}

guint
stm32_link_get_retry_in (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), 0);
  return self->retry_in;
}

GPtrArray *
stm32_link_dup_history (Stm32Link *self)
{
  g_return_val_if_fail (STM32_IS_LINK (self), NULL);
  return stm32_history_dup_entries (self->history);
}

static gboolean
link_get_acknowledged (gpointer user_data, guint64 *acknowledged)
{
  Stm32Link *self = user_data;

  return self->io != NULL && stm32_link_io_get_acknowledged (self->io, acknowledged);
}

/* Once per batch, not per frame: each notification goes out to the D-Bus
 * skeleton through a binding. */
static void
link_on_confirmed (gpointer user_data, guint64 size, guint frames)
{
  Stm32Link *self = user_data;

  self->attempt->bytes_sent += size;
  stm32_link_hold_counters (self);
  stm32_link_add_counter (self, &self->bytes_sent, size);
  if (frames > 0)
    {
      self->attempt->frames_sent += frames;
      stm32_link_add_counter (self, &self->frames_sent, frames);
    }
  stm32_link_release_counters (self);
}

Stm32Link *
stm32_link_new_idle (const char *name, const Stm32LinkConfig *config)
{
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (config != NULL, NULL);

  return g_object_new (STM32_TYPE_LINK, "name", name, "config", config, NULL);
}

void
stm32_link_start (Stm32Link *self)
{
  g_return_if_fail (STM32_IS_LINK (self));
  if (self->config->autoconnect && self->state == STM32_LINK_STATE_DISCONNECTED && !self->wanted)
    {
      self->wanted = TRUE;
      link_start_attempt (self);
    }
}

Stm32Link *
stm32_link_new (const char *name, const Stm32LinkConfig *config)
{
  Stm32Link *self = stm32_link_new_idle (name, config);

  stm32_link_start (self);
  return self;
}

/* ---- GObject ----------------------------------------------------------------- */

static void
stm32_link_dispose (GObject *object)
{
  Stm32Link *self = STM32_LINK (object);
  g_autoptr (GError) gone = NULL;

  self->wanted = FALSE;
  g_clear_handle_id (&self->retry_timer, g_source_remove);
  link_clear_timers (self);
  if (self->io != NULL)
    {
      g_autoptr (LinkIo) io = g_steal_pointer (&self->io);

      stm32_link_io_abandon (io);
    }
  gone = g_error_new (STM32_ERROR, STM32_ERROR_NOT_CONNECTED, "Link “%s” was removed", self->name);
  if (self->connect_waiters && self->send_queue)
    link_fail_pending (self, gone, TRUE);
  complete_waiters (self->connect_waiters, gone);
  complete_waiters (self->disconnect_waiters, NULL);
  g_clear_pointer (&self->disconnect_waiters, g_ptr_array_unref);
  g_clear_pointer (&self->connect_waiters, g_ptr_array_unref);
  G_OBJECT_CLASS (stm32_link_parent_class)->dispose (object);
}

static void
stm32_link_constructed (GObject *object)
{
  Stm32Link *self = STM32_LINK (object);

  G_OBJECT_CLASS (stm32_link_parent_class)->constructed (object);
  /* A link without a board cannot be anything; the property is required. */
  if (self->config == NULL)
    {
      g_critical ("Stm32Link “%s” constructed without a config", self->name);
      self->config = stm32_link_config_new ("", 0);
    }
  self->send_queue = stm32_send_queue_new (self->config->send_queue_max, link_get_acknowledged,
                                           link_on_confirmed, self);
  stm32_backoff_init (&self->backoff, self->config->retry_min, self->config->retry_max,
                      g_random_int ());
  stm32_close_learner_init (&self->close_learner, self->config->close_mode,
                            self->config->close_timeout);
}

static void
stm32_link_finalize (GObject *object)
{
  Stm32Link *self = STM32_LINK (object);

  g_clear_pointer (&self->attempt, stm32_history_entry_free);
  g_clear_pointer (&self->decoder, stm32_decoder_free);
  g_clear_pointer (&self->history, stm32_history_free);
  g_clear_pointer (&self->transactions, stm32_link_transactions_free);
  g_clear_pointer (&self->send_queue, stm32_send_queue_free);
  g_clear_pointer (&self->config, stm32_link_config_free);
  g_clear_error (&self->end_error);
  g_free (self->name);
  g_free (self->last_error_message);
  g_free (self->local_address);
  g_free (self->remote_address);
  G_OBJECT_CLASS (stm32_link_parent_class)->finalize (object);
}

static void
stm32_link_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  Stm32Link *self = STM32_LINK (object);

  switch (prop_id)
    {
    case PROP_NAME:
      g_value_set_string (value, self->name);
      break;
    case PROP_CONFIG:
      g_value_set_boxed (value, self->config);
      break;
    case PROP_HOST:
      g_value_set_string (value, self->config->host);
      break;
    case PROP_PORT:
      g_value_set_uint (value, self->config->port);
      break;
    case PROP_FRAMING:
      g_value_set_enum (value, self->config->framing);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_AUTOCONNECT:
      g_value_set_boolean (value, self->config->autoconnect);
      break;
    case PROP_LOCAL_ADDRESS:
      g_value_set_string (value, self->local_address);
      break;
    case PROP_REMOTE_ADDRESS:
      g_value_set_string (value, self->remote_address);
      break;
    case PROP_CONNECTED_SINCE:
      g_value_set_int64 (value, self->connected_since);
      break;
    case PROP_RETRY_IN:
      g_value_set_uint (value, self->retry_in);
      break;
    case PROP_LAST_ERROR:
      g_value_set_enum (value, self->last_error);
      break;
    case PROP_LAST_ERROR_MESSAGE:
      g_value_set_string (value, self->last_error_message);
      break;
    case PROP_BYTES_SENT:
      g_value_set_uint64 (value, self->bytes_sent);
      break;
    case PROP_BYTES_RECEIVED:
      g_value_set_uint64 (value, self->bytes_received);
      break;
    case PROP_FRAMES_SENT:
      g_value_set_uint64 (value, self->frames_sent);
      break;
    case PROP_FRAMES_RECEIVED:
      g_value_set_uint64 (value, self->frames_received);
      break;
    case PROP_CONNECTS:
      g_value_set_uint64 (value, self->connects);
      break;
    case PROP_DISCONNECTS:
      g_value_set_uint64 (value, self->disconnects);
      break;
    case PROP_CONNECT_FAILURES:
      g_value_set_uint64 (value, self->connect_failures);
      break;
    case PROP_LATE_REPLIES:
      g_value_set_uint64 (value, self->late_replies);
      break;
    case PROP_RESETS_SENT:
      g_value_set_uint64 (value, self->resets_sent);
      break;
    case PROP_TRANSACT_TIMEOUTS:
      g_value_set_uint64 (value, self->transact_timeouts);
      break;
    case PROP_FAILURES:
      g_value_take_variant (value, link_dup_failures (self));
      break;
    case PROP_ROUND_TRIPS:
      g_value_take_variant (value, link_dup_round_trips (self));
      break;
    case PROP_ROUND_TRIP_SUM:
      g_value_set_uint64 (value, self->round_trip_sum);
      break;
    case PROP_RAW:
      g_value_set_boolean (value, stm32_link_get_raw (self));
      break;
    case PROP_CLOSE_STRATEGY:
      g_value_set_enum (value, stm32_close_learner_next_kind (&self->close_learner));
      break;
    case PROP_CLOSE_STRATEGY_REASON:
      g_value_take_string (value, stm32_close_learner_describe (&self->close_learner));
      break;
    case PROP_CLOSE_WAIT:
      g_value_set_uint (value, stm32_close_learner_next_wait (&self->close_learner));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_link_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  Stm32Link *self = STM32_LINK (object);

  switch (prop_id)
    {
    case PROP_NAME:
      self->name = g_value_dup_string (value);
      break;
    case PROP_CONFIG:
      /* A copy: Autoconnect changes in it while the link runs. */
      self->config = g_value_dup_boxed (value);
      break;
    case PROP_AUTOCONNECT:
      stm32_link_set_autoconnect (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_link_init (Stm32Link *self)
{
  self->history = stm32_history_new (STM32_HISTORY_SIZE);
  self->connect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  self->disconnect_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  self->transactions = stm32_link_transactions_new (self);
  self->fin_delay = -1;
}

static GParamSpec *
counter_param (const char *name, const char *blurb)
{
  return g_param_spec_uint64 (name, NULL, blurb, 0, G_MAXUINT64, 0,
                              G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
}

static void
stm32_link_class_init (Stm32LinkClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->constructed = stm32_link_constructed;
  object_class->dispose = stm32_link_dispose;
  object_class->finalize = stm32_link_finalize;
  object_class->get_property = stm32_link_get_property;
  object_class->set_property = stm32_link_set_property;

  stm32_link_props[PROP_NAME] =
      g_param_spec_string ("name", NULL, "Link name", NULL,
                           G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  stm32_link_props[PROP_CONFIG] = g_param_spec_boxed (
      "config", NULL, "Every setting of the link (a copy is kept)", STM32_TYPE_LINK_CONFIG,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  stm32_link_props[PROP_HOST] = g_param_spec_string ("host", NULL, "Board host", NULL, ro);
  stm32_link_props[PROP_PORT] = g_param_spec_uint ("port", NULL, "Board TCP port", 0, 65535, 0, ro);
  stm32_link_props[PROP_FRAMING] =
      g_param_spec_enum ("framing", NULL, "Framing", STM32_TYPE_FRAMING, STM32_DEFAULT_FRAMING, ro);
  stm32_link_props[PROP_STATE] = g_param_spec_enum (
      "state", NULL, "Link state", STM32_TYPE_LINK_STATE, STM32_LINK_STATE_DISCONNECTED, ro);
  stm32_link_props[PROP_AUTOCONNECT] =
      g_param_spec_boolean ("autoconnect", NULL, "Keep the link up", STM32_DEFAULT_AUTOCONNECT,
                            G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  stm32_link_props[PROP_LOCAL_ADDRESS] =
      g_param_spec_string ("local-address", NULL, "Our end", NULL, ro);
  stm32_link_props[PROP_REMOTE_ADDRESS] =
      g_param_spec_string ("remote-address", NULL, "Board end", NULL, ro);
  stm32_link_props[PROP_CONNECTED_SINCE] = g_param_spec_int64 (
      "connected-since", NULL, "Wall-clock µs when connected, or 0", 0, G_MAXINT64, 0, ro);
  stm32_link_props[PROP_RETRY_IN] =
      g_param_spec_uint ("retry-in", NULL, "Reconnect delay in ms", 0, G_MAXUINT, 0, ro);
  stm32_link_props[PROP_LAST_ERROR] = g_param_spec_enum (
      "last-error", NULL, "Why it last failed", STM32_TYPE_END_REASON, STM32_END_REASON_NONE, ro);
  stm32_link_props[PROP_LAST_ERROR_MESSAGE] =
      g_param_spec_string ("last-error-message", NULL, "What last failed", NULL, ro);
  stm32_link_props[PROP_BYTES_SENT] = counter_param ("bytes-sent", "Bytes written to the board");
  stm32_link_props[PROP_BYTES_RECEIVED] =
      counter_param ("bytes-received", "Bytes read from the board");
  stm32_link_props[PROP_FRAMES_SENT] = counter_param ("frames-sent", "Frames written");
  stm32_link_props[PROP_FRAMES_RECEIVED] = counter_param ("frames-received", "Frames received");
  stm32_link_props[PROP_CONNECTS] = counter_param ("connects", "Connections established");
  stm32_link_props[PROP_DISCONNECTS] = counter_param ("disconnects", "Connections ended");
  stm32_link_props[PROP_CONNECT_FAILURES] =
      counter_param ("connect-failures", "Attempts that failed");
  stm32_link_props[PROP_LATE_REPLIES] =
      counter_param ("late-replies", "Replies that came after their caller stopped waiting");
  stm32_link_props[PROP_RAW] =
      g_param_spec_boolean ("raw", NULL, "Held in raw mode (AcquireStream)", FALSE, ro);
  stm32_link_props[PROP_CLOSE_STRATEGY] =
      g_param_spec_enum ("close-strategy", NULL, "How the next close on request is done",
                         STM32_TYPE_CLOSE_KIND, STM32_CLOSE_KIND_GRACEFUL, ro);
  stm32_link_props[PROP_CLOSE_STRATEGY_REASON] = g_param_spec_string (
      "close-strategy-reason", NULL, "Why the next close is done so", NULL, ro);
  stm32_link_props[PROP_CLOSE_WAIT] = g_param_spec_uint (
      "close-wait", NULL, "Longest wait of the next close, ms", 0, G_MAXUINT, 0, ro);
  stm32_link_props[PROP_RESETS_SENT] =
      counter_param ("resets-sent", "Connections ended with our RST");
  stm32_link_props[PROP_TRANSACT_TIMEOUTS] =
      counter_param ("transact-timeouts", "Transactions that timed out");
  stm32_link_props[PROP_FAILURES] =
      g_param_spec_variant ("failures", NULL, "Unrequested endings by reason",
                            G_VARIANT_TYPE ("a{st}"), NULL, ro);
  stm32_link_props[PROP_ROUND_TRIPS] =
      g_param_spec_variant ("round-trips", NULL, "Answered transactions by round trip, cumulative",
                            G_VARIANT_TYPE ("at"), NULL, ro);
  stm32_link_props[PROP_ROUND_TRIP_SUM] =
      counter_param ("round-trip-sum", "Sum of the round trips counted, µs");
  g_object_class_install_properties (object_class, N_LINK_PROPS, stm32_link_props);

  /**
   * Stm32Link::received:
   * @frame: (type GBytes): one frame from the board, without framing
   *
   * Every frame the board sends, in order, except the replies transactions
   * return to their callers. A reply that comes after its transaction timed
   * out is received if no other transaction waits by then; if one does, it
   * takes it (replies carry no request id).
   */
  stm32_link_signals[SIGNAL_RECEIVED] =
      g_signal_new ("received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 1, G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * Stm32Link::received-raw:
   * @chunk: (type GBytes): bytes from the board, exactly as one read returned them
   *
   * Replaces #Stm32Link::received while the connection is in raw mode
   * (stm32_link_acquire_raw()), until it is released or the connection ends.
   */
  stm32_link_signals[SIGNAL_RECEIVED_RAW] =
      g_signal_new ("received-raw", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 1, G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * Stm32Link::counters-changed:
   *
   * One or more of the counters (#Stm32Link:bytes-sent to
   * #Stm32Link:round-trip-sum, #Stm32Link:failures) changed. They emit no
   * notify of their own: this signal comes once for all one event changed.
   */
  stm32_link_signals[SIGNAL_COUNTERS_CHANGED] =
      g_signal_new ("counters-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                    NULL, NULL, G_TYPE_NONE, 0);
}
