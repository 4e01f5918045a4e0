/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stm32ClientLink: one of the daemon's links, as a GObject around the generated
 * org.stm32d.Link1 proxy, whose properties it re-emits and whose methods it
 * calls, with the library's errors. */
#include "stm32-client-link.h"

#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>

#include "stm32-client-private.h"
#include "stm32-client.h"
#include "stm32-error.h"
#include "stm32-names.h"

struct _Stm32ClientLink
{
  GObject parent_instance;

  Stm32DbusLink1 *proxy;
  GDBusObjectManager *objects;
  gboolean removed;
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
  stm32_client_proxy_disable_timeout (G_DBUS_PROXY (proxy));
  g_signal_connect_object (proxy, "notify", G_CALLBACK (on_proxy_notify), self, 0);
  g_signal_connect_object (proxy, "received", G_CALLBACK (on_proxy_received), self, 0);
  /* A new proxy brings the daemon's current values, whatever the old one had. */
  g_object_freeze_notify (G_OBJECT (self));
  for (guint i = 1; i <= n_props; i++)
    g_object_notify_by_pspec (G_OBJECT (self), props[i]);
  g_object_thaw_notify (G_OBJECT (self));
}

Stm32ClientLink *
stm32_client_link_new (Stm32DbusLink1 *proxy, GDBusObjectManager *objects)
{
  Stm32ClientLink *self = g_object_new (STM32_TYPE_CLIENT_LINK, NULL);

  self->objects = g_object_ref (objects);
  stm32_client_link_set_proxy (self, proxy);
  return self;
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

/* ---- calls ------------------------------------------------------------------------ */

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

static GError *
link_call_error (Stm32ClientLink *self, GError *error)
{
  return stm32_client_call_error (error, on_link_gone, self);
}

/* Whether a call may go out: on a link the daemon dropped, it fails at once. */
static gboolean
link_may_call (Stm32ClientLink *self, GError **error)
{
  if (!self->removed)
    return TRUE;
  link_set_gone_error (self, error);
  return FALSE;
}

/* Passes on @ok, what a _sync call returned, with the error it set as callers see it. */
static gboolean
link_sync_done (Stm32ClientLink *self, gboolean ok, GError **error)
{
  if (!ok && error != NULL)
    *error = link_call_error (self, *error);
  return ok;
}

/* A task for @source_tag, or NULL once it has failed because the link is gone. */
static GTask *
link_task_start (Stm32ClientLink *self, gpointer source_tag, GCancellable *cancellable,
                 GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, source_tag);
  if (link_may_call (self, &error))
    return g_steal_pointer (&task);
  g_task_return_error (task, error);
  return NULL;
}

/* Ends @task with the error (taken) of its call, as callers see it. */
static void
link_task_return_error (GTask *task, GError *error)
{
  g_task_return_error (task, link_call_error (g_task_get_source_object (task), error));
}

/* Ends @task with @ok, what its call's _finish returned, or with @error (taken). */
static void
link_task_return_boolean (GTask *task, gboolean ok, GError *error)
{
  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    link_task_return_error (task, error);
}

static gboolean
link_task_finish_boolean (Stm32ClientLink *self, GAsyncResult *result, gpointer source_tag,
                          GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gpointer
link_task_finish_pointer (Stm32ClientLink *self, GAsyncResult *result, gpointer source_tag,
                          GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static GVariant *
frame_variant (GBytes *frame)
{
  return g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, frame, TRUE);
}

/* ---- Autoconnect ------------------------------------------------------------------ */

/* The generated code has no Properties.Set that reports the daemon's answer
 * (setting the proxy's property logs a refusal), so this one call is by name. */
#define PROPERTIES_SET "org.freedesktop.DBus.Properties.Set"

static GVariant *
autoconnect_args (gboolean autoconnect)
{
  return g_variant_new ("(ssv)", STM32_DBUS_LINK_INTERFACE, "Autoconnect",
                        g_variant_new_boolean (autoconnect));
}

static void
on_autoconnect_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  g_autoptr (GVariant) reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);

  link_task_return_boolean (task, reply != NULL, error);
}

/**
 * stm32_client_link_set_autoconnect:
 * @self: a link
 * @autoconnect: whether stm32d should keep the link up on its own
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the daemon has answered
 * @user_data: (closure): data for @callback
 *
 * Sets the link's Autoconnect on the daemon (org.freedesktop.DBus.Properties.Set,
 * so a refusal comes back as an error). #Stm32ClientLink:autoconnect follows
 * when the daemon announces the change.
 */
