/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* flood-listener PATH EXPECTED US_PER_FRAME: a deliberately slow Received
 * listener for test-flood. Subscribes to org.stm32d.Link1.Received at PATH on
 * the session bus, prints "ready" once the bus has its match rule, then takes
 * each frame US_PER_FRAME µs late, checking it is the next flood frame
 * ([SEQ,"xx…x"], SEQ from 1). Prints "FRAMES ERRORS" and exits once EXPECTED
 * frames came (status 0), or when none came for IDLE_MS (status 1). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>

#define IDLE_MS 60000

typedef struct
{
  GMainLoop *loop;
  guint64 expected;
  gulong us_per_frame;
  guint64 frames;
  guint64 errors;
  gint64 last_frame;
} Listener;

static gboolean
is_next_frame (const char *data, gsize size, guint64 seq)
{
  g_autofree char *head = g_strdup_printf ("[%" G_GUINT64_FORMAT ",\"", seq);
  gsize head_len = strlen (head);

  if (size < head_len + 2 || memcmp (data, head, head_len) != 0 ||
      memcmp (data + size - 2, "\"]", 2) != 0)
    return FALSE;
  for (gsize i = head_len; i < size - 2; i++)
    if (data[i] != 'x')
      return FALSE;
  return TRUE;
}

static void
on_received (GDBusConnection *connection, const char *sender, const char *path,
             const char *iface, const char *signal, GVariant *parameters, gpointer user_data)
{
  Listener *self = user_data;
  g_autoptr (GVariant) frame = g_variant_get_child_value (parameters, 0);
  gsize size;
  const char *data = g_variant_get_fixed_array (frame, &size, 1);

  /* The slowness this listener exists for. */
  g_usleep (self->us_per_frame);
  self->last_frame = g_get_monotonic_time ();
  if (!is_next_frame (data, size, self->frames + 1))
    {
      if (self->errors++ == 0)
        g_printerr ("flood-listener: frame %" G_GUINT64_FORMAT " is not the next one: %.*s\n",
                    self->frames + 1, (int) MIN (size, 40), data);
    }
  if (++self->frames == self->expected)
    g_main_loop_quit (self->loop);
}

static gboolean
on_idle_check (gpointer user_data)
{
  Listener *self = user_data;

  if (g_get_monotonic_time () - self->last_frame >= (gint64) IDLE_MS * 1000)
    g_main_loop_quit (self->loop);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  Listener self = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GDBusConnection) bus = NULL;
  g_autoptr (GVariant) id = NULL;

  if (argc != 4)
    {
      g_printerr ("usage: flood-listener PATH EXPECTED US_PER_FRAME\n");
      return 2;
    }
  self.expected = g_ascii_strtoull (argv[2], NULL, 10);
  self.us_per_frame = (gulong) g_ascii_strtoull (argv[3], NULL, 10);
  bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  if (bus == NULL)
    {
      g_printerr ("flood-listener: %s\n", error->message);
      return 2;
    }
  self.loop = g_main_loop_new (NULL, FALSE);
  g_dbus_connection_signal_subscribe (bus, NULL, "org.stm32d.Link1", "Received", argv[1], NULL,
                                      G_DBUS_SIGNAL_FLAGS_NONE, on_received, &self, NULL);
  /* The bus handles our messages in order: once this is answered, our
   * AddMatch is in place. */
  id = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "GetId", NULL, NULL,
                                    G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  if (id == NULL)
    {
      g_printerr ("flood-listener: %s\n", error->message);
      return 2;
    }
  printf ("ready\n");
  fflush (stdout);
  self.last_frame = g_get_monotonic_time ();
  g_timeout_add (1000, on_idle_check, &self);
  g_main_loop_run (self.loop);
  printf ("%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", self.frames, self.errors);
  g_main_loop_unref (self.loop);
  return self.frames == self.expected ? 0 : 1;
}
