/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-bus-backlog.h"

#include "stm32-defaults.h"

struct _Stm32BusBacklog
{
  GObject parent_instance;

  Stm32Link *link;
  GDBusInterfaceSkeleton *skeleton;
  gsize max;
  gsize waiting;  /* emitted, and not known to be written to the bus */
  gsize flushing; /* of @waiting, what the flush in flight covers; 0 if none */
  gboolean held;  /* we hold the link's receiving */
  GCancellable *cancellable;
};

G_DEFINE_FINAL_TYPE (Stm32BusBacklog, stm32_bus_backlog, G_TYPE_OBJECT)

static void backlog_flush (Stm32BusBacklog *self);

static void
backlog_update_hold (Stm32BusBacklog *self)
{
  gboolean over = self->waiting >= self->max;

  if (over == self->held)
    return;
  self->held = over;
  if (over)
    stm32_link_hold_receiving (self->link);
  else
    stm32_link_release_receiving (self->link);
}

static void
on_flushed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (Stm32BusBacklog) self = user_data;
  g_autoptr (GError) error = NULL;

  /* A connection that closed holds nothing any more: written or not, it is
   * no longer ours to wait for. */
  if (!g_dbus_connection_flush_finish (G_DBUS_CONNECTION (source), result, &error))
    g_debug ("flushing the bus: %s", error->message);
  self->waiting -= self->flushing;
  self->flushing = 0;
  backlog_flush (self);
  backlog_update_hold (self);
}

/* From half the limit on, so that the bus is usually drained before the
 * limit is reached and the board rarely waits. */
static void
backlog_flush (Stm32BusBacklog *self)
{
  GDBusConnection *connection;

  if (self->flushing > 0 || self->waiting < self->max / 2)
    return;
  connection = g_dbus_interface_skeleton_get_connection (self->skeleton);
  /* Not exported: what was emitted went nowhere. */
  if (connection == NULL)
    {
      self->waiting = 0;
      return;
    }
  self->flushing = self->waiting;
  /* Made on the first flush: most links of a fleet never fill a backlog. */
  if (self->cancellable == NULL)
    self->cancellable = g_cancellable_new ();
  g_dbus_connection_flush (connection, self->cancellable, on_flushed, g_object_ref (self));
}

void
stm32_bus_backlog_add (Stm32BusBacklog *self, gsize payload_size)
{
  g_return_if_fail (STM32_IS_BUS_BACKLOG (self));

  self->waiting += payload_size + STM32_RECEIVED_SIGNAL_COST;
  backlog_flush (self);
  backlog_update_hold (self);
}

gsize
stm32_bus_backlog_get_waiting (Stm32BusBacklog *self)
{
  g_return_val_if_fail (STM32_IS_BUS_BACKLOG (self), 0);
  return self->waiting;
}

Stm32BusBacklog *
stm32_bus_backlog_new (Stm32Link *link, GDBusInterfaceSkeleton *skeleton, gsize max)
{
  Stm32BusBacklog *self;

  g_return_val_if_fail (STM32_IS_LINK (link), NULL);
  g_return_val_if_fail (G_IS_DBUS_INTERFACE_SKELETON (skeleton), NULL);
  g_return_val_if_fail (max > 0, NULL);

  self = g_object_new (STM32_TYPE_BUS_BACKLOG, NULL);
  self->link = g_object_ref (link);
  self->skeleton = g_object_ref (skeleton);
  self->max = max;
  return self;
}

static void
stm32_bus_backlog_dispose (GObject *object)
{
  Stm32BusBacklog *self = STM32_BUS_BACKLOG (object);

  g_cancellable_cancel (self->cancellable);
  if (self->held && self->link != NULL)
    stm32_link_release_receiving (self->link);
  self->held = FALSE;
  g_clear_object (&self->link);
  g_clear_object (&self->skeleton);
  G_OBJECT_CLASS (stm32_bus_backlog_parent_class)->dispose (object);
}

static void
stm32_bus_backlog_finalize (GObject *object)
{
  Stm32BusBacklog *self = STM32_BUS_BACKLOG (object);

  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (stm32_bus_backlog_parent_class)->finalize (object);
}

static void
stm32_bus_backlog_class_init (Stm32BusBacklogClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = stm32_bus_backlog_dispose;
  G_OBJECT_CLASS (klass)->finalize = stm32_bus_backlog_finalize;
}

static void
stm32_bus_backlog_init (Stm32BusBacklog *self)
{
}
