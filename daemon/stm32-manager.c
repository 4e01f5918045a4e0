/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-manager.h"

#include "stm32-config.h"
#include "stm32-dbus-generated.h"
#include "stm32-defaults.h"
#include "stm32-endpoint-gate.h"
#include "stm32-error.h"
#include "stm32-link-export.h"
#include "stm32-names.h"

#define MANAGER_LOG(level, fmt, ...)                                                               \
  g_log_structured (G_LOG_DOMAIN, level, "MESSAGE", fmt, ##__VA_ARGS__)

struct _Stm32Manager
{
  GObject parent_instance;

  char *config_path;
  GDBusObjectManagerServer *object_manager;
  Stm32DbusManager1 *iface;
  GHashTable *exports; /* link name → Stm32LinkExport */
  GHashTable *applied; /* link name → the Stm32LinkConfig the file gave it */
  Stm32BusCallers *callers;
  Stm32EndpointGate *gate; /* removed links until closed; new ones until their board is free */
  guint links_close_timeout; /* the longest CloseTimeout among the links, in ms */
  gboolean started;          /* links may touch their boards (we own the bus name) */
};

G_DEFINE_FINAL_TYPE (Stm32Manager, stm32_manager, G_TYPE_OBJECT)

/* The object goes at once; the connection closes gracefully behind it, and
 * a link that replaces it on the same board waits for that (the gate). */
static void
manager_remove_link (Stm32Manager *self, const char *name)
{
  Stm32LinkExport *export = g_hash_table_lookup (self->exports, name);
  g_autofree char *path = g_strconcat (STM32_DBUS_LINK_PATH_PREFIX, name, NULL);

  MANAGER_LOG (G_LOG_LEVEL_MESSAGE, "Removing link %s", name);
  g_dbus_object_manager_server_unexport (self->object_manager, path);
  stm32_link_export_close_channels (export);
  stm32_link_set_admit_func (stm32_link_export_get_link (export), NULL, NULL);
  stm32_endpoint_gate_retire (self->gate, stm32_link_export_get_link (export));
  g_hash_table_remove (self->exports, name);
  g_hash_table_remove (self->applied, name);
}

/* A link's first connect waits until no other socket to its board remains:
 * one of ours still closing, or a replaced stm32d's. That one may take its
 * longest CloseTimeout, which we assume matches ours, and the grace its exit
 * allows. Admitted when it first connects, not at start: a link that never
 * connects costs no look at the board, and the look is as late as can be. */
static void
manager_admit_link (Stm32Link *link, gpointer user_data)
{
  Stm32Manager *self = user_data;
  guint longest =
      MAX (self->links_close_timeout, stm32_endpoint_gate_get_max_close_timeout (self->gate));

  stm32_endpoint_gate_admit (self->gate, link, longest + STM32_CLOSE_GRACE_MS);
}

/* Walks every link: once per start or reload, not per admission. */
static void
manager_update_close_timeout (Stm32Manager *self)
{
  GHashTableIter iter;
  gpointer export;

  self->links_close_timeout = 0;
  g_hash_table_iter_init (&iter, self->exports);
  while (g_hash_table_iter_next (&iter, NULL, &export))
    self->links_close_timeout =
        MAX (self->links_close_timeout,
             stm32_link_get_config (stm32_link_export_get_link (export))->close_timeout);
}

static void
manager_start_links (Stm32Manager *self, GPtrArray *links)
{
  manager_update_close_timeout (self);
  for (guint i = 0; i < links->len; i++)
    stm32_link_start (links->pdata[i]);
}

static Stm32Link *
manager_add_link (Stm32Manager *self, const char *name, const Stm32LinkConfig *config)
{
  g_autoptr (Stm32Link) link = stm32_link_new_idle (name, config);
  Stm32LinkExport *export = stm32_link_export_new (link, self->callers);

  MANAGER_LOG (G_LOG_LEVEL_MESSAGE, "Link %s: %s:%u", name, config->host, config->port);
  stm32_link_set_admit_func (link, manager_admit_link, self);
  g_hash_table_insert (self->exports, g_strdup (name), export);
  g_hash_table_insert (self->applied, g_strdup (name), stm32_link_config_copy (config));
  g_dbus_object_manager_server_export (self->object_manager, stm32_link_export_get_object (export));
  return link;
}

static void
on_network_changed (GNetworkMonitor *monitor, gboolean available, Stm32Manager *self)
{
  GHashTableIter iter;
  gpointer export;

  if (!available)
    return;
  g_hash_table_iter_init (&iter, self->exports);
  while (g_hash_table_iter_next (&iter, NULL, &export))
    stm32_link_network_changed (stm32_link_export_get_link (export));
}

void
stm32_manager_start (Stm32Manager *self)
{
  g_autoptr (GPtrArray) links = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer export;

  g_return_if_fail (STM32_IS_MANAGER (self));
  self->started = TRUE;
  g_hash_table_iter_init (&iter, self->exports);
  while (g_hash_table_iter_next (&iter, NULL, &export))
    g_ptr_array_add (links, stm32_link_export_get_link (export));
  manager_start_links (self, links);
}

void
stm32_manager_apply (Stm32Manager *self, GPtrArray *links)
{
  g_autoptr (GHashTable) wanted = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) added = g_ptr_array_new ();
  g_autofree GStrv current = NULL;

  g_return_if_fail (STM32_IS_MANAGER (self));

  for (guint i = 0; i < links->len; i++)
    {
      Stm32ConfigLink *link = links->pdata[i];

      g_hash_table_insert (wanted, link->name, link->config);
    }
  current = (GStrv) g_hash_table_get_keys_as_array (self->exports, NULL);
  for (guint i = 0; current[i] != NULL; i++)
    {
      const Stm32LinkConfig *config = g_hash_table_lookup (wanted, current[i]);
      Stm32LinkConfig *applied = g_hash_table_lookup (self->applied, current[i]);

      if (config == NULL || !stm32_link_config_equal_but_autoconnect (config, applied))
        {
          manager_remove_link (self, current[i]);
          continue;
        }
      /* Untouched in the file: left alone, even if Autoconnect was changed over the bus since. */
      if (config->autoconnect == applied->autoconnect)
        continue;
      /* Only Autoconnect changed in the file: apply it without dropping the connection. */
      applied->autoconnect = config->autoconnect;
      stm32_link_set_autoconnect (
          stm32_link_export_get_link (g_hash_table_lookup (self->exports, current[i])),
          config->autoconnect);
    }
  for (guint i = 0; i < links->len; i++)
    {
      Stm32ConfigLink *link = links->pdata[i];

      if (!g_hash_table_contains (self->exports, link->name))
        g_ptr_array_add (added, manager_add_link (self, link->name, link->config));
    }
  if (self->started)
    manager_start_links (self, added);
}

