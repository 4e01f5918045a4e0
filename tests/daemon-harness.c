/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "daemon-harness.h"

#include <gio/gunixfdlist.h>
#include <signal.h>
#include <sys/socket.h>

#include "stm32-error.h"
#include "stm32-names.h"
#include "test-util.h"

#define DAEMON_WAIT_MS 10000

struct _Stm32Daemon
{
  GSubprocess *process;
  GDBusObjectManager *objects;
  Stm32DbusManager1 *manager;
  gboolean exited;
  /* stm32_daemon_start_logged(): what the daemon wrote to stderr so far */
  GDataInputStream *log_in;
  GCancellable *log_cancellable;
  GString *log;
  gboolean log_reading;
};

static GTestDBus *test_bus;

void
stm32_daemon_test_init (int *argc, char ***argv)
{
  g_test_init (argc, argv, NULL);
  /* Registers org.stm32d.Error.* so replies arrive as typed STM32_ERROR codes. */
  (void) stm32_error_quark ();
  test_bus = g_test_dbus_new (G_TEST_DBUS_NONE);
  g_test_dbus_up (test_bus);
}

int
stm32_daemon_test_run (void)
{
  int status = g_test_run ();

  g_test_dbus_down (test_bus);
  g_clear_object (&test_bus);
  return status;
}

static GPtrArray *
daemon_argv (const char *first_arg, va_list args)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);

  g_ptr_array_add (argv, stm32_test_build_path ("daemon/stm32d"));
  g_ptr_array_add (argv, g_strdup ("--session"));
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  g_ptr_array_add (argv, NULL);
  return argv;
}

/* Whether the name is owned, and by this daemon: one started with --replace
 * finds the name still owned by the one it replaces. */
static gboolean
owns_name (Stm32Daemon *daemon)
{
  g_autofree char *owner =
      g_dbus_object_manager_client_get_name_owner (G_DBUS_OBJECT_MANAGER_CLIENT (daemon->objects));
  GDBusConnection *bus;
  g_autoptr (GVariant) reply = NULL;
  guint32 pid = 0;

  if (owner == NULL)
    return FALSE;
  bus =
      g_dbus_object_manager_client_get_connection (G_DBUS_OBJECT_MANAGER_CLIENT (daemon->objects));
  /* The owner may have left since: then it is not ours either. */
  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetConnectionUnixProcessID",
                                       g_variant_new ("(s)", owner), G_VARIANT_TYPE ("(u)"),
                                       G_DBUS_CALL_FLAGS_NONE, DAEMON_WAIT_MS, NULL, NULL);
  if (reply != NULL)
    g_variant_get (reply, "(u)", &pid);
  return pid == (guint32) stm32_daemon_get_pid (daemon);
}

static Stm32Daemon *
daemon_startv (GSubprocessLauncher *launcher, const char *first_arg, va_list args)
{
  Stm32Daemon *daemon = g_new0 (Stm32Daemon, 1);
  g_autoptr (GPtrArray) argv = daemon_argv (first_arg, args);
  g_autoptr (GError) error = NULL;

  daemon->process =
      g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  daemon->objects = stm32_dbus_object_manager_client_new_for_bus_sync (
      G_BUS_TYPE_SESSION, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START, STM32_DBUS_NAME,
      STM32_DBUS_PATH, NULL, &error);
  g_assert_no_error (error);
  return daemon;
}

Stm32Daemon *
stm32_daemon_start (const char *first_arg, ...)
{
  /* stderr is inherited: the daemon's log lands in the test log. */
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  Stm32Daemon *daemon;
  va_list args;

  va_start (args, first_arg);
  daemon = daemon_startv (launcher, first_arg, args);
  va_end (args);
  stm32_test_wait_until (owns_name (daemon), DAEMON_WAIT_MS);
  return daemon;
}

