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

/* The Link1 skeleton whose method handlers are the export's functions, set
 * in the interface's vtable once for all links: a signal handler per method
 * would cost every link a closure each. */
#define STM32_TYPE_LINK_SKELETON (stm32_link_skeleton_get_type ())
G_DECLARE_FINAL_TYPE (Stm32LinkSkeleton, stm32_link_skeleton, STM32, LINK_SKELETON,
                      Stm32DbusLink1Skeleton)

struct _Stm32LinkSkeleton
{
  Stm32DbusLink1Skeleton parent_instance;

  /* Not owned: cleared when the export goes, while GDBus may still hold
   * the skeleton for a call in flight, which then is not handled. */
  Stm32LinkExport *export;
};

static void stm32_link_skeleton_iface_init (Stm32DbusLink1Iface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (Stm32LinkSkeleton, stm32_link_skeleton,
                               STM32_DBUS_TYPE_LINK1_SKELETON,
                               G_IMPLEMENT_INTERFACE (STM32_DBUS_TYPE_LINK1,
                                                      stm32_link_skeleton_iface_init))

static void
stm32_link_skeleton_class_init (Stm32LinkSkeletonClass *klass)
{
}

static void
stm32_link_skeleton_init (Stm32LinkSkeleton *self)
{
}

static Stm32LinkExport *
export_of (Stm32DbusLink1 *iface)
{
  return STM32_LINK_SKELETON (iface)->export;
}


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

/* How a link property reaches the Link1 property of the same name. One
 * notify handler walks this table instead of a GBinding per property: with
 * thousands of links, each binding's object and closures cost more than
 * the link itself. */
typedef enum
{
  MIRROR_COPY,
  MIRROR_ENUM_NICK,       /* D-Bus carries the enum's nick */
  MIRROR_STRING_OR_EMPTY, /* D-Bus strings cannot be absent: an unset address is "" */
  MIRROR_COUNTER,         /* published with the other counters, see on_counters_changed */
} MirrorKind;

typedef struct
{
  const char *name;
  MirrorKind kind;
} Mirror;

static const Mirror mirrors[] = {
  { "state", MIRROR_ENUM_NICK },
  { "last-error", MIRROR_ENUM_NICK },
  { "close-strategy", MIRROR_ENUM_NICK },
  { "local-address", MIRROR_STRING_OR_EMPTY },
  { "remote-address", MIRROR_STRING_OR_EMPTY },
  { "last-error-message", MIRROR_STRING_OR_EMPTY },
  { "close-strategy-reason", MIRROR_STRING_OR_EMPTY },
  { "connected-since", MIRROR_COPY },
  { "retry-in", MIRROR_COPY },
  { "close-wait", MIRROR_COPY },
  { "autoconnect", MIRROR_COPY },
  { "bytes-sent", MIRROR_COUNTER },
  { "bytes-received", MIRROR_COUNTER },
  { "frames-sent", MIRROR_COUNTER },
  { "frames-received", MIRROR_COUNTER },
  { "connects", MIRROR_COUNTER },
  { "disconnects", MIRROR_COUNTER },
  { "connect-failures", MIRROR_COUNTER },
  { "late-replies", MIRROR_COUNTER },
  { "resets-sent", MIRROR_COUNTER },
  { "transact-timeouts", MIRROR_COUNTER },
  { "failures", MIRROR_COUNTER },
  { "round-trips", MIRROR_COUNTER },
  { "round-trip-sum", MIRROR_COUNTER },
};

static const Mirror *
find_mirror (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (mirrors); i++)
    if (g_str_equal (mirrors[i].name, name))
      return &mirrors[i];
  return NULL;
}

/* Counters and autoconnect are the same type on both sides. */
static void
copy_property (GObject *from, GObject *to, const char *name)
{
  g_auto (GValue) value = G_VALUE_INIT;

  g_object_get_property (from, name, &value);
  g_object_set_property (to, name, &value);
}

