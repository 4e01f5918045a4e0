/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib-unix.h>
#include <errno.h>
#include <gio/gio.h>
#include <locale.h>
#include <sys/resource.h>

#include "stm32-config.h"
#include "stm32-defaults.h"
#include "stm32-enum-types.h"
#include "stm32-manager.h"
#include "stm32-names.h"
#include "stm32-sd-notify.h"

#define STM32D_EXIT_CONFIG 78 /* EX_CONFIG: systemd shows it as "configuration error" */

typedef struct
{
  GMainLoop *loop;
  Stm32Manager *manager;
  GPtrArray *links; /* applied once connected to the bus, then NULL */
  gboolean stopping;
  int exit_status;
} Daemon;

typedef struct
{
  char *config_path;
  char *host;
  int port;
  char *framing;
  gboolean session;
  gboolean replace;
  gboolean verbose;
  gboolean version;
} Options;

static void
options_clear (Options *options)
{
  g_free (options->config_path);
  g_free (options->host);
  g_free (options->framing);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Options, options_clear)

static gboolean
parse_options (int *argc, char ***argv, Options *options, GError **error)
{
  const GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &options->config_path,
      "Read links from FILE (default " STM32D_DEFAULT_CONFIG ")", "FILE" },
    { "host", 0, 0, G_OPTION_ARG_STRING, &options->host,
      "Instead of a config file, one link named “default” to HOST", "HOST" },
    { "port", 0, 0, G_OPTION_ARG_INT, &options->port, "With --host: the board's TCP port (8080)",
      "PORT" },
    { "framing", 0, 0, G_OPTION_ARG_STRING, &options->framing,
      "With --host: raw, line, u16be, u32be or json (line)", "FRAMING" },
    { "session", 0, 0, G_OPTION_ARG_NONE, &options->session,
      "Serve on the session bus (development, tests)", NULL },
    { "replace", 'r', 0, G_OPTION_ARG_NONE, &options->replace,
      "Take over the bus name from a running stm32d", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &options->verbose, "Log debug messages", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &options->version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);

  g_option_context_set_summary (context,
                                "Keeps clean TCP links to STM32 boards and shares them over D-Bus "
                                "as " STM32_DBUS_NAME ".");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, error))
    return FALSE;
  if (*argc > 1)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Unexpected argument “%s”",
                   (*argv)[1]);
      return FALSE;
    }
  if (options->host != NULL && options->config_path != NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           "--host and --config exclude each other");
      return FALSE;
    }
  if (options->host == NULL && (options->framing != NULL || options->port != 0))
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           "--port and --framing go with --host");
      return FALSE;
    }
  if (options->host != NULL && options->port == 0)
    options->port = STM32_DEFAULT_PORT;
  if (options->host != NULL && (options->port < 1 || options->port > 65535))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--port %d is not between 1 and 65535", options->port);
      return FALSE;
    }
  return TRUE;
}

/* --host/--port/--framing as the one-link config file they stand for, so
 * they are checked by exactly the rules that check the file. */
static GPtrArray *
load_command_line_link (const Options *options, GError **error)
{
  g_autoptr (GString) config = g_string_new ("[Link default]\n");

  g_string_append_printf (config, "Host=%s\nPort=%d\n", options->host, options->port);
  if (options->framing != NULL)
    g_string_append_printf (config, "Framing=%s\n", options->framing);
  return stm32_config_load_data (config->str, -1, "command line", error);
}

/* The links to run (Stm32ConfigLink): from the command line, or the config file. */
static GPtrArray *
load_links (const Options *options, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  GPtrArray *links;

  if (options->host != NULL)
    return load_command_line_link (options, error);
  links = stm32_config_load_file (
      options->config_path ? options->config_path : STM32D_DEFAULT_CONFIG, &local_error);
  /* A fresh install has no config yet: serve no links until one is written and
   * reloaded, rather than fail and be restarted in a loop. A file named with
   * --config must exist. */
  if (links == NULL && options->config_path == NULL &&
      g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    {
      g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE",
                        "No configuration at %s: no links until it is written and reloaded",
                        STM32D_DEFAULT_CONFIG);
      return g_ptr_array_new_with_free_func ((GDestroyNotify) stm32_config_link_free);
    }
  if (links == NULL)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return links;
}

