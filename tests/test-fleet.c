/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A test floor: one stm32d with 2,000 links, each to its own board (one
 * stm32-sim playing them all with --boards), started under the soft fd limit
 * systemd gives services (1024) with the hard limit left high. Every link
 * connects, once; every link answers a Transact with its own reply; the
 * boards see exactly one connection each; stm32d exits cleanly. No wall-clock
 * upper bound: how fast this happens is in bench/ (the fleet section).
 */
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/resource.h>

#include "daemon-harness.h"
#include "sim-harness.h"
#include "test-util.h"

#define N_LINKS 2000
#define SOFT_FD_LIMIT 1024
/* What stm32d needs on top of one fd per link: the bus, logging, GLib's own. */
#define FD_MARGIN 64
/* GTestDBus allows 128 pending replies per connection. */
#define IN_FLIGHT 100
/* A wait fails only when nothing moved for this long (loaded CI, ASan). */
#define STALL_MS 30000

typedef struct
{
  Stm32Daemon *daemon;
  Stm32DbusLink1 *links[N_LINKS];
  guint next;     /* the next link to send a Transact */
  guint answered; /* replies that matched their request */
  guint in_flight;
} Fleet;

static guint
count_connected (Fleet *fleet)
{
  guint n = 0;

  for (guint i = 0; i < N_LINKS; i++)
    n += stm32_daemon_link_state_is (fleet->links[i], "connected");
  return n;
}

/* Links the test sees on the bus (all or none: the object manager client
 * asks for them once stm32d owns its name). */
static guint
count_visible (Fleet *fleet)
{
  guint n = 0;

  for (guint i = 0; i < N_LINKS; i++)
    {
      g_autofree char *name = g_strdup_printf ("b%u", i);

      n += stm32_daemon_peek_link (fleet->daemon, name) != NULL;
    }
  return n;
}

static void transact_next (Fleet *fleet);

static void
on_transacted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Fleet *fleet = user_data;
  Stm32DbusLink1 *link = STM32_DBUS_LINK1 (source);
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *expected = NULL;

  fleet->in_flight--;
  g_assert_true (stm32_dbus_link1_call_transact_finish (link, &reply, result, &error));
  g_assert_no_error (error);
  /* The echo of this link's own request: no reply went to another link. */
  expected = g_strdup_printf ("ping %s", stm32_dbus_link1_get_name (link));
  g_assert_cmpmem (g_variant_get_data (reply), g_variant_get_size (reply), expected,
                   strlen (expected));
  fleet->answered++;
  transact_next (fleet);
}

static void
transact_next (Fleet *fleet)
{
  while (fleet->in_flight < IN_FLIGHT && fleet->next < N_LINKS)
    {
      Stm32DbusLink1 *link = fleet->links[fleet->next++];
      g_autofree char *request = g_strdup_printf ("ping %s", stm32_dbus_link1_get_name (link));

      fleet->in_flight++;
      stm32_dbus_link1_call_transact (link, stm32_daemon_bytes (request), 20000, NULL,
                                      on_transacted, fleet);
    }
}

static char *
write_config (Stm32Sim *sim)
{
  g_autoptr (GString) text = g_string_new (NULL);
  g_autofree char *dir = g_dir_make_tmp ("stm32d-fleet-XXXXXX", NULL);
  char *path = g_build_filename (dir, "stm32d.conf", NULL);

  /* Every link starts at once, and under ASan on loaded cores stm32d may
   * take longer than the default 3 s to see 2,000 connects complete: that
   * would be a timeout of ours, not the board's. Speed is in bench/. */
  /* The harness took the first board's "listening"; the others follow it. */
  g_string_append_printf (text, "[Link b0]\nHost=127.0.0.1\nPort=%u\nConnectTimeout=60000\n",
                          stm32_sim_get_port (sim));
  for (guint i = 1; i < N_LINKS; i++)
    {
      g_autoptr (JsonObject) listening = stm32_sim_wait_event (sim, "listening", 10000);

      g_string_append_printf (
          text, "[Link b%u]\nHost=127.0.0.1\nPort=%" G_GINT64_FORMAT "\nConnectTimeout=60000\n", i,
          json_object_get_int_member (listening, "port"));
    }
  stm32_test_write_file (path, "%s", text->str);
  return path;
}

