/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A connect that fails because the PC, not the board, ran short: stm32d out
 * of file descriptors, the PC out of local ports. Each ends as its own
 * reason in the history, answers Connect() with org.stm32d.Error.OutOfResources
 * and says what ran out and what fixes it; once the shortage is gone the same
 * link connects.
 */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/resource.h>

#include "daemon-harness.h"
#include "netns-harness.h"
#include "sim-harness.h"
#include "test-util.h"

#define WAIT_MS 10000

typedef struct
{
  Stm32Sim *sim;
  char *dir;
  char *config;
  Stm32Daemon *daemon;
  Stm32DbusLink1 *link; /* "board", owned by the daemon */
} Fixture;

/* @keys: more lines for the link's group. */
static void
fixture_start_daemon_with (Fixture *fixture, const char *keys)
{
  fixture->dir = g_dir_make_tmp ("stm32d-test-XXXXXX", NULL);
  fixture->config = g_build_filename (fixture->dir, "stm32d.conf", NULL);
  /* Not Autoconnect: the attempt under test is the one Connect() starts. */
  stm32_test_write_file (fixture->config,
                         "[Link board]\nHost=127.0.0.1\nPort=%u\nAutoconnect=false\n%s",
                         stm32_sim_get_port (fixture->sim), keys);
  fixture->daemon = stm32_daemon_start ("--config", fixture->config, NULL);
  fixture->link = stm32_daemon_get_link (fixture->daemon, "board");
}

static void
fixture_start_daemon (Fixture *fixture)
{
  fixture_start_daemon_with (fixture, "");
}

static void
fixture_teardown (Fixture *fixture, gconstpointer data)
{
  if (fixture->daemon != NULL)
    stm32_daemon_stop (fixture->daemon);
  if (fixture->sim != NULL)
    stm32_sim_stop (fixture->sim);
  if (fixture->config != NULL)
    g_unlink (fixture->config);
  if (fixture->dir != NULL)
    g_rmdir (fixture->dir);
  g_free (fixture->config);
  g_free (fixture->dir);
}

/* Connect() fails the way a shortage on the PC does: the error's name, its
 * message, LastError and the attempt's history entry all say so. */
static void
assert_shortage (Fixture *fixture, const char *reason, const char *cause, const char *fix)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) history = NULL;
  g_autoptr (GVariant) entry = NULL;
  const char *entry_reason = NULL, *entry_error = NULL, *closed_by = NULL;
  gsize attempts_before;
  guint accepted_before = stm32_sim_count_events (fixture->sim, "accepted");

  g_assert_true (stm32_dbus_link1_call_get_history_sync (fixture->link, &history, NULL, &error));
  g_assert_no_error (error);
  attempts_before = g_variant_n_children (history);
  g_clear_pointer (&history, g_variant_unref);

  g_assert_false (stm32_daemon_link_connect (fixture->link, &error));
  stm32_daemon_assert_error (error, "org.stm32d.Error.OutOfResources",
                             STM32_ERROR_OUT_OF_RESOURCES);
  g_assert_nonnull (strstr (error->message, cause));
  g_assert_nonnull (strstr (error->message, "not the board's fault"));
  g_assert_nonnull (strstr (error->message, fix));
  /* The properties change in a signal of their own, after the reply. */
  stm32_test_wait_until (g_strcmp0 (stm32_dbus_link1_get_last_error (fixture->link), reason) == 0,
                         WAIT_MS);
  g_assert_nonnull (strstr (stm32_dbus_link1_get_last_error_message (fixture->link), cause));
  g_clear_error (&error);

  g_assert_true (stm32_dbus_link1_call_get_history_sync (fixture->link, &history, NULL, &error));
  g_assert_no_error (error);
  /* One attempt more, the newest (GetHistory lists the oldest first). */
  g_assert_cmpuint (g_variant_n_children (history), ==, attempts_before + 1);
  entry = g_variant_get_child_value (history, attempts_before);
  g_assert_true (g_variant_lookup (entry, "reason", "&s", &entry_reason));
  g_assert_true (g_variant_lookup (entry, "error", "&s", &entry_error));
  g_assert_true (g_variant_lookup (entry, "closed-by", "&s", &closed_by));
  g_assert_cmpstr (entry_reason, ==, reason);
  g_assert_nonnull (strstr (entry_error, cause));
  g_assert_cmpstr (closed_by, ==, "none");
  /* The board never saw a connection. */
  g_assert_cmpuint (stm32_sim_count_events (fixture->sim, "accepted"), ==, accepted_before);
}

