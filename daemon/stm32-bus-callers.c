/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-bus-callers.h"

#include "stm32-defaults.h"

struct _Stm32BusCallers
{
  GObject parent_instance;

  GHashTable *callers; /* unique name → Caller */
  /* The one NameOwnerChanged subscription, held while there are callers. */
  GDBusConnection *connection;
  guint subscription;
  GCancellable *cancellable; /* the NameHasOwner look-ups */
};

G_DEFINE_FINAL_TYPE (Stm32BusCallers, stm32_bus_callers, G_TYPE_OBJECT)

typedef struct
{
  Stm32BusCallers *owner;
  char *name;
  guint requests;
  guint linger;       /* source id while it has no requests */
  GCancellable *gone; /* shared by its requests */
} Caller;

static void
caller_free (Caller *caller)
{
  g_clear_handle_id (&caller->linger, g_source_remove);
  g_object_unref (caller->gone);
  g_free (caller->name);
  g_free (caller);
}

static void
unsubscribe (Stm32BusCallers *self)
{
  if (self->subscription != 0)
    g_dbus_connection_signal_unsubscribe (self->connection, self->subscription);
  self->subscription = 0;
  g_clear_object (&self->connection);
}

static void
remove_caller (Stm32BusCallers *self, Caller *caller)
{
  g_hash_table_remove (self->callers, caller->name);
  if (g_hash_table_size (self->callers) == 0)
    unsubscribe (self);
}

/* Cancelling ends its requests, which release it (possibly at once, from
 * inside the cancel): it leaves the table only afterwards. */
static void
caller_left (Stm32BusCallers *self, const char *name)
{
  Caller *caller = g_hash_table_lookup (self->callers, name);

  if (caller == NULL)
    return;
  g_debug ("Caller %s left the bus; its %u request(s) end", name, caller->requests);
  g_cancellable_cancel (caller->gone);
  remove_caller (self, caller);
}

static void
on_name_owner_changed (GDBusConnection *connection, const char *sender, const char *path,
                       const char *iface, const char *signal, GVariant *parameters,
                       gpointer user_data)
{
  const char *name = NULL, *new_owner = NULL;

  g_variant_get (parameters, "(&s&s&s)", &name, NULL, &new_owner);
  if (new_owner[0] == '\0')
    caller_left (user_data, name);
}

typedef struct
{
  Stm32BusCallers *self; /* not a reference: dispose cancels the look-up */
  char *name;
} Lookup;

static void
on_name_has_owner (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Lookup *lookup = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply =
      g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  gboolean has_owner = TRUE;

  if (reply != NULL)
    g_variant_get (reply, "(b)", &has_owner);
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_warning ("Cannot tell whether caller %s is still on the bus: %s", lookup->name,
               error->message);
  if (!has_owner)
    caller_left (lookup->self, lookup->name);
  g_free (lookup->name);
  g_free (lookup);
}

/* A caller that sent its request and left at once left before the
 * subscription reached the bus: no signal will say so. The bus answers our
 * messages in order, so once it answers this, the subscription is in place
 * and a caller still there will be seen leaving. */
static void
look_up (Stm32BusCallers *self, const char *name)
{
  Lookup *lookup = g_new0 (Lookup, 1);

  lookup->self = self;
  lookup->name = g_strdup (name);
  g_dbus_connection_call (self->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "NameHasOwner", g_variant_new ("(s)", name),
                          G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, -1, self->cancellable,
                          on_name_has_owner, lookup);
}

static void
subscribe (Stm32BusCallers *self, GDBusConnection *connection)
{
  if (self->subscription != 0)
    return;
  self->connection = g_object_ref (connection);
  self->subscription = g_dbus_connection_signal_subscribe (
      connection, "org.freedesktop.DBus", "org.freedesktop.DBus", "NameOwnerChanged",
      "/org/freedesktop/DBus", NULL, G_DBUS_SIGNAL_FLAGS_NONE, on_name_owner_changed, self, NULL);
}

GCancellable *
stm32_bus_callers_hold (Stm32BusCallers *self, GDBusMethodInvocation *invocation)
{
  const char *sender;
  Caller *caller;

  g_return_val_if_fail (STM32_IS_BUS_CALLERS (self), NULL);
  g_return_val_if_fail (G_IS_DBUS_METHOD_INVOCATION (invocation), NULL);

  sender = g_dbus_method_invocation_get_sender (invocation);
  if (sender == NULL)
    return NULL;
  caller = g_hash_table_lookup (self->callers, sender);
  if (caller == NULL)
    {
      caller = g_new0 (Caller, 1);
      caller->owner = self;
      caller->name = g_strdup (sender);
      caller->gone = g_cancellable_new ();
      g_hash_table_insert (self->callers, caller->name, caller);
      /* The daemon has one bus connection: the subscription is made on it. */
      subscribe (self, g_dbus_method_invocation_get_connection (invocation));
      look_up (self, sender);
    }
  g_clear_handle_id (&caller->linger, g_source_remove);
  caller->requests++;
  return g_object_ref (caller->gone);
}

static gboolean
on_linger_over (gpointer user_data)
{
  Caller *caller = user_data;

  caller->linger = 0;
  remove_caller (caller->owner, caller);
  return G_SOURCE_REMOVE;
}

void
stm32_bus_callers_release (Stm32BusCallers *self, const char *sender)
{
  Caller *caller;

  g_return_if_fail (STM32_IS_BUS_CALLERS (self));
  g_return_if_fail (sender != NULL);

  /* A caller that left was removed with its requests still pending. */
  caller = g_hash_table_lookup (self->callers, sender);
  if (caller == NULL)
    return;
  g_return_if_fail (caller->requests > 0);
  if (--caller->requests > 0)
    return;
  caller->linger = g_timeout_add (STM32_CALLER_WATCH_LINGER_MS, on_linger_over, caller);
}

Stm32BusCallers *
stm32_bus_callers_new (void)
{
  return g_object_new (STM32_TYPE_BUS_CALLERS, NULL);
}

static void
stm32_bus_callers_dispose (GObject *object)
{
  Stm32BusCallers *self = STM32_BUS_CALLERS (object);

  g_cancellable_cancel (self->cancellable);
  /* Requests still pending keep their cancellables; nobody cancels them now. */
  if (self->callers != NULL)
    g_hash_table_remove_all (self->callers);
  unsubscribe (self);
  G_OBJECT_CLASS (stm32_bus_callers_parent_class)->dispose (object);
}

static void
stm32_bus_callers_finalize (GObject *object)
{
  Stm32BusCallers *self = STM32_BUS_CALLERS (object);

  g_hash_table_unref (self->callers);
  g_object_unref (self->cancellable);
  G_OBJECT_CLASS (stm32_bus_callers_parent_class)->finalize (object);
}

static void
stm32_bus_callers_class_init (Stm32BusCallersClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = stm32_bus_callers_dispose;
  object_class->finalize = stm32_bus_callers_finalize;
}

static void
stm32_bus_callers_init (Stm32BusCallers *self)
{
  self->callers =
      g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) caller_free);
  self->cancellable = g_cancellable_new ();
}