void
stm32_client_link_set_autoconnect (Stm32ClientLink *self, gboolean autoconnect,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task =
      link_task_start (self, stm32_client_link_set_autoconnect, cancellable, callback, user_data);
  if (task != NULL)
    g_dbus_proxy_call (G_DBUS_PROXY (self->proxy), PROPERTIES_SET, autoconnect_args (autoconnect),
                       G_DBUS_CALL_FLAGS_NONE, -1, cancellable, on_autoconnect_set, task);
}

/**
 * stm32_client_link_set_autoconnect_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: whether the daemon took the new value
 */
gboolean
stm32_client_link_set_autoconnect_finish (Stm32ClientLink *self, GAsyncResult *result,
                                          GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_set_autoconnect, error);
}

/**
 * stm32_client_link_set_autoconnect_sync:
 * @self: a link
 * @autoconnect: whether stm32d should keep the link up on its own
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_set_autoconnect().
 *
 * Returns: whether the daemon took the new value
 */
gboolean
stm32_client_link_set_autoconnect_sync (Stm32ClientLink *self, gboolean autoconnect,
                                        GCancellable *cancellable, GError **error)
{
  g_autoptr (GVariant) reply = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  if (!link_may_call (self, error))
    return FALSE;
  reply = g_dbus_proxy_call_sync (G_DBUS_PROXY (self->proxy), PROPERTIES_SET,
                                  autoconnect_args (autoconnect), G_DBUS_CALL_FLAGS_NONE, -1,
                                  cancellable, error);
  return link_sync_done (self, reply != NULL, error);
}

/* ---- Connect, Disconnect, Send ---------------------------------------------------- */

static void
on_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  gboolean ok = stm32_dbus_link1_call_connect_finish (STM32_DBUS_LINK1 (source), result, &error);

  link_task_return_boolean (task, ok, error);
}

/**
 * stm32_client_link_connect:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once connected, or with the attempt's error
 * @user_data: (closure): data for @callback
 *
 * Connects now, or joins the attempt under way (org.stm32d.Link1.Connect).
 * The link stays wanted: after a failure stm32d keeps retrying with backoff
 * until stm32_client_link_disconnect().
 */
void
stm32_client_link_connect (Stm32ClientLink *self, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_connect, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_connect (self->proxy, cancellable, on_connected, task);
}

/**
 * stm32_client_link_connect_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (a #STM32_ERROR code)
 *
 * Returns: whether the link is connected
 */
gboolean
stm32_client_link_connect_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_connect, error);
}

/**
 * stm32_client_link_connect_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error (a #STM32_ERROR code)
 *
 * Blocks the calling thread; see stm32_client_link_connect().
 *
 * Returns: whether the link is connected
 */
gboolean
stm32_client_link_connect_sync (Stm32ClientLink *self, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  return link_may_call (self, error) &&
         link_sync_done (self, stm32_dbus_link1_call_connect_sync (self->proxy, cancellable, error),
                         error);
}

static void
on_disconnected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  gboolean ok = stm32_dbus_link1_call_disconnect_finish (STM32_DBUS_LINK1 (source), result, &error);

  link_task_return_boolean (task, ok, error);
}

/**
 * stm32_client_link_disconnect:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the socket is closed
 * @user_data: (closure): data for @callback
 *
 * Closes gracefully, queued frames first (org.stm32d.Link1.Disconnect). The
 * link then stays down until connected again or Autoconnect is set.
 */
void
stm32_client_link_disconnect (Stm32ClientLink *self, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_disconnect, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_disconnect (self->proxy, cancellable, on_disconnected, task);
}

/**
 * stm32_client_link_disconnect_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: whether the link is closed
 */
gboolean
stm32_client_link_disconnect_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_disconnect, error);
}

/**
 * stm32_client_link_disconnect_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_disconnect().
 *
 * Returns: whether the link is closed
 */
gboolean
stm32_client_link_disconnect_sync (Stm32ClientLink *self, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  return link_may_call (self, error) &&
         link_sync_done (
             self, stm32_dbus_link1_call_disconnect_sync (self->proxy, cancellable, error), error);
}

static void
on_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  gboolean ok = stm32_dbus_link1_call_send_finish (STM32_DBUS_LINK1 (source), result, &error);

  link_task_return_boolean (task, ok, error);
}

/**
 * stm32_client_link_send:
 * @self: a link
 * @frame: one frame, without framing bytes (stm32d adds them)
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the board's TCP stack acknowledged the
 *   whole frame, or with why not
 * @user_data: (closure): data for @callback
 *
 * Sends one frame to the board (org.stm32d.Link1.Send).
 */