/* Once the shortage is gone, the same link connects: it was the cause. */
static void
assert_connects_again (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (stm32_daemon_link_connect (fixture->link, &error));
  g_assert_no_error (error);
  stm32_daemon_link_disconnect (fixture->link);
}

/* The lowest fd number free in process @pid: the one its next socket() gets. */
static guint
lowest_free_fd (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", pid);
  g_autoptr (GHashTable) used = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;
  guint fd = 0;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    g_hash_table_add (used, GUINT_TO_POINTER (g_ascii_strtoull (name, NULL, 10) + 1));
  while (g_hash_table_contains (used, GUINT_TO_POINTER (fd + 1)))
    fd++;
  return fd;
}

/* Lowers stm32d's soft fd limit so that its next socket() fails with EMFILE;
 * returns the limits to put back. Not below the fds it polls: poll() fails
 * with EINVAL when they outnumber the limit. The count is taken at rest (one
 * connection made and ended first): an fd that closed after the limit was
 * set would leave a free one under it. */
static struct rlimit
starve_fds (Fixture *fixture)
{
  GPid pid = stm32_daemon_get_pid (fixture->daemon);
  struct rlimit old, low;

  stm32_daemon_count_fds_at_rest (fixture->daemon, fixture->link);
  g_assert_cmpint (prlimit (pid, RLIMIT_NOFILE, NULL, &old), ==, 0);
  low = old;
  low.rlim_cur = lowest_free_fd (pid);
  g_assert_cmpint (prlimit (pid, RLIMIT_NOFILE, &low, NULL), ==, 0);
  return old;
}

/* stm32d's RLIMIT_NOFILE is lowered to its lowest free fd, so its next
 * socket() fails with EMFILE. */
static void
test_no_fds (Fixture *fixture, gconstpointer data)
{
  struct rlimit old;

  fixture->sim = stm32_sim_start ("--reply", "echo", NULL);
  fixture_start_daemon (fixture);
  old = starve_fds (fixture);

  assert_shortage (fixture, "pc-no-fds", "no file descriptor left", "LimitNOFILE=");

  g_assert_cmpint (prlimit (stm32_daemon_get_pid (fixture->daemon), RLIMIT_NOFILE, &old, NULL), ==,
                   0);
  assert_connects_again (fixture);
}

static guint
count_reason (GVariant *history, const char *reason)
{
  guint n = 0;

  for (gsize i = 0; i < g_variant_n_children (history); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (history, i);
      const char *r = NULL;

      n += g_variant_lookup (entry, "reason", "&s", &r) && g_strcmp0 (r, reason) == 0;
    }
  return n;
}

static GVariant *
get_history (Stm32DbusLink1 *link)
{
  g_autoptr (GError) error = NULL;
  GVariant *history = NULL;

  g_assert_true (stm32_dbus_link1_call_get_history_sync (link, &history, NULL, &error));
  g_assert_no_error (error);
  return history;
}

/* Out of fds with Autoconnect on, the link keeps retrying as after any
 * failed connect: each retry waits its backoff (RetryMin doubling up to
 * RetryMax, ±20 %), so a shortage never turns into a busy loop of socket()
 * calls and log lines. Only lower bounds: the machine may be slow. */
static void
test_no_fds_backs_off (Fixture *fixture, gconstpointer data)
{
  const guint retry_min = 200, retry_max = 800, attempts = 5;
  g_autoptr (GVariant) history = NULL;
  struct rlimit old;

  fixture->sim = stm32_sim_start ("--reply", "echo", NULL);
  fixture_start_daemon_with (fixture, "RetryMin=200\nRetryMax=800\n");
  old = starve_fds (fixture);
  stm32_dbus_link1_set_autoconnect (fixture->link, TRUE);
  stm32_test_wait_until (stm32_dbus_link1_get_connect_failures (fixture->link) >= attempts, 20000);
  /* After the connection starve_fds() made and ended, every attempt failed for want of an fd. */
  history = get_history (fixture->link);
  g_assert_cmpuint (count_reason (history, "pc-no-fds"), ==, g_variant_n_children (history) - 1);
  g_assert_cmpuint (g_variant_n_children (history), >=, 1 + attempts);
  g_assert_true (stm32_daemon_link_state_is (fixture->link, "waiting") ||
                 stm32_daemon_link_state_is (fixture->link, "connecting"));
  for (guint i = 0; i + 1 < attempts; i++)
    {
      g_autoptr (GVariant) a = g_variant_get_child_value (history, 1 + i);
      g_autoptr (GVariant) b = g_variant_get_child_value (history, 2 + i);
      gint64 closed = 0, started = 0;
      guint backoff = MIN (retry_min << i, retry_max);

      g_assert_true (g_variant_lookup (a, "closed", "x", &closed));
      g_assert_true (g_variant_lookup (b, "started", "x", &started));
      g_assert_cmpint (started - closed, >=, (gint64) backoff * 800);
    }

  g_assert_cmpint (prlimit (stm32_daemon_get_pid (fixture->daemon), RLIMIT_NOFILE, &old, NULL), ==,
                   0);
  stm32_test_wait_until (stm32_daemon_link_state_is (fixture->link, "connected"), WAIT_MS);
}