/* The kernel's ceiling for any process's fd limit (fs.nr_open): a hard limit
 * of RLIM_INFINITY cannot be the soft limit itself. */
static rlim_t
fd_ceiling (rlim_t hard)
{
  g_autofree char *text = NULL;
  guint64 nr_open;

  if (hard != RLIM_INFINITY)
    return hard;
  if (!g_file_get_contents ("/proc/sys/fs/nr_open", &text, NULL, NULL) ||
      !g_ascii_string_to_unsigned (g_strstrip (text), 10, 1, G_MAXUINT64, &nr_open, NULL))
    return hard;
  return (rlim_t) nr_open;
}

/* Each link holds a socket, so the soft fd limit caps the links: systemd
 * gives services 1024, a login shell often the same. GLib's loop polls with
 * poll(), never select(), so nothing in stm32d needs fds below FD_SETSIZE;
 * the hard limit is the admin's word on how many it may have. */
static void
raise_fd_limit (void)
{
  struct rlimit limit;
  rlim_t soft;

  if (getrlimit (RLIMIT_NOFILE, &limit) != 0)
    {
      g_debug ("Cannot read the fd limit: %s", g_strerror (errno));
      return;
    }
  soft = limit.rlim_cur;
  limit.rlim_cur = fd_ceiling (limit.rlim_max);
  if (limit.rlim_cur <= soft)
    {
      g_debug ("fd limit %" G_GUINT64_FORMAT " (the hard limit)", (guint64) soft);
      return;
    }
  if (setrlimit (RLIMIT_NOFILE, &limit) != 0)
    {
      g_debug ("Cannot raise the fd limit from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT ": %s",
               (guint64) soft, (guint64) limit.rlim_cur, g_strerror (errno));
      return;
    }
  g_debug ("Raised the fd limit from %" G_GUINT64_FORMAT " to the hard limit, %" G_GUINT64_FORMAT,
           (guint64) soft, (guint64) limit.rlim_cur);
}

static void
on_bus_acquired (GDBusConnection *connection, const char *name, gpointer user_data)
{
  Daemon *daemon = user_data;

  /* Every object is in place before the name is ours, so a client that sees
   * the name appear finds the links at once (and never half of them). They
   * are made before the object manager has the connection, which then
   * registers them all without an InterfacesAdded each: signals sent before
   * the name is ours reach no client of the name, and at 4,096 links
   * building and sending them was a quarter of stm32d's CPU at start. */
  if (daemon->links != NULL)
    {
      stm32_manager_apply (daemon->manager, daemon->links);
      g_clear_pointer (&daemon->links, g_ptr_array_unref);
    }
  stm32_manager_export (daemon->manager, connection);
}

static void
on_name_acquired (GDBusConnection *connection, const char *name, gpointer user_data)
{
  Daemon *daemon = user_data;
  g_autofree char *status = NULL;

  /* Boards are touched only by the stm32d that owns the name: a second one
   * started by mistake must not take (or reset) their few connection slots. */
  stm32_manager_start (daemon->manager);
  status = g_strdup_printf ("STATUS=Serving %u link(s) as %s",
                            stm32_manager_get_n_links (daemon->manager), name);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE", "Serving on the bus as %s", name);
  stm32_sd_notify ("READY=1");
  stm32_sd_notify (status);
}

static void begin_shutdown (Daemon *daemon, int exit_status);