void
stm32_client_link_send (Stm32ClientLink *self, GBytes *frame, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  g_return_if_fail (frame != NULL);
  task = link_task_start (self, stm32_client_link_send, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_send (self->proxy, frame_variant (frame), cancellable, on_sent, task);
}

/**
 * stm32_client_link_send_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (a #STM32_ERROR code such as
 *   %STM32_ERROR_NOT_CONNECTED or %STM32_ERROR_QUEUE_FULL)
 *
 * Returns: whether the board's TCP stack acknowledged the whole frame
 */
gboolean
stm32_client_link_send_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_send, error);
}

/**
 * stm32_client_link_send_sync:
 * @self: a link
 * @frame: one frame, without framing bytes
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error (a #STM32_ERROR code)
 *
 * Blocks the calling thread; see stm32_client_link_send().
 *
 * Returns: whether the board's TCP stack acknowledged the whole frame
 */
gboolean
stm32_client_link_send_sync (Stm32ClientLink *self, GBytes *frame, GCancellable *cancellable,
                             GError **error)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  g_return_val_if_fail (frame != NULL, FALSE);
  return link_may_call (self, error) &&
         link_sync_done (self,
                         stm32_dbus_link1_call_send_sync (self->proxy, frame_variant (frame),
                                                          cancellable, error),
                         error);
}

/* ---- Transact, GetHistory, Diagnose ----------------------------------------------- */

static void
on_transacted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GVariant) reply = NULL;
  GError *error = NULL;

  if (stm32_dbus_link1_call_transact_finish (STM32_DBUS_LINK1 (source), &reply, result, &error))
    g_task_return_pointer (task, g_variant_get_data_as_bytes (reply),
                           (GDestroyNotify) g_bytes_unref);
  else
    link_task_return_error (task, error);
}

/**
 * stm32_client_link_transact:
 * @self: a link
 * @request: the frame to send
 * @timeout_ms: how long to wait for the reply, including the wait for earlier
 *   transactions; at least 1
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the reply or an error
 * @user_data: (closure): data for @callback
 *
 * Sends @request and returns the next frame the board sends
 * (org.stm32d.Link1.Transact). Transactions run one at a time, in order.
 * Each is a D-Bus round trip; for many requests, see
 * stm32_client_link_open_transact_channel().
 */
void
stm32_client_link_transact (Stm32ClientLink *self, GBytes *request, guint timeout_ms,
                            GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  g_return_if_fail (request != NULL);
  task = link_task_start (self, stm32_client_link_transact, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_transact (self->proxy, frame_variant (request), timeout_ms, cancellable,
                                    on_transacted, task);
}

/**
 * stm32_client_link_transact_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_TIMEOUT when no frame
 *   came in time)
 *
 * Returns: (transfer full): the reply, without framing bytes, or %NULL
 */
GBytes *
stm32_client_link_transact_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_pointer (self, result, stm32_client_link_transact, error);
}

/**
 * stm32_client_link_transact_sync:
 * @self: a link
 * @request: the frame to send
 * @timeout_ms: how long to wait for the reply; at least 1
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_transact().
 *
 * Returns: (transfer full): the reply, without framing bytes, or %NULL
 */
GBytes *
stm32_client_link_transact_sync (Stm32ClientLink *self, GBytes *request, guint timeout_ms,
                                 GCancellable *cancellable, GError **error)
{
  g_autoptr (GVariant) reply = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  g_return_val_if_fail (request != NULL, NULL);
  if (!link_may_call (self, error) ||
      !link_sync_done (self,
                       stm32_dbus_link1_call_transact_sync (self->proxy, frame_variant (request),
                                                            timeout_ms, &reply, cancellable, error),
                       error))
    return NULL;
  return g_variant_get_data_as_bytes (reply);
}

static void
on_history (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GVariant) attempts = NULL;
  GError *error = NULL;

  if (stm32_dbus_link1_call_get_history_finish (STM32_DBUS_LINK1 (source), &attempts, result,
                                                &error))
    g_task_return_pointer (task, g_steal_pointer (&attempts), (GDestroyNotify) g_variant_unref);
  else
    link_task_return_error (task, error);
}

/**
 * stm32_client_link_get_history:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the history
 * @user_data: (closure): data for @callback
 *
 * Asks for the recent connection attempts (org.stm32d.Link1.GetHistory).
 */
void
stm32_client_link_get_history (Stm32ClientLink *self, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_get_history, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_get_history (self->proxy, cancellable, on_history, task);
}

/**
 * stm32_client_link_get_history_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: (transfer full): the attempts, oldest first, as a #GVariant of type
 *   aa{sv} (keys as in org.stm32d.Link1.GetHistory), or %NULL
 */