/* stm32d lifts its soft fd limit to the hard one at start: one started with
 * a soft limit of 256 (the hard limit left as it is) runs with the hard
 * limit, so links are not capped by a default meant for select(). */
static void
test_fd_limit_raised (Fixture *fixture, gconstpointer data)
{
  struct rlimit ours, low, theirs;

  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &ours), ==, 0);
  if (ours.rlim_max <= 256 || ours.rlim_max == RLIM_INFINITY)
    {
      g_test_skip ("the hard fd limit is too low (or unlimited) to tell a raise");
      return;
    }
  low = ours;
  low.rlim_cur = 256;
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &low), ==, 0);
  fixture->sim = stm32_sim_start ("--reply", "echo", NULL);
  fixture_start_daemon (fixture);
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &ours), ==, 0);
  g_assert_cmpint (prlimit (stm32_daemon_get_pid (fixture->daemon), RLIMIT_NOFILE, NULL, &theirs),
                   ==, 0);
  g_assert_cmpuint (theirs.rlim_max, ==, ours.rlim_max);
  g_assert_cmpuint (theirs.rlim_cur, ==, ours.rlim_max);
  assert_connects_again (fixture);
}

/* Takes @port on 127.0.0.1 with bind() alone: connect() never picks a local
 * port that a bind() holds. */
static GSocket *
hold_port (guint16 port)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) socket =
      g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) address = g_inet_socket_address_new (loopback, port);

  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&socket);
}

/* In a network namespace of the test's own, the local port range is two
 * ports and both are taken: connect() fails with EADDRNOTAVAIL, as on a PC
 * whose ports all sit in TIME_WAIT. */
static void
test_no_ports (Fixture *fixture, gconstpointer data)
{
  guint16 first = 40000;
  g_autofree char *range = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) held_a = NULL;
  g_autoptr (GSocket) held_b = NULL;

  if (!stm32_netns_enter_private ())
    return;
  /* The board's listening port is taken before the range narrows, outside it. */
  fixture->sim = stm32_sim_start ("--reply", "echo", NULL);
  if (stm32_sim_get_port (fixture->sim) == first || stm32_sim_get_port (fixture->sim) == first + 1)
    first += 2;
  range = g_strdup_printf ("%u %u", first, first + 1);
  /* In place: a sysctl is no file to replace. */
  g_assert_true (g_file_set_contents_full ("/proc/sys/net/ipv4/ip_local_port_range", range, -1,
                                           G_FILE_SET_CONTENTS_NONE, 0644, &error));
  g_assert_no_error (error);
  held_a = hold_port (first);
  held_b = hold_port (first + 1);
  fixture_start_daemon (fixture);

  assert_shortage (fixture, "pc-no-ports", "no free local port", "ip_local_port_range");

  g_clear_object (&held_a);
  assert_connects_again (fixture);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  g_test_add ("/pc-resources/no-fds", Fixture, NULL, NULL, test_no_fds, fixture_teardown);
  g_test_add ("/pc-resources/no-fds-backs-off", Fixture, NULL, NULL, test_no_fds_backs_off,
              fixture_teardown);
  g_test_add ("/pc-resources/fd-limit-raised", Fixture, NULL, NULL, test_fd_limit_raised,
              fixture_teardown);
  g_test_add ("/pc-resources/no-ports", Fixture, NULL, NULL, test_no_ports, fixture_teardown);
  return stm32_daemon_test_run ();
}