static void
mirror_property (Stm32LinkExport *self, const Mirror *mirror)
{
  g_auto (GValue) from = G_VALUE_INIT;
  g_auto (GValue) to = G_VALUE_INIT;
  const char *value;

  if (mirror->kind == MIRROR_COPY || mirror->kind == MIRROR_COUNTER)
    {
      copy_property (G_OBJECT (self->link), G_OBJECT (self->iface), mirror->name);
      return;
    }
  g_object_get_property (G_OBJECT (self->link), mirror->name, &from);
  if (mirror->kind == MIRROR_ENUM_NICK)
    value = stm32_enum_to_string (G_VALUE_TYPE (&from), g_value_get_enum (&from));
  else
    value = g_value_get_string (&from) ? g_value_get_string (&from) : "";
  g_value_init (&to, G_TYPE_STRING);
  g_value_set_string (&to, value);
  g_object_set_property (G_OBJECT (self->iface), mirror->name, &to);
}

static void
publish_counters (Stm32LinkExport *self)
{
  g_clear_handle_id (&self->counter_timer, g_source_remove);
  for (guint i = 0; i < G_N_ELEMENTS (mirrors); i++)
    if (mirrors[i].kind == MIRROR_COUNTER)
      mirror_property (self, &mirrors[i]);
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
 * bus with PropertiesChanged, so they go out at most every
 * STM32_COUNTER_PUBLISH_MS, and whoever sees a new State also sees the
 * counters that led to it. */
static void
on_counters_changed (Stm32Link *link, Stm32LinkExport *self)
{
  if (self->counter_timer == 0)
    self->counter_timer = g_timeout_add (STM32_COUNTER_PUBLISH_MS, on_counter_timer, self);
}

static void
on_link_notify (Stm32Link *link, GParamSpec *pspec, Stm32LinkExport *self)
{
  const Mirror *mirror = find_mirror (pspec->name);

  if (mirror == NULL || mirror->kind == MIRROR_COUNTER)
    return;
  mirror_property (self, mirror);
  /* Only if a counter changed since they were last published (the timer
   * runs until they are): most changes of State, such as every link's first
   * "connecting" at start, follow none, and reading them all again built
   * Failures and RoundTrips for nothing. */
  if (g_str_equal (pspec->name, "state") && self->counter_timer != 0)
    publish_counters (self);
}

/* Autoconnect is the one property clients may set. */
static void
on_iface_autoconnect (Stm32DbusLink1 *iface, GParamSpec *pspec, Stm32LinkExport *self)
{
  if (stm32_dbus_link1_get_autoconnect (iface) != stm32_link_get_autoconnect (self->link))
    copy_property (G_OBJECT (iface), G_OBJECT (self->link), "autoconnect");
}

static void
bind_properties (Stm32LinkExport *self)
{
  const Stm32LinkConfig *config = stm32_link_get_config (self->link);

  stm32_dbus_link1_set_name (self->iface, stm32_link_get_name (self->link));
  stm32_dbus_link1_set_host (self->iface, config->host);
  stm32_dbus_link1_set_port (self->iface, config->port);
  stm32_dbus_link1_set_framing (self->iface,
                                stm32_enum_to_string (STM32_TYPE_FRAMING, config->framing));
  for (guint i = 0; i < G_N_ELEMENTS (mirrors); i++)
    mirror_property (self, &mirrors[i]);
  g_signal_connect_object (self->link, "notify", G_CALLBACK (on_link_notify), self, 0);
  g_signal_connect_object (self->link, "counters-changed", G_CALLBACK (on_counters_changed), self,
                           0);
  g_signal_connect_object (self->iface, "notify::autoconnect", G_CALLBACK (on_iface_autoconnect),
                           self, 0);
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
handle_connect (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation)
{
  Stm32LinkExport *self = export_of (iface);

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
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
handle_disconnect (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation)
{
  Stm32LinkExport *self = export_of (iface);

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
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
handle_send (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, GVariant *frame)
{
  Stm32LinkExport *self = export_of (iface);
  g_autoptr (GBytes) bytes = NULL;

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
  bytes = g_variant_get_data_as_bytes (frame);
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
                 guint timeout_ms)
{
  Stm32LinkExport *self = export_of (iface);
  g_autoptr (GBytes) bytes = NULL;
  PendingCall *call;

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
  bytes = g_variant_get_data_as_bytes (request);
  call = pending_call_new_watched (self, invocation);
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
handle_get_history (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation)
{
  Stm32LinkExport *self = export_of (iface);
  g_autoptr (GPtrArray) history = NULL;
  GVariantBuilder builder;

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
  history = stm32_link_dup_history (self->link);
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
handle_diagnose (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation, GVariant *options)
{
  Stm32LinkExport *self = export_of (iface);
  g_autoptr (GError) error = NULL;
  DiagnoseCall *diagnose;
  gboolean probe;
  guint probe_max;

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
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
  /* Made on first use, like the channel arrays: most links of a fleet never
   * hand out a stream or a channel. */
  if (self->streams == NULL)
    self->streams = g_hash_table_new_full (NULL, NULL, g_object_unref, unwatch_name);
  g_hash_table_insert (self->streams, g_object_ref (bridge), GUINT_TO_POINTER (watch));
  g_signal_connect_object (bridge, "closed", G_CALLBACK (on_stream_closed), self, 0);
}

static gboolean
handle_acquire_stream (Stm32DbusLink1 *iface, GDBusMethodInvocation *invocation,
                       GUnixFDList *in_fds)
{
  Stm32LinkExport *self = export_of (iface);
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32StreamBridge) bridge = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  int fd;

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
  bridge = stm32_stream_bridge_new (self->link, &error);
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
                              GUnixFDList *in_fds)
{
  Stm32LinkExport *self = export_of (iface);
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32TransactChannel) channel = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  int fd;

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
  /* Each costs the daemon a socket and a little memory; a client that opens
   * them in a loop must not be able to run the daemon out of fds. */
  if (self->channels == NULL)
    self->channels = g_ptr_array_new_with_free_func (g_object_unref);
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
                          GUnixFDList *in_fds)
{
  Stm32LinkExport *self = export_of (iface);
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32SendChannel) channel = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  int fd;

  if (self == NULL)
    return G_DBUS_METHOD_INVOCATION_UNHANDLED;
  if (self->send_channels == NULL)
    self->send_channels = g_ptr_array_new_with_free_func (g_object_unref);
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
  for (guint i = self->channels != NULL ? self->channels->len : 0; i > 0; i--)
    stm32_transact_channel_close (self->channels->pdata[i - 1], "the link is no longer exported");
  for (guint i = self->send_channels != NULL ? self->send_channels->len : 0; i > 0; i--)
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

static void
stm32_link_skeleton_iface_init (Stm32DbusLink1Iface *iface)
{
  iface->handle_connect = handle_connect;
  iface->handle_disconnect = handle_disconnect;
  iface->handle_send = handle_send;
  iface->handle_transact = handle_transact;
  iface->handle_get_history = handle_get_history;
  iface->handle_diagnose = handle_diagnose;
  iface->handle_acquire_stream = handle_acquire_stream;
  iface->handle_open_transact_channel = handle_open_transact_channel;
  iface->handle_open_send_channel = handle_open_send_channel;
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
  self->iface = g_object_new (STM32_TYPE_LINK_SKELETON, NULL);
  STM32_LINK_SKELETON (self->iface)->export = self;
  stm32_dbus_object_skeleton_set_link1 (self->object, self->iface);
  self->received_backlog = stm32_bus_backlog_new (link, G_DBUS_INTERFACE_SKELETON (self->iface),
                                                  STM32_RECEIVED_BACKLOG_MAX);
  bind_properties (self);

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
  stm32_link_export_close_channels (self);
  g_clear_pointer (&self->channels, g_ptr_array_unref);
  g_clear_pointer (&self->send_channels, g_ptr_array_unref);
  g_clear_object (&self->received_backlog);
  if (self->iface != NULL)
    STM32_LINK_SKELETON (self->iface)->export = NULL;
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
}