GVariant *
stm32_client_link_get_history_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_pointer (self, result, stm32_client_link_get_history, error);
}

/**
 * stm32_client_link_get_history_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_get_history().
 *
 * Returns: (transfer full): the attempts as a #GVariant of type aa{sv}, or %NULL
 */
GVariant *
stm32_client_link_get_history_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                    GError **error)
{
  g_autoptr (GVariant) attempts = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  if (!link_may_call (self, error) ||
      !link_sync_done (
          self, stm32_dbus_link1_call_get_history_sync (self->proxy, &attempts, cancellable, error),
          error))
    return NULL;
  return g_steal_pointer (&attempts);
}

/* @options, its floating reference sunk, or an empty a{sv} for NULL. */
static GVariant *
diagnose_options (GVariant *options)
{
  if (options == NULL)
    return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0));
  return g_variant_ref_sink (options);
}

static void
on_diagnosed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GVariant) report = NULL;
  GError *error = NULL;

  if (stm32_dbus_link1_call_diagnose_finish (STM32_DBUS_LINK1 (source), &report, result, &error))
    g_task_return_pointer (task, g_steal_pointer (&report), (GDestroyNotify) g_variant_unref);
  else
    link_task_return_error (task, error);
}

/**
 * stm32_client_link_diagnose:
 * @self: a link
 * @options: (nullable): a #GVariant of type a{sv}: "probe" (b) and "probe-max"
 *   (u); %NULL for a passive diagnosis. A floating reference is consumed.
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the report
 * @user_data: (closure): data for @callback
 *
 * Asks stm32d what is wrong with the board's connection
 * (org.stm32d.Link1.Diagnose). With "probe" it opens connections to the
 * board for a few seconds; cancelling ends the probe.
 */
void
stm32_client_link_diagnose (Stm32ClientLink *self, GVariant *options, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GVariant) args = NULL;
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  g_return_if_fail (options == NULL || g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT));
  args = diagnose_options (options);
  task = link_task_start (self, stm32_client_link_diagnose, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_diagnose (self->proxy, args, cancellable, on_diagnosed, task);
}

/**
 * stm32_client_link_diagnose_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: (transfer full): the report, a #GVariant of type a{sv} ("healthy",
 *   "findings", "census", "history-summary", "probe", ... as in
 *   org.stm32d.Link1.Diagnose), or %NULL
 */
GVariant *
stm32_client_link_diagnose_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_pointer (self, result, stm32_client_link_diagnose, error);
}

/**
 * stm32_client_link_diagnose_sync:
 * @self: a link
 * @options: (nullable): a #GVariant of type a{sv}, as for stm32_client_link_diagnose()
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_diagnose().
 *
 * Returns: (transfer full): the report as a #GVariant of type a{sv}, or %NULL
 */
GVariant *
stm32_client_link_diagnose_sync (Stm32ClientLink *self, GVariant *options,
                                 GCancellable *cancellable, GError **error)
{
  g_autoptr (GVariant) args = NULL;
  g_autoptr (GVariant) report = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  g_return_val_if_fail (options == NULL || g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT),
                        NULL);
  args = diagnose_options (options);
  if (!link_may_call (self, error) ||
      !link_sync_done (
          self,
          stm32_dbus_link1_call_diagnose_sync (self->proxy, args, &report, cancellable, error),
          error))
    return NULL;
  return g_steal_pointer (&report);
}

/* ---- AcquireStream ---------------------------------------------------------------- */

static GSocket *
socket_from_reply (const char *method, GVariant *handle, GUnixFDList *fds, GError **error)
{
  int index = g_variant_get_handle (handle);
  GSocket *socket;
  int fd;

  /* Checked here: g_unix_fd_list_get() treats a bad index as a programming error. */
  if (fds == NULL || index < 0 || index >= g_unix_fd_list_get_length (fds))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_FAILED,
                   "stm32d answered %s without a file descriptor", method);
      return NULL;
    }
  fd = g_unix_fd_list_get (fds, index, error);
  if (fd < 0)
    return NULL;
  socket = g_socket_new_from_fd (fd, error);
  if (socket == NULL)
    g_close (fd, NULL);
  return socket;
}

static void
on_stream_acquired (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32ClientLink *self = g_task_get_source_object (task);
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  GError *error = NULL;
  GSocket *socket = NULL;

  if (stm32_dbus_link1_call_acquire_stream_finish (STM32_DBUS_LINK1 (source), &handle, &fds, result,
                                                   &error))
    socket = socket_from_reply ("AcquireStream", handle, fds, &error);
  else
    error = link_call_error (self, error);
  if (socket == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, socket, g_object_unref);
}

