/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-link-export.h"

#include <gio/gunixfdlist.h>

#include "stm32-bus-backlog.h"
#include "stm32-bus-callers.h"
#include "stm32-dbus-generated.h"
#include "stm32-defaults.h"
#include "stm32-diagnosis.h"
#include "stm32-enum-types.h"
#include "stm32-error.h"
#include "stm32-names.h"
#include "stm32-probe.h"
#include "stm32-stream-bridge.h"
#include "stm32-send-channel.h"
#include "stm32-transact-channel.h"

struct _Stm32LinkExport
{
  GObject parent_instance;

  Stm32Link *link;
  Stm32DbusObjectSkeleton *object;
  Stm32DbusLink1 *iface;
  Stm32BusBacklog *received_backlog; /* Received signals GDBus still holds */
  guint counter_timer;
  /* Stm32StreamBridge → watch on its holder's bus name. More than one while
   * an ended stream still writes the board's last bytes to its holder. */
  GHashTable *streams;
  Stm32BusCallers *callers; /* shared by every link: who has calls waiting */
  GPtrArray *channels;      /* open Stm32TransactChannels */
  GPtrArray *send_channels; /* open Stm32SendChannels */
  gboolean probing;         /* a Diagnose probe is under way: the board gets one at a time */
};

G_DEFINE_FINAL_TYPE (Stm32LinkExport, stm32_link_export, G_TYPE_OBJECT)

/* The link's counters, published together (same names and types on both sides). */
static const char *const counters[] = {
  "bytes-sent",       "bytes-received", "frames-sent", "frames-received",   "connects",
  "disconnects",      "connect-failures", "late-replies", "resets-sent",    "transact-timeouts",
  "failures",         "round-trips",    "round-trip-sum",
};

/* An answer owed to a D-Bus caller; holds the export so it outlives the call. */
typedef struct
{
  Stm32LinkExport *self;
  GDBusMethodInvocation *invocation;
  /* Watched calls from a bus caller only: cancelled if it leaves the bus. */
  GCancellable *cancellable;
} PendingCall;

static PendingCall *
pending_call_new (Stm32LinkExport *self, GDBusMethodInvocation *invocation)
{
  PendingCall *call = g_new0 (PendingCall, 1);

  call->self = g_object_ref (self);
  call->invocation = g_object_ref (invocation);
  return call;
}

static void
pending_call_free (PendingCall *call)
{
  if (call->cancellable != NULL)
    stm32_bus_callers_release (call->self->callers,
                               g_dbus_method_invocation_get_sender (call->invocation));
  g_clear_object (&call->cancellable);
  g_object_unref (call->self);
  g_object_unref (call->invocation);
  g_free (call);
}

/* For calls that may wait long (Transact, Diagnose): whoever leaves the bus
 * stops holding a place in the link's queue. */
static PendingCall *
pending_call_new_watched (Stm32LinkExport *self, GDBusMethodInvocation *invocation)
{
  PendingCall *call = pending_call_new (self, invocation);

  call->cancellable = stm32_bus_callers_hold (self->callers, invocation);
  return call;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PendingCall, pending_call_free)

/* ---- properties ------------------------------------------------------------- */

static gboolean
enum_to_nick (GBinding *binding, const GValue *from, GValue *to, gpointer user_data)
{
  g_value_set_string (to, stm32_enum_to_string (G_VALUE_TYPE (from), g_value_get_enum (from)));
  return TRUE;
}

/* D-Bus strings cannot be absent: an unset address is "". */
static gboolean
string_or_empty (GBinding *binding, const GValue *from, GValue *to, gpointer user_data)
{
  const char *value = g_value_get_string (from);

  g_value_set_string (to, value ? value : "");
  return TRUE;
}

static void
publish_counters (Stm32LinkExport *self)
{

  g_clear_handle_id (&self->counter_timer, g_source_remove);
  for (guint i = 0; i < G_N_ELEMENTS (counters); i++)
    {
      g_auto (GValue) value = G_VALUE_INIT;

      g_object_get_property (G_OBJECT (self->link), counters[i], &value);
      g_object_set_property (G_OBJECT (self->iface), counters[i], &value);
    }
}

