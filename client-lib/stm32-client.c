/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stm32Client: finds stm32d on the bus, keeps a Stm32ClientLink for each of
 * its links as they come and go (across daemon restarts too), and calls
 * Manager1. */
#include "stm32-client.h"

#include "stm32-client-private.h"
#include "stm32-dbus-generated.h"
#include "stm32-names.h"

struct _Stm32Client
{
  GObject parent_instance;

  GBusType bus_type;
  guint call_timeout; /* ms */
  GDBusConnection *connection;
  GDBusObjectManager *objects;
  /* Manager1 is exported at /org/stm32d itself, not as a managed object. */
  Stm32DbusManager1 *manager;
  GHashTable *links; /* object path → Stm32ClientLink */
  gboolean running;
};

enum
{
  PROP_0,
  PROP_BUS_TYPE,
  PROP_CALL_TIMEOUT,
  PROP_RUNNING,
  N_PROPS
};

static GParamSpec *props[N_PROPS];

enum
{
  LINK_ADDED,
  LINK_REMOVED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void stm32_client_initable_iface_init (GInitableIface *iface);
static void stm32_client_async_initable_iface_init (GAsyncInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (Stm32Client, stm32_client, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      stm32_client_initable_iface_init)
                                   G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                          stm32_client_async_initable_iface_init))

/* The quark's name is stringified: clang-format must not space it out. */
/* clang-format off */
G_DEFINE_QUARK (stm32-client-error-quark, stm32_client_error)
/* clang-format on */

/* A registered enum: introspection pairs it with its quark only then. */
G_DEFINE_ENUM_TYPE (Stm32ClientError, stm32_client_error,
                    G_DEFINE_ENUM_VALUE (STM32_CLIENT_ERROR_NOT_RUNNING, "not-running"),
                    G_DEFINE_ENUM_VALUE (STM32_CLIENT_ERROR_NO_SUCH_LINK, "no-such-link"),
                    G_DEFINE_ENUM_VALUE (STM32_CLIENT_ERROR_NO_ANSWER, "no-answer"),
                    G_DEFINE_ENUM_VALUE (STM32_CLIENT_ERROR_NO_BUS, "no-bus"))

static void
client_set_gone_error (gpointer user_data, GError **error)
{
  stm32_client_set_not_running_error (error);
}

static GError *
client_call_error (Stm32Client *self, GError *error)
{
  return stm32_client_call_error (error, self->call_timeout, client_set_gone_error, NULL);
}

/* ---- following the daemon ------------------------------------------------------------ */

static void
client_remove_link (Stm32Client *self, const char *path)
{
  g_autofree char *key = NULL;
  g_autoptr (Stm32ClientLink) link = NULL;

  if (!g_hash_table_steal_extended (self->links, path, (gpointer *) &key, (gpointer *) &link))
    return;
  stm32_client_link_mark_removed (link);
  g_signal_emit (self, signals[LINK_REMOVED], 0, link);
}

/* Brings the link at @object's path in line with its Link1 interface. The
 * object manager replaces an interface proxy when the daemon's announcement of
 * an object and its reply listing all objects cross (as when a daemon starts
 * and exports its links while we ask for them); the link then follows the new
 * proxy and stays the same object for the application. */
static void
client_sync_link (Stm32Client *self, GDBusObject *object, gboolean announce)
{
  const char *path = g_dbus_object_get_object_path (object);
  Stm32DbusLink1 *proxy = stm32_dbus_object_peek_link1 (STM32_DBUS_OBJECT (object));
  Stm32ClientLink *link = g_hash_table_lookup (self->links, path);

  if (proxy == NULL)
    client_remove_link (self, path);
  else if (link != NULL)
    stm32_client_link_set_proxy (link, proxy);
  else
    {
      link = stm32_client_link_new (proxy, self->objects, self->call_timeout);
      g_hash_table_insert (self->links, g_strdup (path), link);
      if (announce)
        g_signal_emit (self, signals[LINK_ADDED], 0, link);
    }
}

static void
on_object_added (GDBusObjectManager *objects, GDBusObject *object, Stm32Client *self)
{
  client_sync_link (self, object, TRUE);
}

static void
on_object_removed (GDBusObjectManager *objects, GDBusObject *object, Stm32Client *self)
{
  client_remove_link (self, g_dbus_object_get_object_path (object));
}