gboolean
stm32_manager_reload (Stm32Manager *self, GError **error)
{
  g_autoptr (GPtrArray) links = NULL;

  g_return_val_if_fail (STM32_IS_MANAGER (self), FALSE);
  if (self->config_path == NULL)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "Nothing to reload: stm32d was started with --host, not a config file");
      return FALSE;
    }
  links = stm32_config_load_file (self->config_path, error);
  if (links == NULL)
    return FALSE;
  MANAGER_LOG (G_LOG_LEVEL_MESSAGE, "Reloading %s: %u link(s)", self->config_path, links->len);
  stm32_manager_apply (self, links);
  return TRUE;
}

static gboolean
handle_reload (Stm32DbusManager1 *iface, GDBusMethodInvocation *invocation, Stm32Manager *self)
{
  GError *error = NULL;

  if (stm32_manager_reload (self, &error))
    stm32_dbus_manager1_complete_reload (iface, invocation);
  else
    g_dbus_method_invocation_take_error (invocation, error);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

void
stm32_manager_export (Stm32Manager *self, GDBusConnection *connection)
{
  GDBusInterfaceSkeleton *iface = G_DBUS_INTERFACE_SKELETON (self->iface);
  g_autoptr (GError) error = NULL;

  g_return_if_fail (STM32_IS_MANAGER (self));
  g_dbus_object_manager_server_set_connection (self->object_manager, connection);
  /* Manager1 sits at the object manager's own path, where the manager itself
   * cannot place objects (only below it): export it there directly. */
  if (connection != NULL && g_dbus_interface_skeleton_has_connection (iface, connection))
    return;
  if (g_dbus_interface_skeleton_get_object_path (iface) != NULL)
    g_dbus_interface_skeleton_unexport (iface);
  if (connection != NULL &&
      !g_dbus_interface_skeleton_export (iface, connection, STM32_DBUS_PATH, &error))
    g_critical ("Cannot export %s: %s", STM32_DBUS_MANAGER_INTERFACE, error->message);
}

guint
stm32_manager_get_n_links (Stm32Manager *self)
{
  g_return_val_if_fail (STM32_IS_MANAGER (self), 0);
  return g_hash_table_size (self->exports);
}

guint
stm32_manager_get_max_close_timeout (Stm32Manager *self)
{
  g_return_val_if_fail (STM32_IS_MANAGER (self), 0);
  manager_update_close_timeout (self);
  return MAX (self->links_close_timeout, stm32_endpoint_gate_get_max_close_timeout (self->gate));
}

/* ---- shutdown ------------------------------------------------------------------ */

static void
shutdown_step_done (GTask *task)
{
  guint *remaining = g_task_get_task_data (task);

  if (--*remaining == 0)
    g_task_return_boolean (task, TRUE);
}

static void
on_shutdown_link_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GError) error = NULL;

  if (!stm32_link_disconnect_finish (STM32_LINK (source), result, &error))
    g_warning ("Closing link %s: %s", stm32_link_get_name (STM32_LINK (source)), error->message);
  shutdown_step_done (task);
}