Stm32Daemon *
stm32_daemon_start_by (GSubprocessLauncher *launcher, const char *first_arg, ...)
{
  Stm32Daemon *daemon;
  va_list args;

  va_start (args, first_arg);
  daemon = daemon_startv (launcher, first_arg, args);
  va_end (args);
  return daemon;
}

static void read_log_line (Stm32Daemon *daemon);

static void
on_log_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Stm32Daemon *daemon = user_data;
  g_autofree char *line =
      g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, NULL);

  daemon->log_reading = FALSE;
  /* NULL: the daemon closed stderr (it exited), or the read was cancelled. */
  if (line == NULL)
    return;
  g_test_message ("stm32d: %s", line);
  g_string_append_printf (daemon->log, "%s\n", line);
  read_log_line (daemon);
}

static void
read_log_line (Stm32Daemon *daemon)
{
  daemon->log_reading = TRUE;
  g_data_input_stream_read_line_async (daemon->log_in, G_PRIORITY_DEFAULT, daemon->log_cancellable,
                                       on_log_line, daemon);
}

Stm32Daemon *
stm32_daemon_start_logged (const char *first_arg, ...)
{
  g_autoptr (GSubprocessLauncher) launcher =
      stm32_test_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  Stm32Daemon *daemon;
  va_list args;

  va_start (args, first_arg);
  daemon = daemon_startv (launcher, first_arg, args);
  va_end (args);
  daemon->log = g_string_new (NULL);
  daemon->log_cancellable = g_cancellable_new ();
  daemon->log_in = g_data_input_stream_new (g_subprocess_get_stderr_pipe (daemon->process));
  read_log_line (daemon);
  stm32_test_wait_until (owns_name (daemon), DAEMON_WAIT_MS);
  return daemon;
}

const char *
stm32_daemon_get_log (Stm32Daemon *daemon)
{
  g_assert_nonnull (daemon->log);
  return daemon->log->str;
}

static void
on_name_appeared (GDBusConnection *connection, const char *name, const char *owner,
                  gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
}

Stm32Daemon *
stm32_daemon_spawn (const char *const *argv, GSubprocessFlags flags)
{
  Stm32Daemon *daemon = g_new0 (Stm32Daemon, 1);
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (flags);
  g_autoptr (GError) error = NULL;
  gboolean appeared = FALSE;
  guint watch =
      g_bus_watch_name (G_BUS_TYPE_SESSION, STM32_DBUS_NAME, G_BUS_NAME_WATCHER_FLAGS_NONE,
                        on_name_appeared, NULL, &appeared, NULL);

  daemon->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  stm32_test_wait_until (appeared, DAEMON_WAIT_MS);
  g_bus_unwatch_name (watch);
  return daemon;
}

Stm32DbusLink1 *
stm32_daemon_peek_link (Stm32Daemon *daemon, const char *name)
{
  g_autofree char *path = g_strconcat (STM32_DBUS_LINK_PATH_PREFIX, name, NULL);
  g_autoptr (GDBusObject) object = g_dbus_object_manager_get_object (daemon->objects, path);

  /* The object manager keeps the object, and with it the interface, alive. */
  return object ? stm32_dbus_object_peek_link1 (STM32_DBUS_OBJECT (object)) : NULL;
}

Stm32DbusLink1 *
stm32_daemon_get_link (Stm32Daemon *daemon, const char *name)
{
  stm32_test_wait_until (stm32_daemon_peek_link (daemon, name) != NULL, DAEMON_WAIT_MS);
  return stm32_daemon_peek_link (daemon, name);
}

Stm32DbusManager1 *
stm32_daemon_get_manager (Stm32Daemon *daemon)
{
  g_autoptr (GError) error = NULL;

  if (daemon->manager == NULL)
    daemon->manager = stm32_dbus_manager1_proxy_new_for_bus_sync (
        G_BUS_TYPE_SESSION, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, STM32_DBUS_NAME, STM32_DBUS_PATH,
        NULL, &error);
  g_assert_no_error (error);
  return daemon->manager;
}