static void
on_interface_changed (GDBusObjectManager *objects, GDBusObject *object, GDBusInterface *interface,
                      Stm32Client *self)
{
  client_sync_link (self, object, TRUE);
}

static gboolean
client_has_owner (Stm32Client *self)
{
  g_autofree char *owner =
      g_dbus_object_manager_client_get_name_owner (G_DBUS_OBJECT_MANAGER_CLIENT (self->objects));

  return owner != NULL;
}

static void
on_name_owner_changed (GObject *objects, GParamSpec *pspec, Stm32Client *self)
{
  gboolean running = client_has_owner (self);

  if (running == self->running)
    return;
  /* The object manager announces a vanished owner before it drops the
   * objects; dropping the links first means that a client that is not running
   * never lists any. */
  if (!running)
    {
      guint n_paths = 0;
      g_autofree gpointer *keys = g_hash_table_get_keys_as_array (self->links, &n_paths);
      g_auto (GStrv) paths = g_strdupv ((char **) keys);

      for (guint i = 0; i < n_paths; i++)
        client_remove_link (self, paths[i]);
    }
  self->running = running;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_RUNNING]);
}

static void
client_follow_daemon (Stm32Client *self)
{
  g_autolist (GDBusObject) objects = g_dbus_object_manager_get_objects (self->objects);

  g_signal_connect_object (self->objects, "object-added", G_CALLBACK (on_object_added), self, 0);
  g_signal_connect_object (self->objects, "object-removed", G_CALLBACK (on_object_removed), self,
                           0);
  g_signal_connect_object (self->objects, "interface-added", G_CALLBACK (on_interface_changed),
                           self, 0);
  g_signal_connect_object (self->objects, "interface-removed", G_CALLBACK (on_interface_changed),
                           self, 0);
  g_signal_connect_object (self->objects, "notify::name-owner", G_CALLBACK (on_name_owner_changed),
                           self, 0);
  for (GList *l = objects; l != NULL; l = l->next)
    client_sync_link (self, l->data, FALSE);
  self->running = client_has_owner (self);
  stm32_client_proxy_set_call_timeout (G_DBUS_PROXY (self->manager), self->call_timeout);
}

/* ---- construction --------------------------------------------------------------------- */

/* What GDBus waits for the calls GDBusObjectManagerClient and GDBusProxy
 * make while they are constructed (a timeout of -1): construction ends at
 * the earlier of this and the call-timeout. */
#define GDBUS_DEFAULT_TIMEOUT_MS 25000

static const char *
client_bus_name (Stm32Client *self)
{
  g_autoptr (GEnumClass) bus_types = g_type_class_ref (G_TYPE_BUS_TYPE);
  GEnumValue *value = g_enum_get_value (bus_types, self->bus_type);

  return value ? value->value_nick : "message";
}

/* A failed construction as callers see it: stm32d (or the bus) silent past
 * the call-timeout (@fired: our alarm or timer cancelled it) or GDBus's own
 * timeout; a bus that cannot be reached; anything else as it came. Takes
 * @error. */