/**
 * stm32_client_link_acquire_stream:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the socket or an error
 * @user_data: (closure): data for @callback
 *
 * Takes the link for bulk data (org.stm32d.Link1.AcquireStream): bytes written
 * to the socket go to the board as they are, the board's bytes are readable
 * from it, without framing. One holder at a time; while it is held, sends and
 * transactions fail with %STM32_ERROR_BUSY. The socket gets EOF when the
 * connection drops; closing it releases the link.
 */
void
stm32_client_link_acquire_stream (Stm32ClientLink *self, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_acquire_stream, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_acquire_stream (self->proxy, NULL, cancellable, on_stream_acquired, task);
}

/**
 * stm32_client_link_acquire_stream_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_BUSY if someone else holds it)
 *
 * Returns: (transfer full): a connected stream socket bridged to the board, or %NULL
 */
GSocket *
stm32_client_link_acquire_stream_finish (Stm32ClientLink *self, GAsyncResult *result,
                                         GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == stm32_client_link_acquire_stream,
                        NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * stm32_client_link_acquire_stream_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_acquire_stream().
 *
 * Returns: (transfer full): a connected stream socket bridged to the board, or %NULL
 */
GSocket *
stm32_client_link_acquire_stream_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                       GError **error)
{
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  if (!link_may_call (self, error) ||
      !link_sync_done (self,
                       stm32_dbus_link1_call_acquire_stream_sync (self->proxy, NULL, &handle, &fds,
                                                                  cancellable, error),
                       error))
    return NULL;
  return socket_from_reply ("AcquireStream", handle, fds, error);
}

/* ---- OpenTransactChannel ---------------------------------------------------------- */

static Stm32ClientChannel *
channel_from_reply (GVariant *handle, GUnixFDList *fds, GError **error)
{
  g_autoptr (GSocket) socket = socket_from_reply ("OpenTransactChannel", handle, fds, error);

  if (socket == NULL)
    return NULL;
  /* Packet boundaries are the protocol: a stream would silently merge them. */
  if (g_socket_get_socket_type (socket) != G_SOCKET_TYPE_SEQPACKET)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_FAILED,
                           "stm32d answered OpenTransactChannel with a socket that is not "
                           "SOCK_SEQPACKET");
      return NULL;
    }
  return stm32_client_channel_new (g_steal_pointer (&socket));
}

static void
on_channel_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32ClientLink *self = g_task_get_source_object (task);
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  GError *error = NULL;
  Stm32ClientChannel *channel = NULL;

  if (stm32_dbus_link1_call_open_transact_channel_finish (STM32_DBUS_LINK1 (source), &handle, &fds,
                                                          result, &error))
    channel = channel_from_reply (handle, fds, &error);
  else
    error = link_call_error (self, error);
  if (channel == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, channel, g_object_unref);
}

/**
 * stm32_client_link_open_transact_channel:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the channel or an error
 * @user_data: (closure): data for @callback
 *
 * Opens a transaction channel to the link (org.stm32d.Link1.OpenTransactChannel):
 * transactions like stm32_client_link_transact(), each one socket round trip
 * to stm32d instead of a D-Bus call, for clients that make many requests.
 * The channel outlives reconnects of the link; stm32d closes it when the link
 * is removed or the daemon stops. At most 64 are open per link
 * (%STM32_ERROR_BUSY beyond).
 */
void
stm32_client_link_open_transact_channel (Stm32ClientLink *self, GCancellable *cancellable,
                                         GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_open_transact_channel, cancellable, callback,
                          user_data);
  if (task != NULL)
    stm32_dbus_link1_call_open_transact_channel (self->proxy, NULL, cancellable, on_channel_opened,
                                                 task);
}

/**
 * stm32_client_link_open_transact_channel_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_BUSY with 64 channels open)
 *
 * Returns: (transfer full): the channel, or %NULL
 */
Stm32ClientChannel *
stm32_client_link_open_transact_channel_finish (Stm32ClientLink *self, GAsyncResult *result,
                                                GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (
      g_task_get_source_tag (G_TASK (result)) == stm32_client_link_open_transact_channel, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * stm32_client_link_open_transact_channel_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_open_transact_channel().
 *
 * Returns: (transfer full): the channel, or %NULL
 */
Stm32ClientChannel *
stm32_client_link_open_transact_channel_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                              GError **error)
{
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  if (!link_may_call (self, error) ||
      !link_sync_done (self,
                       stm32_dbus_link1_call_open_transact_channel_sync (self->proxy, NULL, &handle,
                                                                         &fds, cancellable, error),
                       error))
    return NULL;
  return channel_from_reply (handle, fds, error);
}