guint
stm32_daemon_count_match_rules (Stm32Daemon *daemon)
{
  g_autofree char *owner =
      g_dbus_object_manager_client_get_name_owner (G_DBUS_OBJECT_MANAGER_CLIENT (daemon->objects));
  g_autoptr (GDBusConnection) bus = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) stats = NULL;
  g_autoptr (GError) error = NULL;
  guint rules = 0;

  g_assert_nonnull (owner);
  bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  /* The bus itself answers: a sync call cannot wait on stm32d. */
  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus.Debug.Stats", "GetConnectionStats",
                                       g_variant_new ("(s)", owner), G_VARIANT_TYPE ("(a{sv})"),
                                       G_DBUS_CALL_FLAGS_NONE, DAEMON_WAIT_MS, NULL, &error);
  g_assert_no_error (error);
  stats = g_variant_get_child_value (reply, 0);
  g_assert_true (g_variant_lookup (stats, "MatchRules", "u", &rules));
  return rules;
}

GPid
stm32_daemon_get_pid (Stm32Daemon *daemon)
{
  const char *id = g_subprocess_get_identifier (daemon->process);

  g_assert_nonnull (id);
  return (GPid) g_ascii_strtoll (id, NULL, 10);
}

void
stm32_daemon_send_signal (Stm32Daemon *daemon, int signum)
{
  stm32_test_send_signal (daemon->process, signum, DAEMON_WAIT_MS);
}

static void
on_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Stm32Daemon *daemon = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  daemon->exited = TRUE;
}

int
stm32_daemon_wait_exit (Stm32Daemon *daemon)
{
  if (!daemon->exited)
    {
      g_subprocess_wait_async (daemon->process, NULL, on_exited, daemon);
      stm32_test_wait_until (daemon->exited, DAEMON_WAIT_MS);
    }
  if (g_subprocess_get_if_signaled (daemon->process))
    g_error ("stm32d died of signal %d", g_subprocess_get_term_sig (daemon->process));
  return g_subprocess_get_exit_status (daemon->process);
}

void
stm32_daemon_free (Stm32Daemon *daemon)
{
  if (daemon == NULL)
    return;
  if (!daemon->exited)
    {
      g_subprocess_force_exit (daemon->process);
      stm32_daemon_wait_exit (daemon);
    }
  if (daemon->log_cancellable != NULL)
    {
      /* The read calls back once more, cancelled: let it, before @daemon goes. */
      g_cancellable_cancel (daemon->log_cancellable);
      stm32_test_wait_until (!daemon->log_reading, DAEMON_WAIT_MS);
    }
  g_clear_object (&daemon->log_in);
  g_clear_object (&daemon->log_cancellable);
  if (daemon->log != NULL)
    g_string_free (daemon->log, TRUE);
  g_clear_object (&daemon->manager);
  g_clear_object (&daemon->objects);
  g_clear_object (&daemon->process);
  g_free (daemon);
}

void
stm32_daemon_stop (Stm32Daemon *daemon)
{
  /* A test may have stopped it (SIGSTOP); SIGTERM waits for it to run again. */
  stm32_daemon_send_signal (daemon, SIGCONT);
  stm32_daemon_send_signal (daemon, SIGTERM);
  /* Exit status 0 also means the sanitizers found nothing in the daemon. */
  g_assert_cmpint (stm32_daemon_wait_exit (daemon), ==, 0);
  stm32_daemon_free (daemon);
}

int
stm32_daemon_run_to_exit (char **err, const char *first_arg, ...)
{
  g_autoptr (GPtrArray) argv = NULL;
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  va_list args;

  va_start (args, first_arg);
  argv = daemon_argv (first_arg, args);
  va_end (args);
  /* One that never exits (it blocks) must not outlive a test that gave up on it. */
  launcher = stm32_test_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE |
                                      G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, DAEMON_WAIT_MS);
  g_subprocess_communicate_utf8_finish (process, result, NULL, err, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  return g_subprocess_get_exit_status (process);
}