static GError *
client_init_error (Stm32Client *self, GError *error, gboolean fired)
{
  GError *mapped;

  if (fired || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    {
      guint waited = fired ? self->call_timeout : GDBUS_DEFAULT_TIMEOUT_MS;

      mapped = self->connection != NULL
                   ? stm32_client_no_answer_error (waited)
                   : g_error_new (STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_ANSWER,
                                  "the %s bus did not answer within %u ms", client_bus_name (self),
                                  waited);
    }
  else if (self->connection == NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    mapped = g_error_new (STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_BUS,
                          "cannot reach the %s bus, where stm32d would be: %s",
                          client_bus_name (self), error->message);
  else
    return error;
  g_error_free (error);
  return mapped;
}

static void
on_caller_cancelled (GCancellable *caller, GCancellable *bounded)
{
  g_cancellable_cancel (bounded);
}

static gboolean
client_init_steps_sync (Stm32Client *self, GCancellable *cancellable, GError **error)
{
  self->connection = g_bus_get_sync (self->bus_type, cancellable, error);
  if (self->connection == NULL)
    return FALSE;
  self->objects = stm32_dbus_object_manager_client_new_sync (
      self->connection, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START, STM32_DBUS_NAME,
      STM32_DBUS_PATH, cancellable, error);
  if (self->objects == NULL)
    return FALSE;
  self->manager =
      stm32_dbus_manager1_proxy_new_sync (self->connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                          STM32_DBUS_NAME, STM32_DBUS_PATH, cancellable, error);
  if (self->manager == NULL)
    return FALSE;
  client_follow_daemon (self);
  return TRUE;
}

static gboolean
stm32_client_initable_init (GInitable *initable, GCancellable *cancellable, GError **error)
{
  Stm32Client *self = STM32_CLIENT (initable);
  g_autoptr (GCancellable) bounded = g_cancellable_new ();
  gulong chained =
      cancellable
          ? g_cancellable_connect (cancellable, G_CALLBACK (on_caller_cancelled), bounded, NULL)
          : 0;
  Stm32ClientAlarm *alarm = stm32_client_alarm_start (bounded, self->call_timeout);
  GError *local_error = NULL;
  gboolean ok = client_init_steps_sync (self, bounded, &local_error);
  gboolean fired = stm32_client_alarm_stop (alarm);

  g_cancellable_disconnect (cancellable, chained);
  if (!ok)
    g_propagate_error (error, client_init_error (self, local_error, fired));
  return ok;
}

static void
stm32_client_initable_iface_init (GInitableIface *iface)
{
  iface->init = stm32_client_initable_init;
}

/* The async construction's state: its steps run with @bounded, which the
 * caller's cancellable and the call-timeout's timer both cancel. */
typedef struct
{
  GCancellable *bounded;
  GCancellable *caller;
  gulong chained;
  GSource *timer;
  gboolean fired;
} InitData;

static void
init_data_free (InitData *data)
{
  g_cancellable_disconnect (data->caller, data->chained);
  g_clear_object (&data->caller);
  g_object_unref (data->bounded);
  g_free (data);
}

static gboolean
on_init_timeout (gpointer user_data)
{
  InitData *data = g_task_get_task_data (user_data);

  data->fired = TRUE;
  g_cancellable_cancel (data->bounded);
  return G_SOURCE_REMOVE;
}

/* Ends the construction with @error (taken), or with success if NULL. */
static void
client_init_return (GTask *task, GError *error)
{
  Stm32Client *self = g_task_get_source_object (task);
  InitData *data = g_task_get_task_data (task);

  /* The timer holds a reference to the task. */
  if (data->timer != NULL)
    g_source_destroy (data->timer);
  g_clear_pointer (&data->timer, g_source_unref);
  if (error == NULL)
    {
      client_follow_daemon (self);
      g_task_return_boolean (task, TRUE);
    }
  else
    g_task_return_error (task, client_init_error (self, error, data->fired));
}

static void
on_manager_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32Client *self = g_task_get_source_object (task);
  GError *error = NULL;

  self->manager = stm32_dbus_manager1_proxy_new_finish (result, &error);
  client_init_return (task, error);
}

static void
on_objects_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32Client *self = g_task_get_source_object (task);
  InitData *data = g_task_get_task_data (task);
  GError *error = NULL;

  self->objects = stm32_dbus_object_manager_client_new_finish (result, &error);
  if (self->objects == NULL)
    {
      client_init_return (task, error);
      return;
    }
  stm32_dbus_manager1_proxy_new (self->connection, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START,
                                 STM32_DBUS_NAME, STM32_DBUS_PATH, data->bounded, on_manager_ready,
                                 g_steal_pointer (&task));
}

static void
on_bus_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32Client *self = g_task_get_source_object (task);
  InitData *data = g_task_get_task_data (task);
  GError *error = NULL;

  self->connection = g_bus_get_finish (result, &error);
  if (self->connection == NULL)
    {
      client_init_return (task, error);
      return;
    }
  stm32_dbus_object_manager_client_new (
      self->connection, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START, STM32_DBUS_NAME,
      STM32_DBUS_PATH, data->bounded, on_objects_ready, g_steal_pointer (&task));
}