static void
on_shutdown_drained (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;

  stm32_endpoint_gate_drain_finish (STM32_ENDPOINT_GATE (source), result, NULL);
  shutdown_step_done (task);
}

/* The links, and those Reload removed that are still closing: a replacing
 * stm32d must find every socket to the boards gone. */
void
stm32_manager_shutdown_async (Stm32Manager *self, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  GHashTableIter iter;
  gpointer export;
  guint *remaining = g_new0 (guint, 1);

  g_task_set_source_tag (task, stm32_manager_shutdown_async);
  g_task_set_task_data (task, remaining, g_free);
  *remaining = g_hash_table_size (self->exports) + 1;
  g_hash_table_iter_init (&iter, self->exports);
  while (g_hash_table_iter_next (&iter, NULL, &export))
    stm32_link_disconnect_async (stm32_link_export_get_link (export), NULL, on_shutdown_link_closed,
                                 g_object_ref (task));
  stm32_endpoint_gate_drain_async (self->gate, NULL, on_shutdown_drained, g_object_ref (task));
}

gboolean
stm32_manager_shutdown_finish (Stm32Manager *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- object ------------------------------------------------------------------- */

Stm32Manager *
stm32_manager_new (const char *config_path)
{
  Stm32Manager *self = g_object_new (STM32_TYPE_MANAGER, NULL);

  self->config_path = g_strdup (config_path);
  self->object_manager = g_dbus_object_manager_server_new (STM32_DBUS_PATH);
  self->iface = stm32_dbus_manager1_skeleton_new ();
  stm32_dbus_manager1_set_version (self->iface, STM32_DBUS_API_VERSION);
  g_signal_connect_object (self->iface, "handle-reload", G_CALLBACK (handle_reload), self, 0);
  g_signal_connect_object (g_network_monitor_get_default (), "network-changed",
                           G_CALLBACK (on_network_changed), self, 0);
  return self;
}

static void
stm32_manager_dispose (GObject *object)
{
  Stm32Manager *self = STM32_MANAGER (object);

  if (self->exports != NULL)
    {
      GHashTableIter iter;
      gpointer export;

      /* A link may outlive us in a call in flight; the gate does not. */
      g_hash_table_iter_init (&iter, self->exports);
      while (g_hash_table_iter_next (&iter, NULL, &export))
        stm32_link_set_admit_func (stm32_link_export_get_link (export), NULL, NULL);
    }
  if (self->object_manager)
    g_dbus_object_manager_server_set_connection (self->object_manager, NULL);
  if (self->iface &&
      g_dbus_interface_skeleton_get_object_path (G_DBUS_INTERFACE_SKELETON (self->iface)) != NULL)
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (self->iface));
  g_clear_pointer (&self->exports, g_hash_table_unref);
  g_clear_pointer (&self->applied, g_hash_table_unref);
  g_clear_object (&self->callers);
  g_clear_object (&self->gate);
  g_clear_object (&self->object_manager);
  g_clear_object (&self->iface);
  G_OBJECT_CLASS (stm32_manager_parent_class)->dispose (object);
}

static void
stm32_manager_finalize (GObject *object)
{
  g_free (STM32_MANAGER (object)->config_path);
  G_OBJECT_CLASS (stm32_manager_parent_class)->finalize (object);
}

static void
stm32_manager_class_init (Stm32ManagerClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = stm32_manager_dispose;
  G_OBJECT_CLASS (klass)->finalize = stm32_manager_finalize;
}

static void
stm32_manager_init (Stm32Manager *self)
{
  self->exports = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->applied = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify) stm32_link_config_free);
  self->callers = stm32_bus_callers_new ();
  self->gate = stm32_endpoint_gate_new ();
}