gboolean
stm32_daemon_link_state_is (Stm32DbusLink1 *link, const char *state)
{
  return g_strcmp0 (stm32_dbus_link1_get_state (link), state) == 0;
}

GVariant *
stm32_daemon_bytes (const char *text)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, text, strlen (text), 1);
}

gboolean
stm32_daemon_link_connect (Stm32DbusLink1 *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_dbus_link1_call_connect (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, DAEMON_WAIT_MS);
  return stm32_dbus_link1_call_connect_finish (link, result, error);
}

void
stm32_daemon_link_disconnect (Stm32DbusLink1 *link)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  stm32_dbus_link1_call_disconnect (link, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, DAEMON_WAIT_MS);
  g_assert_true (stm32_dbus_link1_call_disconnect_finish (link, result, &error));
  g_assert_no_error (error);
}

guint
stm32_daemon_count_fds_at_rest (Stm32Daemon *daemon, Stm32DbusLink1 *link)
{
  GPid pid = stm32_daemon_get_pid (daemon);
  g_autoptr (GError) error = NULL;
  guint connected;

  g_assert_true (stm32_daemon_link_connect (link, &error));
  g_assert_no_error (error);
  connected = stm32_test_count_process_fds (pid);
  stm32_daemon_link_disconnect (link);
  /* The fd closes once its last operation is answered, just after the reply. */
  stm32_test_wait_until (stm32_test_count_process_fds (pid) == connected - 1, DAEMON_WAIT_MS);
  return connected - 1;
}

gboolean
stm32_daemon_link_send (Stm32DbusLink1 *link, const char *text, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  stm32_dbus_link1_call_send (link, stm32_daemon_bytes (text), NULL, stm32_test_store_result,
                              &result);
  stm32_test_wait_until (result != NULL, DAEMON_WAIT_MS);
  return stm32_dbus_link1_call_send_finish (link, result, error);
}

char *
stm32_daemon_link_transact (Stm32DbusLink1 *link, const char *text, guint timeout_ms,
                            GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) reply = NULL;
  const char *data;
  gsize len;

  stm32_dbus_link1_call_transact (link, stm32_daemon_bytes (text), timeout_ms, NULL,
                                  stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, DAEMON_WAIT_MS);
  if (!stm32_dbus_link1_call_transact_finish (link, &reply, result, error))
    return NULL;
  data = g_variant_get_fixed_array (reply, &len, 1);
  return g_strndup (data, len);
}

int
stm32_daemon_link_open_channel (Stm32DbusLink1 *link, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  g_autoptr (GError) local_error = NULL;
  int fd, type = 0;
  socklen_t len = sizeof type;

  stm32_dbus_link1_call_open_transact_channel (link, NULL, NULL, stm32_test_store_result, &result);
  stm32_test_wait_until (result != NULL, DAEMON_WAIT_MS);
  if (!stm32_dbus_link1_call_open_transact_channel_finish (link, &handle, &fds, result, error))
    return -1;
  g_assert_cmpint (g_unix_fd_list_get_length (fds), ==, 1);
  fd = g_unix_fd_list_get (fds, g_variant_get_handle (handle), &local_error);
  g_assert_no_error (local_error);
  g_assert_cmpint (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &len), ==, 0);
  g_assert_cmpint (type, ==, SOCK_SEQPACKET);
  return fd;
}

void
stm32_daemon_assert_error (const GError *error, const char *remote_name, Stm32Error code)
{
  g_autofree char *remote = NULL;

  g_assert_nonnull (error);
  g_assert_true (g_dbus_error_is_remote_error (error));
  remote = g_dbus_error_get_remote_error (error);
  g_assert_cmpstr (remote, ==, remote_name);
  g_assert_error (error, STM32_ERROR, (int) code);
}