static void
stm32_client_init_async (GAsyncInitable *initable, int io_priority, GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  Stm32Client *self = STM32_CLIENT (initable);
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  InitData *data = g_new0 (InitData, 1);

  g_task_set_source_tag (task, stm32_client_init_async);
  g_task_set_priority (task, io_priority);
  data->bounded = g_cancellable_new ();
  if (cancellable != NULL)
    {
      data->caller = g_object_ref (cancellable);
      data->chained = g_cancellable_connect (cancellable, G_CALLBACK (on_caller_cancelled),
                                             data->bounded, NULL);
    }
  g_task_set_task_data (task, data, (GDestroyNotify) init_data_free);
  data->timer = g_timeout_source_new (self->call_timeout);
  g_task_attach_source (task, data->timer, on_init_timeout);
  g_bus_get (self->bus_type, data->bounded, on_bus_ready, task);
}

static gboolean
stm32_client_init_finish (GAsyncInitable *initable, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, initable), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
stm32_client_async_initable_iface_init (GAsyncInitableIface *iface)
{
  iface->init_async = stm32_client_init_async;
  iface->init_finish = stm32_client_init_finish;
}

static void
stm32_client_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  Stm32Client *self = STM32_CLIENT (object);

  switch (prop_id)
    {
    case PROP_BUS_TYPE:
      g_value_set_enum (value, self->bus_type);
      break;
    case PROP_CALL_TIMEOUT:
      g_value_set_uint (value, self->call_timeout);
      break;
    case PROP_RUNNING:
      g_value_set_boolean (value, self->running);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_client_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  Stm32Client *self = STM32_CLIENT (object);

  switch (prop_id)
    {
    case PROP_BUS_TYPE:
      self->bus_type = g_value_get_enum (value);
      break;
    case PROP_CALL_TIMEOUT:
      stm32_client_set_call_timeout (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
stm32_client_dispose (GObject *object)
{
  Stm32Client *self = STM32_CLIENT (object);

  g_clear_pointer (&self->links, g_hash_table_unref);
  g_clear_object (&self->manager);
  g_clear_object (&self->objects);
  g_clear_object (&self->connection);
  G_OBJECT_CLASS (stm32_client_parent_class)->dispose (object);
}

static void
stm32_client_class_init (Stm32ClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  /* Maps org.stm32d.Error.* replies to STM32_ERROR codes from the first call on. */
  (void) stm32_error_quark ();
  object_class->get_property = stm32_client_get_property;
  object_class->set_property = stm32_client_set_property;
  object_class->dispose = stm32_client_dispose;

  /**
   * Stm32Client:bus-type:
   *
   * The bus stm32d is on: %G_BUS_TYPE_SYSTEM, or %G_BUS_TYPE_SESSION for development.
   */
  props[PROP_BUS_TYPE] =
      g_param_spec_enum ("bus-type", NULL, NULL, G_TYPE_BUS_TYPE, G_BUS_TYPE_SYSTEM,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * Stm32Client:call-timeout:
   *
   * How long, in milliseconds, each call waits for stm32d's answer before it
   * fails with %STM32_CLIENT_ERROR_NO_ANSWER; a transaction waits this plus
   * its own timeout. Construction is bounded by it too (and, for each call
   * GDBus makes to set up, by GDBus's own 25 s). stm32d bounds every call
   * itself, so only a daemon that stopped answering reaches it. Changing it
   * applies to the calls made after.
   */
  props[PROP_CALL_TIMEOUT] = g_param_spec_uint (
      "call-timeout", NULL, NULL, 1, G_MAXINT, STM32_CLIENT_CALL_TIMEOUT_DEFAULT,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /**
   * Stm32Client:running:
   *
   * Whether stm32d owns its bus name. It goes %FALSE when the daemon stops,
   * after #Stm32Client::link-removed for each of its links, and %TRUE when one
   * starts; its links follow with #Stm32Client::link-added as it exports them.
   */
  props[PROP_RUNNING] = g_param_spec_boolean ("running", NULL, NULL, FALSE,
                                              G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /**
   * Stm32Client::link-added:
   * @self: the client
   * @link: the new link
   *
   * A link appeared: configured by a reload, or listed by a daemon that started.
   */
  signals[LINK_ADDED] = g_signal_new ("link-added", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                      NULL, NULL, NULL, G_TYPE_NONE, 1, STM32_TYPE_CLIENT_LINK);
  /**
   * Stm32Client::link-removed:
   * @self: the client
   * @link: the link that is gone; calls on it fail from now on
   *
   * A link disappeared: removed by a reload, or its daemon stopped.
   */
  signals[LINK_REMOVED] =
      g_signal_new ("link-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 1, STM32_TYPE_CLIENT_LINK);
}

static void
stm32_client_init (Stm32Client *self)
{
  self->bus_type = G_BUS_TYPE_SYSTEM;
  self->call_timeout = STM32_CLIENT_CALL_TIMEOUT_DEFAULT;
  self->links = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
}

/**
 * stm32_client_new:
 * @bus_type: %G_BUS_TYPE_SYSTEM, or %G_BUS_TYPE_SESSION for development
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the client is ready
 * @user_data: (closure): data for @callback
 *
 * Connects to @bus_type and loads stm32d's links. Succeeds even when the
 * daemon is not running: see stm32_client_is_running().
 */
void
stm32_client_new (GBusType bus_type, GCancellable *cancellable, GAsyncReadyCallback callback,
                  gpointer user_data)
{
  g_async_initable_new_async (STM32_TYPE_CLIENT, G_PRIORITY_DEFAULT, cancellable, callback,
                              user_data, "bus-type", bus_type, NULL);
}

/**
 * stm32_client_new_finish:
 * @result: the result passed to the callback of stm32_client_new()
 * @error: return location for an error (no bus, for instance)
 *
 * Returns: (transfer full): the client, or %NULL
 */
Stm32Client *
stm32_client_new_finish (GAsyncResult *result, GError **error)
{
  g_autoptr (GObject) source = g_async_result_get_source_object (result);
  GObject *client = g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);

  return client ? STM32_CLIENT (client) : NULL;
}

/**
 * stm32_client_new_sync:
 * @bus_type: %G_BUS_TYPE_SYSTEM, or %G_BUS_TYPE_SESSION for development
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error (no bus, for instance)
 *
 * Blocks the calling thread; see stm32_client_new().
 *
 * Returns: (transfer full): the client, or %NULL
 */
Stm32Client *
stm32_client_new_sync (GBusType bus_type, GCancellable *cancellable, GError **error)
{
  return g_initable_new (STM32_TYPE_CLIENT, cancellable, error, "bus-type", bus_type, NULL);
}

/* ---- queries --------------------------------------------------------------------------- */

/**
 * stm32_client_get_call_timeout:
 * @self: a client
 *
 * Returns: how long each call waits for stm32d's answer, in milliseconds
 *   (#Stm32Client:call-timeout)
 */
guint
stm32_client_get_call_timeout (Stm32Client *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT (self), 0);
  return self->call_timeout;
}

/**
 * stm32_client_set_call_timeout:
 * @self: a client
 * @timeout_ms: how long each later call waits for stm32d's answer, in
 *   milliseconds; at least 1
 *
 * Sets #Stm32Client:call-timeout.
 */
void
stm32_client_set_call_timeout (Stm32Client *self, guint timeout_ms)
{
  GHashTableIter iter;
  gpointer link;

  g_return_if_fail (STM32_IS_CLIENT (self));
  g_return_if_fail (timeout_ms >= 1 && timeout_ms <= G_MAXINT);
  if (timeout_ms == self->call_timeout)
    return;
  self->call_timeout = timeout_ms;
  if (self->manager != NULL)
    stm32_client_proxy_set_call_timeout (G_DBUS_PROXY (self->manager), timeout_ms);
  g_hash_table_iter_init (&iter, self->links);
  while (g_hash_table_iter_next (&iter, NULL, &link))
    stm32_client_link_set_call_timeout (link, timeout_ms);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_CALL_TIMEOUT]);
}

/**
 * stm32_client_is_running:
 * @self: a client
 *
 * Returns: whether stm32d owns its bus name now (#Stm32Client:running)
 */
gboolean
stm32_client_is_running (Stm32Client *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT (self), FALSE);
  return self->running;
}

/**
 * stm32_client_get_api_version:
 * @self: a client
 *
 * Returns: the daemon's D-Bus API version (org.stm32d.Manager1.Version), or 0
 *   when it is not running
 */
guint
stm32_client_get_api_version (Stm32Client *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT (self), 0);
  return self->running ? stm32_dbus_manager1_get_version (self->manager) : 0;
}

static int
compare_link_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (stm32_client_link_get_name ((Stm32ClientLink *) a),
                    stm32_client_link_get_name ((Stm32ClientLink *) b));
}

/**
 * stm32_client_get_links:
 * @self: a client
 *
 * Returns: (transfer container) (element-type Stm32ClientLink): the links,
 *   sorted by name; free the list, not the links
 */
GList *
stm32_client_get_links (Stm32Client *self)
{
  g_return_val_if_fail (STM32_IS_CLIENT (self), NULL);
  return g_list_sort (g_hash_table_get_values (self->links), compare_link_names);
}

/**
 * stm32_client_get_link:
 * @self: a client
 * @name: a link's name
 *
 * Returns: (transfer none) (nullable): the link called @name, or %NULL
 */
Stm32ClientLink *
stm32_client_get_link (Stm32Client *self, const char *name)
{
  g_autofree char *path = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  /* stm32d exports each link at its name's path (and a link's name is the
   * last element of that path). */
  path = g_strconcat (STM32_DBUS_LINK_PATH_PREFIX, name, NULL);
  return g_hash_table_lookup (self->links, path);
}

static char *
client_describe_links (Stm32Client *self)
{
  g_autoptr (GList) links = NULL; /* transfer container */
  g_autoptr (GString) names = g_string_new (NULL);

  if (g_hash_table_size (self->links) == 0)
    return g_strdup ("it has no links configured");
  links = stm32_client_get_links (self);
  for (GList *l = links; l != NULL; l = l->next)
    g_string_append_printf (names, "%s%s", l == links ? "its links are: " : ", ",
                            stm32_client_link_get_name (l->data));
  return g_string_free (g_steal_pointer (&names), FALSE);
}

/**
 * stm32_client_find_link:
 * @self: a client
 * @name: a link's name
 * @error: return location for an error
 *
 * Like stm32_client_get_link(), but a missing link is an error for people:
 * %STM32_CLIENT_ERROR_NOT_RUNNING, or %STM32_CLIENT_ERROR_NO_SUCH_LINK naming
 * the links there are.
 *
 * Returns: (transfer none): the link called @name, or %NULL
 */
Stm32ClientLink *
stm32_client_find_link (Stm32Client *self, const char *name, GError **error)
{
  Stm32ClientLink *link;
  g_autofree char *available = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  if (!self->running)
    {
      stm32_client_set_not_running_error (error);
      return NULL;
    }
  link = stm32_client_get_link (self, name);
  if (link != NULL)
    return link;
  available = client_describe_links (self);
  g_set_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK,
               "stm32d has no link “%s”; %s", name, available);
  return NULL;
}