static gboolean
on_counter_timer (gpointer user_data)
{
  Stm32LinkExport *self = user_data;

  self->counter_timer = 0;
  publish_counters (self);
  return G_SOURCE_REMOVE;
}

/* Counters change with every frame; publishing each change would flood the
 * bus with PropertiesChanged, so they go out at most every STM32_COUNTER_PUBLISH_MS. */
static void
on_counter_changed (Stm32Link *link, GParamSpec *pspec, Stm32LinkExport *self)
{
  if (self->counter_timer == 0)
    self->counter_timer = g_timeout_add (STM32_COUNTER_PUBLISH_MS, on_counter_timer, self);
}

/* Whoever sees a new State also sees the counters that led to it. */
static void
on_state_changed (Stm32Link *link, GParamSpec *pspec, Stm32LinkExport *self)
{
  publish_counters (self);
}

static void
bind_properties (Stm32LinkExport *self)
{
  const Stm32LinkConfig *config = stm32_link_get_config (self->link);
  static const char *const enums[] = { "state", "last-error", "close-strategy" };
  static const char *const strings[] = { "local-address", "remote-address", "last-error-message",
                                         "close-strategy-reason" };

  stm32_dbus_link1_set_name (self->iface, stm32_link_get_name (self->link));
  stm32_dbus_link1_set_host (self->iface, config->host);
  stm32_dbus_link1_set_port (self->iface, config->port);
  stm32_dbus_link1_set_framing (self->iface,
                                stm32_enum_to_string (STM32_TYPE_FRAMING, config->framing));

  for (guint i = 0; i < G_N_ELEMENTS (enums); i++)
    g_object_bind_property_full (self->link, enums[i], self->iface, enums[i], G_BINDING_SYNC_CREATE,
                                 enum_to_nick, NULL, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (strings); i++)
    g_object_bind_property_full (self->link, strings[i], self->iface, strings[i],
                                 G_BINDING_SYNC_CREATE, string_or_empty, NULL, NULL, NULL);
  g_object_bind_property (self->link, "connected-since", self->iface, "connected-since",
                          G_BINDING_SYNC_CREATE);
  g_object_bind_property (self->link, "retry-in", self->iface, "retry-in", G_BINDING_SYNC_CREATE);
  g_object_bind_property (self->link, "close-wait", self->iface, "close-wait",
                          G_BINDING_SYNC_CREATE);
  g_object_bind_property (self->link, "autoconnect", self->iface, "autoconnect",
                          G_BINDING_SYNC_CREATE | G_BINDING_BIDIRECTIONAL);

  for (guint i = 0; i < G_N_ELEMENTS (counters); i++)
    {
      g_autofree char *signal = g_strconcat ("notify::", counters[i], NULL);

      g_signal_connect_object (self->link, signal, G_CALLBACK (on_counter_changed), self, 0);
    }
  g_signal_connect_object (self->link, "notify::state", G_CALLBACK (on_state_changed), self, 0);
  publish_counters (self);
}

/* ---- methods -------------------------------------------------------------------- */

/* @error is read after the finish call that sets it: pass its address. */
static void
return_result (PendingCall *call, gboolean ok, GError **error)
{
  if (ok)
    g_dbus_method_invocation_return_value (call->invocation, NULL);
  else
    g_dbus_method_invocation_take_error (call->invocation, g_steal_pointer (error));
}

static void
on_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (PendingCall) call = user_data;
  GError *error = NULL;

  return_result (call, stm32_link_connect_finish (STM32_LINK (source), result, &error), &error);
}

static gboolean
handle_connect (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, Stm32LinkExport *self)
{
  stm32_link_connect_async (self->link, NULL, on_connected, pending_call_new (self, invocation));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
on_disconnected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (PendingCall) call = user_data;
  GError *error = NULL;

  return_result (call, stm32_link_disconnect_finish (STM32_LINK (source), result, &error), &error);
}

static gboolean
handle_disconnect (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, Stm32LinkExport *self)
{
  stm32_link_disconnect_async (self->link, NULL, on_disconnected,
                               pending_call_new (self, invocation));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
on_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (PendingCall) call = user_data;
  GError *error = NULL;

  return_result (call, stm32_link_send_finish (STM32_LINK (source), result, &error), &error);
}