static void
on_name_lost (GDBusConnection *connection, const char *name, gpointer user_data)
{
  Daemon *daemon = user_data;

  if (daemon->stopping)
    return;
  if (connection == NULL)
    g_warning ("Cannot connect to the bus to own %s", name);
  else
    g_warning ("The bus name %s is taken by another stm32d, or the bus policy does not allow us "
               "to own it; closing links and exiting",
               name);
  begin_shutdown (daemon, 1);
}

static void
on_shutdown_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = user_data;

  stm32_manager_shutdown_finish (STM32_MANAGER (source), result, NULL);
  g_main_loop_quit (daemon->loop);
}

static gboolean
on_shutdown_overdue (gpointer user_data)
{
  Daemon *daemon = user_data;

  g_warning ("Links did not close in time; exiting anyway");
  g_main_loop_quit (daemon->loop);
  return G_SOURCE_REMOVE;
}

static void
begin_shutdown (Daemon *daemon, int exit_status)
{
  if (daemon->stopping)
    return;
  daemon->stopping = TRUE;
  daemon->exit_status = exit_status;
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE", "Stopping: closing every link");
  stm32_sd_notify ("STOPPING=1");
  stm32_manager_shutdown_async (daemon->manager, NULL, on_shutdown_done, daemon);
  g_timeout_add (STM32_CLOSE_GRACE_MS + stm32_manager_get_max_close_timeout (daemon->manager),
                 on_shutdown_overdue, daemon);
}

static gboolean
on_terminate (gpointer user_data)
{
  begin_shutdown (user_data, 0);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_hangup (gpointer user_data)
{
  Daemon *daemon = user_data;
  g_autoptr (GError) error = NULL;

  stm32_sd_notify ("RELOADING=1");
  if (!stm32_manager_reload (daemon->manager, &error))
    g_warning ("Reload failed, keeping the running configuration: %s", error->message);
  stm32_sd_notify ("READY=1");
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_auto (Options) options = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) links = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (Stm32Manager) manager = NULL;
  Daemon daemon = { 0 };
  guint owner;

  setlocale (LC_ALL, "");
  if (!parse_options (&argc, &argv, &options, &error))
    {
      g_printerr ("stm32d: %s\nTry “stm32d --help”.\n", error->message);
      return 2;
    }
  if (options.version)
    {
      g_print ("stm32d %s (D-Bus API %u)\n", STM32D_VERSION, STM32_DBUS_API_VERSION);
      return 0;
    }
  if (options.verbose)
    g_log_set_debug_enabled (TRUE);
  raise_fd_limit ();
  links = load_links (&options, &error);
  if (links == NULL)
    {
      g_printerr ("stm32d: %s\n", error->message);
      return STM32D_EXIT_CONFIG;
    }

  loop = g_main_loop_new (NULL, FALSE);
  manager = stm32_manager_new (options.host          ? NULL
                               : options.config_path ? options.config_path
                                                     : STM32D_DEFAULT_CONFIG);
  daemon.loop = loop;
  daemon.manager = manager;
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "MESSAGE_ID",
                    "3f2b8c1e6a7d4e0f9b5c2d1a0e8f7c6b", "MESSAGE", "stm32d %s starting, %u link(s)",
                    STM32D_VERSION, links->len);
  daemon.links = g_steal_pointer (&links);

  g_unix_signal_add (SIGTERM, on_terminate, &daemon);
  g_unix_signal_add (SIGINT, on_terminate, &daemon);
  g_unix_signal_add (SIGHUP, on_hangup, &daemon);
  stm32_sd_watchdog_start ();
  owner = g_bus_own_name (options.session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, STM32_DBUS_NAME,
                          G_BUS_NAME_OWNER_FLAGS_ALLOW_REPLACEMENT |
                              (options.replace ? G_BUS_NAME_OWNER_FLAGS_REPLACE : 0),
                          on_bus_acquired, on_name_acquired, on_name_lost, &daemon, NULL);
  g_main_loop_run (loop);
  g_bus_unown_name (owner);
  g_clear_pointer (&daemon.links, g_ptr_array_unref);
  return daemon.exit_status;
}
