/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stm32ClientLink, one of the daemon's links: follows the generated
 * org.stm32d.Link1 proxy, re-emits its properties and Received, and knows
 * when the daemon dropped the link. Its method calls are in
 * stm32-client-link-calls.c. */
#include "stm32-client-link.h"

#include "stm32-client-private.h"
#include "stm32-client.h"
#include "stm32-error.h"

struct _Stm32ClientLink
{
  GObject parent_instance;

  Stm32DbusLink1 *proxy;
  GDBusObjectManager *objects;
  gboolean removed;
  guint call_timeout; /* ms, the client's call-timeout */
};

/* The Link1 properties, read-only (see install_properties()). */
static GParamSpec **props;
static guint n_props;

enum
{
  RECEIVED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (Stm32ClientLink, stm32_client_link, G_TYPE_OBJECT)

static void
stm32_client_link_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  Stm32ClientLink *self = STM32_CLIENT_LINK (object);

  /* Each property has the proxy's name and type, and reads its cache of the
   * daemon's values. */
  g_object_get_property (G_OBJECT (self->proxy), pspec->name, value);
}

static void
stm32_client_link_dispose (GObject *object)
{
  Stm32ClientLink *self = STM32_CLIENT_LINK (object);

  g_clear_object (&self->proxy);
  g_clear_object (&self->objects);
  G_OBJECT_CLASS (stm32_client_link_parent_class)->dispose (object);
}

/* A read-only copy of @spec, a property of the generated Link1 interface. */
static GParamSpec *
read_only_property (GParamSpec *spec)
{
  const GParamFlags flags = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  const char *name = g_param_spec_get_name (spec);
  const char *blurb = g_param_spec_get_blurb (spec);

  switch (G_PARAM_SPEC_VALUE_TYPE (spec))
    {
    case G_TYPE_STRING:
      return g_param_spec_string (name, NULL, blurb, NULL, flags);
    case G_TYPE_BOOLEAN:
      return g_param_spec_boolean (name, NULL, blurb, FALSE, flags);
    case G_TYPE_UINT:
      return g_param_spec_uint (name, NULL, blurb, G_PARAM_SPEC_UINT (spec)->minimum,
                                G_PARAM_SPEC_UINT (spec)->maximum, 0, flags);
    case G_TYPE_UINT64:
      return g_param_spec_uint64 (name, NULL, blurb, G_PARAM_SPEC_UINT64 (spec)->minimum,
                                  G_PARAM_SPEC_UINT64 (spec)->maximum, 0, flags);
    case G_TYPE_VARIANT:
      return g_param_spec_variant (name, NULL, blurb, G_PARAM_SPEC_VARIANT (spec)->type, NULL,
                                   flags);
    default:
      g_error ("Link1 property “%s” has a type libstm32client does not mirror", name);
    }
}

/* The XML lists the link's properties: each one of Link1's, under its name.
 * Read-only, unlike the generated interface's (which the daemon's skeleton
 * shares): stm32_client_link_set_autoconnect() reports what the daemon
 * answers, where setting the proxy's property would drop a refusal. */
static void
install_properties (GObjectClass *object_class)
{
  gpointer link1 = g_type_default_interface_ref (STM32_DBUS_TYPE_LINK1);
  g_autofree GParamSpec **specs = g_object_interface_list_properties (link1, &n_props);

  /* Index 0 is left out, as GObject reserves property id 0. */
  props = g_new0 (GParamSpec *, n_props + 1);
  for (guint i = 0; i < n_props; i++)
    props[i + 1] = read_only_property (specs[i]);
  g_object_class_install_properties (object_class, n_props + 1, props);
  g_type_default_interface_unref (link1);
}