static gboolean
handle_send (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, GVariant *frame,
             Stm32LinkExport *self)
{
  g_autoptr (GBytes) bytes = g_variant_get_data_as_bytes (frame);

  stm32_link_send_async (self->link, bytes, NULL, on_sent, pending_call_new (self, invocation));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
on_transacted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (PendingCall) call = user_data;
  GError *error = NULL;
  g_autoptr (GBytes) reply = stm32_link_transact_finish (STM32_LINK (source), result, &error);

  if (reply == NULL)
    {
      g_dbus_method_invocation_take_error (call->invocation, error);
      return;
    }
  stm32_dbus_link1_complete_transact (
      call->self->iface, call->invocation,
      g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, reply, TRUE));
}

static gboolean
handle_transact (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, GVariant *request,
                 guint timeout_ms, Stm32LinkExport *self)
{
  g_autoptr (GBytes) bytes = g_variant_get_data_as_bytes (request);
  PendingCall *call = pending_call_new_watched (self, invocation);

  stm32_link_transact_async (self->link, bytes, timeout_ms, call->cancellable, on_transacted, call);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static GVariant *
history_entry_to_variant (const Stm32HistoryEntry *entry)
{
  GVariantDict dict;

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "started", "x", entry->started);
  g_variant_dict_insert (&dict, "connected", "x", entry->connected);
  g_variant_dict_insert (&dict, "closed", "x", entry->closed);
  g_variant_dict_insert (&dict, "last-sent", "x", entry->last_sent);
  g_variant_dict_insert (&dict, "last-received", "x", entry->last_received);
  g_variant_dict_insert (&dict, "bytes-sent", "t", entry->bytes_sent);
  g_variant_dict_insert (&dict, "bytes-received", "t", entry->bytes_received);
  g_variant_dict_insert (&dict, "frames-sent", "t", entry->frames_sent);
  g_variant_dict_insert (&dict, "frames-received", "t", entry->frames_received);
  g_variant_dict_insert (&dict, "late-replies", "t", entry->late_replies);
  g_variant_dict_insert (&dict, "closed-by", "s",
                         stm32_enum_to_string (STM32_TYPE_CLOSED_BY, entry->closed_by));
  g_variant_dict_insert (&dict, "reason", "s",
                         stm32_enum_to_string (STM32_TYPE_END_REASON, entry->reason));
  g_variant_dict_insert (&dict, "detector", "s",
                         stm32_enum_to_string (STM32_TYPE_DETECTOR, entry->detector));
  g_variant_dict_insert (&dict, "aborted", "b", entry->aborted);
  g_variant_dict_insert (&dict, "close", "s",
                         stm32_enum_to_string (STM32_TYPE_CLOSE_KIND, entry->close_kind));
  g_variant_dict_insert (&dict, "fin-delay", "x", entry->fin_delay);
  g_variant_dict_insert (&dict, "error", "s", entry->error ? entry->error : "");
  g_variant_dict_insert (&dict, "local-address", "s",
                         entry->local_address ? entry->local_address : "");
  g_variant_dict_insert (&dict, "remote-address", "s",
                         entry->remote_address ? entry->remote_address : "");
  return g_variant_dict_end (&dict);
}

static gboolean
handle_get_history (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, Stm32LinkExport *self)
{
  g_autoptr (GPtrArray) history = stm32_link_dup_history (self->link);
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; i < history->len; i++)
    g_variant_builder_add_value (&builder, history_entry_to_variant (history->pdata[i]));
  stm32_dbus_link1_complete_get_history (iface, invocation, g_variant_builder_end (&builder));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- Diagnose ------------------------------------------------------------------- */

static gboolean
parse_diagnose_options (GVariant *options, gboolean *probe, guint *probe_max, GError **error)
{
  GVariantIter iter;

  *probe = FALSE;
  *probe_max = STM32_PROBE_DEFAULT_MAX;
  g_variant_iter_init (&iter, options);
  for (;;)
    {
      g_autoptr (GVariant) value = NULL;
      const char *key;

      if (!g_variant_iter_next (&iter, "{&sv}", &key, &value))
        break;
      if (g_str_equal (key, "probe") && g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN))
        *probe = g_variant_get_boolean (value);
      else if (g_str_equal (key, "probe-max") &&
               g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32))
        *probe_max = g_variant_get_uint32 (value);
      else
        {
          g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                       "Unknown Diagnose option “%s” of type %s; the options are “probe” (b) and "
                       "“probe-max” (u)",
                       key, g_variant_get_type_string (value));
          return FALSE;
        }
    }
  if (*probe_max < 1 || *probe_max > STM32_PROBE_MAX_MAX)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "probe-max must be between 1 and %u, not %u", STM32_PROBE_MAX_MAX, *probe_max);
      return FALSE;
    }
  return TRUE;
}