/* ---- Reload ------------------------------------------------------------------------------ */

static void
on_reloaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;

  if (stm32_dbus_manager1_call_reload_finish (STM32_DBUS_MANAGER1 (source), result, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, client_call_error (g_task_get_source_object (task), error));
}

/**
 * stm32_client_reload:
 * @self: a client
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the daemon has reloaded, or refused to
 * @user_data: (closure): data for @callback
 *
 * Makes stm32d re-read its configuration (org.stm32d.Manager1.Reload). Links
 * that come and go are announced by #Stm32Client::link-added and
 * #Stm32Client::link-removed.
 */
void
stm32_client_reload (Stm32Client *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                     gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (STM32_IS_CLIENT (self));
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, stm32_client_reload);
  if (!self->running)
    {
      stm32_client_set_not_running_error (&error);
      g_task_return_error (task, error);
      return;
    }
  stm32_dbus_manager1_call_reload (self->manager, cancellable, on_reloaded,
                                   g_steal_pointer (&task));
}

/**
 * stm32_client_reload_finish:
 * @self: a client
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_INVALID_ARGS naming file,
 *   line, group and key for a bad configuration, which changes nothing)
 *
 * Returns: whether the daemon applied the configuration
 */
gboolean
stm32_client_reload_finish (Stm32Client *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == stm32_client_reload, FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * stm32_client_reload_sync:
 * @self: a client
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_reload().
 *
 * Returns: whether the daemon applied the configuration
 */
gboolean
stm32_client_reload_sync (Stm32Client *self, GCancellable *cancellable, GError **error)
{
  GError *local_error = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT (self), FALSE);
  if (!self->running)
    {
      stm32_client_set_not_running_error (error);
      return FALSE;
    }
  if (stm32_dbus_manager1_call_reload_sync (self->manager, cancellable, &local_error))
    return TRUE;
  g_propagate_error (error, client_call_error (self, local_error));
  return FALSE;
}