static void
stm32_client_link_class_init (Stm32ClientLinkClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  /* Maps org.stm32d.Error.* replies to STM32_ERROR codes from the first call on. */
  (void) stm32_error_quark ();
  object_class->get_property = stm32_client_link_get_property;
  object_class->dispose = stm32_client_link_dispose;
  install_properties (object_class);

  /**
   * Stm32ClientLink::received:
   * @self: the link
   * @frame: a frame from the board, without framing bytes
   *
   * Every frame the board sends, in order, except the replies transactions
   * return to their callers (see org.stm32d.Link1.Received for late replies).
   */
  signals[RECEIVED] = g_signal_new ("received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                    NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_BYTES);
}

static void
stm32_client_link_init (Stm32ClientLink *self)
{
}

static void
on_proxy_notify (GObject *proxy, GParamSpec *pspec, Stm32ClientLink *self)
{
  /* The proxy notifies as PropertiesChanged arrives, with its whole cache
   * already updated: State and LastError are never seen out of step. */
  GParamSpec *mirror = g_object_class_find_property (G_OBJECT_GET_CLASS (self), pspec->name);

  if (mirror != NULL)
    g_object_notify_by_pspec (G_OBJECT (self), mirror);
}

static void
on_proxy_received (Stm32DbusLink1 *proxy, GVariant *frame, Stm32ClientLink *self)
{
  g_autoptr (GBytes) bytes = g_variant_get_data_as_bytes (frame);

  g_signal_emit (self, signals[RECEIVED], 0, bytes);
}

void
stm32_client_link_set_proxy (Stm32ClientLink *self, Stm32DbusLink1 *proxy)
{
  if (proxy == self->proxy)
    return;
  if (self->proxy != NULL)
    g_signal_handlers_disconnect_by_data (self->proxy, self);
  g_set_object (&self->proxy, proxy);
  stm32_client_proxy_set_call_timeout (G_DBUS_PROXY (proxy), self->call_timeout);
  g_signal_connect_object (proxy, "notify", G_CALLBACK (on_proxy_notify), self, 0);
  g_signal_connect_object (proxy, "received", G_CALLBACK (on_proxy_received), self, 0);
  /* A new proxy brings the daemon's current values, whatever the old one had. */
  g_object_freeze_notify (G_OBJECT (self));
  for (guint i = 1; i <= n_props; i++)
    g_object_notify_by_pspec (G_OBJECT (self), props[i]);
  g_object_thaw_notify (G_OBJECT (self));
}

Stm32ClientLink *
stm32_client_link_new (Stm32DbusLink1 *proxy, GDBusObjectManager *objects, guint call_timeout)
{
  Stm32ClientLink *self = g_object_new (STM32_TYPE_CLIENT_LINK, NULL);

  self->objects = g_object_ref (objects);
  self->call_timeout = call_timeout;
  stm32_client_link_set_proxy (self, proxy);
  return self;
}

void
stm32_client_link_set_call_timeout (Stm32ClientLink *self, guint call_timeout)
{
  self->call_timeout = call_timeout;
  stm32_client_proxy_set_call_timeout (G_DBUS_PROXY (self->proxy), call_timeout);
}

guint
stm32_client_link_get_call_timeout (Stm32ClientLink *self)
{
  return self->call_timeout;
}

void
stm32_client_link_mark_removed (Stm32ClientLink *self)
{
  self->removed = TRUE;
}

/* ---- properties ------------------------------------------------------------------- */

/**
 * stm32_client_link_get_name:
 * @self: a link
 *
 * Returns: the link's name, the last element of its object path
 */
const char *
stm32_client_link_get_name (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_name (self->proxy);
}

/**
 * stm32_client_link_get_host:
 * @self: a link
 *
 * Returns: the board's host name or address, as configured
 */
const char *
stm32_client_link_get_host (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_host (self->proxy);
}

/**
 * stm32_client_link_get_port:
 * @self: a link
 *
 * Returns: the board's TCP port
 */
guint16
stm32_client_link_get_port (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_port (self->proxy);
}

/**
 * stm32_client_link_get_state:
 * @self: a link
 *
 * Returns: "disconnected", "connecting", "connected", "closing" or "waiting"
 */
const char *
stm32_client_link_get_state (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_state (self->proxy);
}

/**
 * stm32_client_link_get_framing:
 * @self: a link
 *
 * Returns: "raw", "line", "u16be", "u32be" or "json"
 */
const char *
stm32_client_link_get_framing (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_framing (self->proxy);
}

/**
 * stm32_client_link_get_autoconnect:
 * @self: a link
 *
 * Returns: whether stm32d keeps the link up on its own
 */
gboolean
stm32_client_link_get_autoconnect (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  return stm32_dbus_link1_get_autoconnect (self->proxy);
}

/**
 * stm32_client_link_get_local_address:
 * @self: a link
 *
 * Returns: our end of the connection ("ADDRESS:PORT"), or "" when not connected
 */
const char *
stm32_client_link_get_local_address (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_local_address (self->proxy);
}

/**
 * stm32_client_link_get_remote_address:
 * @self: a link
 *
 * Returns: the board's end of the connection, or "" when not connected
 */
const char *
stm32_client_link_get_remote_address (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_remote_address (self->proxy);
}

/**
 * stm32_client_link_get_connected_since:
 * @self: a link
 *
 * Returns: when the connection was established, in µs since the epoch; 0 when
 *   not connected
 */
guint64
stm32_client_link_get_connected_since (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_connected_since (self->proxy);
}

/**
 * stm32_client_link_get_retry_in:
 * @self: a link
 *
 * Returns: while "waiting", the delay in ms before the next attempt; 0 otherwise
 */
guint
stm32_client_link_get_retry_in (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_retry_in (self->proxy);
}

/**
 * stm32_client_link_get_last_error:
 * @self: a link
 *
 * Returns: why the last attempt or connection failed ("none", "refused",
 *   "server-busy", …; see org.stm32d.Link1.LastError)
 */
const char *
stm32_client_link_get_last_error (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_last_error (self->proxy);
}

/**
 * stm32_client_link_get_last_error_message:
 * @self: a link
 *
 * Returns: what the last error was about, for people; "" with "none"
 */
const char *
stm32_client_link_get_last_error_message (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_last_error_message (self->proxy);
}

/**
 * stm32_client_link_get_bytes_sent:
 * @self: a link
 *
 * Returns: bytes the board's TCP stack acknowledged since the daemon started,
 *   framing included
 */
guint64
stm32_client_link_get_bytes_sent (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_bytes_sent (self->proxy);
}

/**
 * stm32_client_link_get_bytes_received:
 * @self: a link
 *
 * Returns: bytes read from the board since the daemon started
 */
guint64
stm32_client_link_get_bytes_received (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_bytes_received (self->proxy);
}

/**
 * stm32_client_link_get_frames_sent:
 * @self: a link
 *
 * Returns: frames the board's TCP stack acknowledged (heartbeats included)
 */
guint64
stm32_client_link_get_frames_sent (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_frames_sent (self->proxy);
}

/**
 * stm32_client_link_get_frames_received:
 * @self: a link
 *
 * Returns: frames received from the board
 */
guint64
stm32_client_link_get_frames_received (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_frames_received (self->proxy);
}

/**
 * stm32_client_link_get_connects:
 * @self: a link
 *
 * Returns: connections established
 */
guint64
stm32_client_link_get_connects (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_connects (self->proxy);
}

/**
 * stm32_client_link_get_disconnects:
 * @self: a link
 *
 * Returns: established connections that ended, for any reason
 */
guint64
stm32_client_link_get_disconnects (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_disconnects (self->proxy);
}

/**
 * stm32_client_link_get_connect_failures:
 * @self: a link
 *
 * Returns: attempts that never got connected
 */
guint64
stm32_client_link_get_connect_failures (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_connect_failures (self->proxy);
}

/**
 * stm32_client_link_get_late_replies:
 * @self: a link
 *
 * Returns: replies that came after their transaction's caller stopped
 *   waiting; each was received, never handed to another caller
 */
guint64
stm32_client_link_get_late_replies (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_late_replies (self->proxy);
}

/**
 * stm32_client_link_get_resets_sent:
 * @self: a link
 *
 * Returns: connections stm32d ended with a RST (the history's "aborted")
 */
guint64
stm32_client_link_get_resets_sent (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_resets_sent (self->proxy);
}

/**
 * stm32_client_link_get_transact_timeouts:
 * @self: a link
 *
 * Returns: transactions whose caller got a timeout
 */
guint64
stm32_client_link_get_transact_timeouts (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_transact_timeouts (self->proxy);
}

/* An empty value of @type until stm32d published the property. */
static GVariant *
dup_or_empty (GVariant *value, const GVariantType *type)
{
  if (value != NULL && g_variant_is_of_type (value, type))
    return g_variant_ref (value);
  return g_variant_ref_sink (g_variant_new_array (g_variant_type_element (type), NULL, 0));
}

/**
 * stm32_client_link_dup_failures:
 * @self: a link
 *
 * Attempts and connections that ended for a reason other than a requested
 * close, by reason (a #Stm32ClientLink:last-error value): every reason is
 * present, 0 until it happened.
 *
 * Returns: (transfer full): an a{st} dictionary, reason → count
 */
GVariant *
stm32_client_link_dup_failures (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return dup_or_empty (stm32_dbus_link1_get_failures (self->proxy), G_VARIANT_TYPE ("a{st}"));
}

/**
 * stm32_client_link_dup_round_trips:
 * @self: a link
 *
 * Answered transactions by round trip, a cumulative histogram whose bucket
 * bounds are part of the D-Bus API (Link1.RoundTrips): 0.1, 0.25, 0.5, 1,
 * 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000 and 10000 ms, then
 * all of them.
 *
 * Returns: (transfer full): an array of 17 counts (at)
 */
GVariant *
stm32_client_link_dup_round_trips (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return dup_or_empty (stm32_dbus_link1_get_round_trips (self->proxy), G_VARIANT_TYPE ("at"));
}

/**
 * stm32_client_link_get_round_trip_sum:
 * @self: a link
 *
 * Returns: the sum of the round trips stm32_client_link_dup_round_trips()
 *   counts, in µs
 */
guint64
stm32_client_link_get_round_trip_sum (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_round_trip_sum (self->proxy);
}

/**
 * stm32_client_link_get_close_strategy:
 * @self: a link
 *
 * Returns: how the next Disconnect closes: "graceful", "learned-reset"
 *   (the board ignores EOF: RST once it acknowledged everything),
 *   "recheck" or "reset"; see org.stm32d.Link1.CloseStrategy
 */
const char *
stm32_client_link_get_close_strategy (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_close_strategy (self->proxy);
}

/**
 * stm32_client_link_get_close_strategy_reason:
 * @self: a link
 *
 * Returns: why the close strategy is what it is, for people
 */
const char *
stm32_client_link_get_close_strategy_reason (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  return stm32_dbus_link1_get_close_strategy_reason (self->proxy);
}

/**
 * stm32_client_link_get_close_wait:
 * @self: a link
 *
 * Returns: the longest the next close waits, in ms: for the board's FIN,
 *   or for it to acknowledge what was sent
 */
guint
stm32_client_link_get_close_wait (Stm32ClientLink *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), 0);
  return stm32_dbus_link1_get_close_wait (self->proxy);
}

/* ---- what calls find once the link is gone ------------------------------------- */

static void
link_set_gone_error (Stm32ClientLink *self, GError **error)
{
  g_autofree char *owner =
      g_dbus_object_manager_client_get_name_owner (G_DBUS_OBJECT_MANAGER_CLIENT (self->objects));

  if (owner == NULL)
    stm32_client_set_not_running_error (error);
  else
    g_set_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK,
                 "stm32d no longer has link “%s”", stm32_client_link_get_name (self));
}

static void
on_link_gone (gpointer user_data, GError **error)
{
  link_set_gone_error (user_data, error);
}

GError *
stm32_client_link_call_error (Stm32ClientLink *self, GError *error, guint timeout_ms)
{
  return stm32_client_call_error (error, timeout_ms, on_link_gone, self);
}

gboolean
stm32_client_link_may_call (Stm32ClientLink *self, GError **error)
{
  if (!self->removed)
    return TRUE;
  link_set_gone_error (self, error);
  return FALSE;
}

Stm32DbusLink1 *
stm32_client_link_get_proxy (Stm32ClientLink *self)
{
  return self->proxy;
}