typedef struct
{
  PendingCall *call;
  gboolean probe;
} DiagnoseCall;

static void
on_diagnosed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  DiagnoseCall *diagnose = user_data;
  g_autoptr (PendingCall) call = diagnose->call;
  GError *error = NULL;
  g_autoptr (GVariant) report = stm32_diagnosis_run_finish (STM32_LINK (source), result, &error);

  if (diagnose->probe)
    call->self->probing = FALSE;
  g_free (diagnose);
  if (report == NULL)
    g_dbus_method_invocation_take_error (call->invocation, error);
  else
    stm32_dbus_link1_complete_diagnose (call->self->iface, call->invocation, report);
}

static gboolean
handle_diagnose (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, GVariant *options,
                 Stm32LinkExport *self)
{
  g_autoptr (GError) error = NULL;
  DiagnoseCall *diagnose;
  gboolean probe;
  guint probe_max;

  if (!parse_diagnose_options (options, &probe, &probe_max, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  if (probe && self->probing)
    {
      g_dbus_method_invocation_return_error (
          invocation, STM32_ERROR, STM32_ERROR_BUSY,
          "A probe of link “%s” is under way; a board gets one at a time",
          stm32_link_get_name (self->link));
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  self->probing |= probe;
  diagnose = g_new0 (DiagnoseCall, 1);
  diagnose->probe = probe;
  /* A caller that leaves the bus ends its probe: the board gets its slots back at once. */
  diagnose->call = pending_call_new_watched (self, invocation);
  stm32_diagnosis_run_async (self->link, probe, probe_max, diagnose->call->cancellable,
                             on_diagnosed, diagnose);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- AcquireStream ------------------------------------------------------------- */

static void
unwatch_name (gpointer watch)
{
  if (watch != NULL)
    g_bus_unwatch_name (GPOINTER_TO_UINT (watch));
}

static void
on_stream_closed (Stm32StreamBridge *bridge, Stm32LinkExport *self)
{
  g_hash_table_remove (self->streams, bridge);
}

/* The holder's process may keep the fd open (or have passed it on) after its
 * connection is gone; no one could then release the link. */
static void
on_holder_vanished (GDBusConnection *connection, const char *name, gpointer user_data)
{
  stm32_stream_bridge_close (STM32_STREAM_BRIDGE (user_data), "the holder left the bus");
}

static void
track_stream (Stm32LinkExport *self, Stm32StreamBridge *bridge, GDBusMethodInvocation *invocation)
{
  const char *sender = g_dbus_method_invocation_get_sender (invocation);
  guint watch = 0;

  /* A peer-to-peer caller has no name to watch; its fd alone releases the link. The
   * watch reports a holder already gone, too. */
  if (sender != NULL)
    watch = g_bus_watch_name_on_connection (g_dbus_method_invocation_get_connection (invocation),
                                            sender, G_BUS_NAME_WATCHER_FLAGS_NONE, NULL,
                                            on_holder_vanished, bridge, NULL);
  g_hash_table_insert (self->streams, g_object_ref (bridge), GUINT_TO_POINTER (watch));
  g_signal_connect_object (bridge, "closed", G_CALLBACK (on_stream_closed), self, 0);
}

static gboolean
handle_acquire_stream (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation,
                       GUnixFDList *in_fds, Stm32LinkExport *self)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32StreamBridge) bridge = stm32_stream_bridge_new (self->link, &error);
  g_autoptr (GUnixFDList) fds = NULL;
  int fd;

  if (bridge == NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  /* The list takes the holder's end: it is closed once the reply is sent. */
  fd = stm32_stream_bridge_steal_fd (bridge);
  fds = g_unix_fd_list_new_from_array (&fd, 1);
  track_stream (self, bridge, invocation);
  stm32_dbus_link1_complete_acquire_stream (iface, invocation, fds, g_variant_new_handle (0));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- OpenTransactChannel ------------------------------------------------------ */

static void
on_channel_closed (Stm32TransactChannel *channel, Stm32LinkExport *self)
{
  g_ptr_array_remove_fast (self->channels, channel);
}

static gboolean
handle_open_transact_channel (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation,
                              GUnixFDList *in_fds, Stm32LinkExport *self)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32TransactChannel) channel = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  int fd;

  /* Each costs the daemon a socket and a little memory; a client that opens
   * them in a loop must not be able to run the daemon out of fds. */
  if (self->channels->len >= STM32_TRANSACT_CHANNELS_MAX)
    {
      g_dbus_method_invocation_return_error (
          invocation, STM32_ERROR, STM32_ERROR_BUSY,
          "Link “%s” has %u transaction channels open, the most it allows; close one first",
          stm32_link_get_name (self->link), self->channels->len);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  channel = stm32_transact_channel_new (self->link, &error);
  if (channel == NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  fd = stm32_transact_channel_steal_fd (channel);
  fds = g_unix_fd_list_new_from_array (&fd, 1);
  g_signal_connect_object (channel, "closed", G_CALLBACK (on_channel_closed), self, 0);
  g_ptr_array_add (self->channels, g_steal_pointer (&channel));
  stm32_dbus_link1_complete_open_transact_channel (iface, invocation, fds,
                                                   g_variant_new_handle (0));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- OpenSendChannel ---------------------------------------------------------- */

static void
on_send_channel_closed (Stm32SendChannel *channel, Stm32LinkExport *self)
{
  g_ptr_array_remove_fast (self->send_channels, channel);
}

static gboolean
handle_open_send_channel (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation,
                          GUnixFDList *in_fds, Stm32LinkExport *self)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32SendChannel) channel = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  int fd;

  if (self->send_channels->len >= STM32_SEND_CHANNELS_MAX)
    {
      g_dbus_method_invocation_return_error (
          invocation, STM32_ERROR, STM32_ERROR_BUSY,
          "Link “%s” has %u send channels open, the most it allows; close one first",
          stm32_link_get_name (self->link), self->send_channels->len);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  channel = stm32_send_channel_new (self->link, &error);
  if (channel == NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  fd = stm32_send_channel_steal_fd (channel);
  fds = g_unix_fd_list_new_from_array (&fd, 1);
  g_signal_connect_object (channel, "closed", G_CALLBACK (on_send_channel_closed), self, 0);
  g_ptr_array_add (self->send_channels, g_steal_pointer (&channel));
  stm32_dbus_link1_complete_open_send_channel (iface, invocation, fds, g_variant_new_handle (0));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

void
stm32_link_export_close_channels (Stm32LinkExport *self)
{
  g_return_if_fail (STM32_IS_LINK_EXPORT (self));

  /* Each removes itself as it closes; from the end, so none is skipped. */
  for (guint i = self->channels->len; i > 0; i--)
    stm32_transact_channel_close (self->channels->pdata[i - 1], "the link is no longer exported");
  for (guint i = self->send_channels->len; i > 0; i--)
    stm32_send_channel_close (self->send_channels->pdata[i - 1], "the link is no longer exported");
}

/* While a stream holds the link there are no frames: the link emits none. */
static void
on_received (Stm32Link *link, GBytes *frame, Stm32LinkExport *self)
{
  stm32_dbus_link1_emit_received (
      self->iface, g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, frame, TRUE));
  stm32_bus_backlog_add (self->received_backlog, g_bytes_get_size (frame));
}

/* ---- object ------------------------------------------------------------------- */

Stm32LinkExport *
stm32_link_export_new (Stm32Link *link, Stm32BusCallers *callers)
{
  Stm32LinkExport *self;
  g_autofree char *path = NULL;

  g_return_val_if_fail (STM32_IS_LINK (link), NULL);
  g_return_val_if_fail (STM32_IS_BUS_CALLERS (callers), NULL);

  self = g_object_new (STM32_TYPE_LINK_EXPORT, NULL);
  self->link = g_object_ref (link);
  self->callers = g_object_ref (callers);
  path = g_strconcat (STM32_DBUS_LINK_PATH_PREFIX, stm32_link_get_name (link), NULL);
  self->object = stm32_dbus_object_skeleton_new (path);
  self->iface = stm32_dbus_link1_skeleton_new ();
  stm32_dbus_object_skeleton_set_link1 (self->object, self->iface);
  self->received_backlog = stm32_bus_backlog_new (link, G_DBUS_INTERFACE_SKELETON (self->iface),
                                                  STM32_RECEIVED_BACKLOG_MAX);
  bind_properties (self);

  g_signal_connect_object (self->iface, "handle-connect", G_CALLBACK (handle_connect), self, 0);
  g_signal_connect_object (self->iface, "handle-disconnect", G_CALLBACK (handle_disconnect), self,
                           0);
  g_signal_connect_object (self->iface, "handle-send", G_CALLBACK (handle_send), self, 0);
  g_signal_connect_object (self->iface, "handle-transact", G_CALLBACK (handle_transact), self, 0);
  g_signal_connect_object (self->iface, "handle-get-history", G_CALLBACK (handle_get_history), self,
                           0);
  g_signal_connect_object (self->iface, "handle-diagnose", G_CALLBACK (handle_diagnose), self, 0);
  g_signal_connect_object (self->iface, "handle-acquire-stream", G_CALLBACK (handle_acquire_stream),
                           self, 0);
  g_signal_connect_object (self->iface, "handle-open-transact-channel",
                           G_CALLBACK (handle_open_transact_channel), self, 0);
  g_signal_connect_object (self->iface, "handle-open-send-channel",
                           G_CALLBACK (handle_open_send_channel), self, 0);
  g_signal_connect_object (link, "received", G_CALLBACK (on_received), self, 0);
  return self;
}

Stm32Link *
stm32_link_export_get_link (Stm32LinkExport *self)
{
  g_return_val_if_fail (STM32_IS_LINK_EXPORT (self), NULL);
  return self->link;
}

GDBusObjectSkeleton *
stm32_link_export_get_object (Stm32LinkExport *self)
{
  g_return_val_if_fail (STM32_IS_LINK_EXPORT (self), NULL);
  return G_DBUS_OBJECT_SKELETON (self->object);
}

static void
stm32_link_export_dispose (GObject *object)
{
  Stm32LinkExport *self = STM32_LINK_EXPORT (object);

  g_clear_handle_id (&self->counter_timer, g_source_remove);
  if (self->streams != NULL)
    {
      GHashTableIter iter;
      gpointer bridge;

      g_hash_table_iter_init (&iter, self->streams);
      while (g_hash_table_iter_next (&iter, &bridge, NULL))
        {
          g_signal_handlers_disconnect_by_data (bridge, self);
          stm32_stream_bridge_close (bridge, "the link is no longer exported");
        }
      g_clear_pointer (&self->streams, g_hash_table_unref);
    }
  if (self->channels != NULL)
    {
      stm32_link_export_close_channels (self);
      g_clear_pointer (&self->channels, g_ptr_array_unref);
      g_clear_pointer (&self->send_channels, g_ptr_array_unref);
    }
  g_clear_object (&self->received_backlog);
  g_clear_object (&self->iface);
  g_clear_object (&self->object);
  g_clear_object (&self->link);
  G_OBJECT_CLASS (stm32_link_export_parent_class)->dispose (object);
}

static void
stm32_link_export_finalize (GObject *object)
{
  Stm32LinkExport *self = STM32_LINK_EXPORT (object);

  g_object_unref (self->callers);
  G_OBJECT_CLASS (stm32_link_export_parent_class)->finalize (object);
}

static void
stm32_link_export_class_init (Stm32LinkExportClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = stm32_link_export_dispose;
  G_OBJECT_CLASS (klass)->finalize = stm32_link_export_finalize;
}

static void
stm32_link_export_init (Stm32LinkExport *self)
{
  self->streams = g_hash_table_new_full (NULL, NULL, g_object_unref, unwatch_name);
  self->channels = g_ptr_array_new_with_free_func (g_object_unref);
  self->send_channels = g_ptr_array_new_with_free_func (g_object_unref);
}