static void
remove_config (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);

  g_unlink (path);
  g_rmdir (dir);
}

static void
test_two_thousand_links (void)
{
  Fleet fleet = { 0 };
  g_autoptr (GSubprocessLauncher) launcher = stm32_test_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  struct rlimit ours, low;
  Stm32Sim *sim;
  g_autofree char *config = NULL;
  g_autoptr (JsonObject) status = NULL;

  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &ours), ==, 0);
  if (ours.rlim_max < N_LINKS + FD_MARGIN)
    {
      g_test_skip ("the hard fd limit is below 2,064: stm32d cannot hold 2,000 links here");
      return;
    }
  sim = stm32_sim_start ("--boards", G_STRINGIFY (N_LINKS), "--slots", "0", "--quiet", NULL);
  config = write_config (sim);

  /* stm32d starts with what systemd gives a service by default. */
  low = ours;
  low.rlim_cur = SOFT_FD_LIMIT;
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &low), ==, 0);
  fleet.daemon = stm32_daemon_start_by (launcher, "--config", config, NULL);
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &ours), ==, 0);
  /* Exporting 2,000 objects takes a while under ASan: bounded by progress. */
  stm32_test_wait_progressing (count_visible (&fleet) == N_LINKS, count_visible (&fleet), STALL_MS);

  for (guint i = 0; i < N_LINKS; i++)
    {
      g_autofree char *name = g_strdup_printf ("b%u", i);

      fleet.links[i] = stm32_daemon_get_link (fleet.daemon, name);
    }
  stm32_test_wait_progressing (count_connected (&fleet) == N_LINKS, count_connected (&fleet),
                               STALL_MS);
  /* More fds than the soft limit it was started with: it raised it. */
  g_assert_cmpuint (stm32_test_count_process_fds (stm32_daemon_get_pid (fleet.daemon)), >,
                    SOFT_FD_LIMIT);

  transact_next (&fleet);
  stm32_test_wait_progressing (fleet.answered == N_LINKS, fleet.answered, STALL_MS);

  /* The boards' own view: one connection each, never a second attempt. */
  status = stm32_sim_status (sim);
  g_assert_cmpint (json_object_get_int_member (status, "boards"), ==, N_LINKS);
  g_assert_cmpint (json_object_get_int_member (status, "connections"), ==, N_LINKS);
  g_assert_cmpint (json_object_get_int_member (status, "accepted"), ==, N_LINKS);
  for (guint i = 0; i < N_LINKS; i++)
    g_assert_cmpuint (stm32_dbus_link1_get_connects (fleet.links[i]), ==, 1);

  /* SIGTERM: exit status 0 (asserted by the harness), and every board got
   * its connection back. */
  stm32_daemon_send_signal (fleet.daemon, SIGTERM);
  stm32_test_wait_progressing (stm32_sim_count_events (sim, "released") == N_LINKS,
                               stm32_sim_count_events (sim, "released"), STALL_MS);
  stm32_daemon_stop (fleet.daemon);
  g_assert_cmpint (stm32_sim_released_how (sim, "peer-reset") +
                       stm32_sim_released_how (sim, "closed-after-eof"),
                   ==, N_LINKS);
  stm32_sim_stop (sim);
  remove_config (config);
}

int
main (int argc, char **argv)
{
  stm32_daemon_test_init (&argc, &argv);
  g_test_add_func ("/fleet/two-thousand-links", test_two_thousand_links);
  return stm32_daemon_test_run ();
}
