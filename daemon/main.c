/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib-unix.h>
#include <gio/gio.h>
#include <locale.h>

#include "stm32-defaults.h"
#include "stm32-enum-types.h"
#include "stm32-link.h"

typedef struct
{
  GMainLoop *loop;
  Stm32Link *link;
  int exit_status;
} Daemon;

static void
on_state (Stm32Link *link, GParamSpec *pspec, Daemon *daemon)
{
  Stm32LinkState state = stm32_link_get_state (link);
  const char *message = stm32_link_get_last_error_message (link);

  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "STM32D_LINK", stm32_link_get_name (link),
                    "MESSAGE", "%s: %s%s%s", stm32_link_get_name (link),
                    stm32_enum_to_string (STM32_TYPE_LINK_STATE, state), message ? ": " : "",
                    message ? message : "");
}

static void
on_disconnected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = user_data;
  g_autoptr (GError) error = NULL;

  if (!stm32_link_disconnect_finish (STM32_LINK (source), result, &error))
    g_warning ("Closing failed: %s", error->message);
  g_main_loop_quit (daemon->loop);
}

static gboolean
on_terminate (gpointer user_data)
{
  Daemon *daemon = user_data;

  g_message ("Stopping: closing the link");
  stm32_link_disconnect_async (daemon->link, NULL, on_disconnected, daemon);
  /* A second signal must not start a second close. */
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  g_autofree char *host = NULL;
  g_autofree char *framing = NULL;
  int port = STM32_DEFAULT_PORT;
  gboolean verbose = FALSE, version = FALSE;
  const GOptionEntry entries[] = {
    { "host", 0, 0, G_OPTION_ARG_STRING, &host, "Board host name or address", "HOST" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "Board TCP port (default 8080)", "PORT" },
    { "framing", 0, 0, G_OPTION_ARG_STRING, &framing,
      "raw, line, u16be, u32be or json (default line)", "FRAMING" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Log debug messages", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context =
      g_option_context_new ("- keep a clean TCP link to an STM32 board");
  g_autoptr (GError) error = NULL;
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (Stm32Link) link = NULL;
  Daemon daemon = { 0 };

  setlocale (LC_ALL, "");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("stm32d: %s\nTry “stm32d --help”.\n", error->message);
      return 2;
    }
  if (version)
    {
      g_print ("stm32d %s\n", STM32D_VERSION);
      return 0;
    }
  if (host == NULL || port < 1 || port > 65535)
    {
      g_printerr ("stm32d: give the board as --host HOST [--port 1-65535]\n");
      return 2;
    }
  if (verbose)
    g_log_set_debug_enabled (TRUE);

  config = stm32_link_config_new (host, (guint16) port);
  if (framing &&
      !stm32_enum_from_string (STM32_TYPE_FRAMING, framing, (int *) &config->framing, &error))
    {
      g_printerr ("stm32d: --framing: %s\n", error->message);
      return 2;
    }
  if (!stm32_link_config_validate (config, &error))
    {
      g_printerr ("stm32d: %s\n", error->message);
      return 2;
    }

  loop = g_main_loop_new (NULL, FALSE);
  link = stm32_link_new ("default", config);
  daemon.loop = loop;
  daemon.link = link;
  g_signal_connect (link, "notify::state", G_CALLBACK (on_state), &daemon);
  g_unix_signal_add (SIGTERM, on_terminate, &daemon);
  g_unix_signal_add (SIGINT, on_terminate, &daemon);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE_ID",
                    "3f2b8c1e6a7d4e0f9b5c2d1a0e8f7c6b", "MESSAGE", "stm32d %s: link to %s:%d",
                    STM32D_VERSION, host, port);
  g_main_loop_run (loop);
  return daemon.exit_status;
}
