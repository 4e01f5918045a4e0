/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The claim stm32d lives on, against the TCP/IP stack that runs on STM32
 * boards: lwIP 2.1 with fixed pools (tests/lwip-board/), on a TAP device in a
 * network namespace of the test's own. A plain client exhausts the board's
 * five control blocks within a handful of cycles; stm32d never does, and
 * every way lwIP ends a connection is classified by its real signature.
 *
 * Root only (a namespace and a TAP device). STM32_LWIP_CYCLES sets the cycle
 * count of /lwip/stm32d-cycles, for a soak (e.g. 100000).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "daemon-harness.h"
#include "link-harness.h"
#include "netns-harness.h"
#include "sim-harness.h"
#include "stm32-defaults.h"
#include "stm32-error.h"
#include "test-util.h"

#define WAIT_MS STM32_TEST_LINK_WAIT_MS
#define BOARD_IP "198.18.0.2"
#define PC_CIDR "198.18.0.1/24"
#define BOARD_TAP "s32tap0"
/* lwipopts.h's MEMP_NUM_TCP_PCB for the board the tests use. */
#define BOARD_TCP_PCBS 5
#define DEFAULT_CYCLES 2000

static gboolean namespace_ready;

/* The board needs lwIP's source; the build skips it where that cannot be had. */
static const char *
board_program (void)
{
  const char *path = g_getenv ("STM32_LWIP_BOARD");

  return path != NULL && *path != '\0' ? path : NULL;
}

/* In main(), before the test bus starts, so the bus, stm32d and the board all
 * share the namespace with the TAP device in it. */
static void
prepare_namespace (void)
{
  if (board_program () == NULL || !stm32_netns_enter_private ())
    return;
  stm32_netns_ip ("tuntap", "add", "dev", BOARD_TAP, "mode", "tap", NULL);
  stm32_netns_ip ("addr", "add", PC_CIDR, "dev", BOARD_TAP, NULL);
  stm32_netns_ip ("link", "set", BOARD_TAP, "up", NULL);
  namespace_ready = TRUE;
}

/* Why these tests cannot run here, or NULL. */
static const char *
skip_reason (void)
{
  if (board_program () == NULL)
    return "the lwIP board was not built: configure with -Dlwip_board=enabled, which needs "
           "Debian's lwip source package (deb-src)";
  if (!namespace_ready)
    return stm32_netns_private_failure () ? stm32_netns_private_failure ()
                                          : "no network namespace for the board";
  return NULL;
}

/* Boots lwIP board @variant ("" for the default, else the suffix of a build
 * with other pool sizes, tests/lwip-board/meson.build) on the TAP device;
 * it speaks stm32-sim's protocol. */
static Stm32Sim *
board_start_va (const char *variant, const char *first_arg, va_list args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);

  g_ptr_array_add (argv, g_strconcat (board_program (), variant, NULL));
  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  g_ptr_array_add (argv, g_strdup ("--tap"));
  g_ptr_array_add (argv, g_strdup (BOARD_TAP));
  g_ptr_array_add (argv, g_strdup ("--ip"));
  g_ptr_array_add (argv, g_strdup (BOARD_IP "/24"));
  g_ptr_array_add (argv, NULL);
  return stm32_sim_spawn ((const char *const *) argv->pdata);
}

static Stm32Sim *board_start (const char *first_arg, ...) G_GNUC_NULL_TERMINATED;

static Stm32Sim *
board_start (const char *first_arg, ...)
{
  Stm32Sim *board;
  va_list args;

  va_start (args, first_arg);
  board = board_start_va ("", first_arg, args);
  va_end (args);
  return board;
}

static Stm32Sim *board_start_variant (const char *variant, const char *first_arg,
                                      ...) G_GNUC_NULL_TERMINATED;

static Stm32Sim *
board_start_variant (const char *variant, const char *first_arg, ...)
{
  Stm32Sim *board;
  va_list args;

  va_start (args, first_arg);
  board = board_start_va (variant, first_arg, args);
  va_end (args);
  return board;
}

/* lwIP's own statistics for one memory pool (MEMP_STATS): used, max, err, avail. */
static gint64
board_pool (Stm32Sim *board, const char *pool, const char *field)
{
  g_autoptr (JsonObject) status = stm32_sim_status (board);
  JsonObject *memp = json_object_get_object_member (status, "memp");
  JsonObject *stats;

  g_assert_nonnull (memp);
  stats = json_object_get_object_member (memp, pool);
  g_assert_nonnull (stats);
  g_assert_true (json_object_has_member (stats, field));
  return json_object_get_int_member (stats, field);
}

/* The board frees a control block when our RST or FIN arrives, which may be
 * just after our side is done: wait for its count, bounded. */
static void
wait_pcbs_used (Stm32Sim *board, gint64 expected)
{
  gint64 used = -1;
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;

  while ((used = board_pool (board, "TCP_PCB", "used")) != expected &&
         g_get_monotonic_time () < deadline)
    stm32_test_iterate (g_get_monotonic_time () + 20 * 1000);
  g_assert_cmpint (used, ==, expected);
}

/* Waits until the board holds no connection but TIME_WAIT ones: lwIP keeps
 * those where the board closed first, and reclaims them when its pool runs
 * out, so they cost the board nothing. */
static void
wait_board_idle (Stm32Sim *board)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;

  for (;;)
    {
      g_autoptr (JsonObject) status = stm32_sim_status (board);
      JsonObject *states =
          json_object_get_object_member (json_object_get_object_member (status, "tcp"), "states");
      JsonObject *pcbs =
          json_object_get_object_member (json_object_get_object_member (status, "memp"), "TCP_PCB");
      gint64 used = json_object_get_int_member (pcbs, "used");
      gint64 time_wait = json_object_get_int_member (states, "TIME_WAIT");

      if (used == time_wait)
        break;
      if (g_get_monotonic_time () >= deadline)
        g_error ("the board still holds %" G_GINT64_FORMAT " control blocks, %" G_GINT64_FORMAT
                 " of them in TIME_WAIT",
                 used, time_wait);
      stm32_test_iterate (g_get_monotonic_time () + 20 * 1000);
    }
}

/* ---- a plain client, as the old GUIs were -------------------------------- */

/* Connects with a bounded wait: the fd, or -1 with errno set (ETIMEDOUT when
 * no SYN-ACK came: lwIP dropped the SYN). */
static int
plain_connect (guint16 port, guint timeout_ms)
{
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons (port) };
  struct pollfd pfd;
  int fd, error = 0;
  socklen_t len = sizeof error;

  g_assert_cmpint (inet_pton (AF_INET, BOARD_IP, &address.sin_addr), ==, 1);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  g_assert_cmpint (fd, >=, 0);
  if (connect (fd, (struct sockaddr *) &address, sizeof address) < 0 && errno != EINPROGRESS)
    error = errno;
  pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
  if (error == 0 && poll (&pfd, 1, (int) timeout_ms) == 0)
    error = ETIMEDOUT;
  if (error == 0)
    g_assert_cmpint (getsockopt (fd, SOL_SOCKET, SO_ERROR, &error, &len), ==, 0);
  if (error != 0)
    {
      close (fd);
      errno = error;
      return -1;
    }
  return fd;
}

/* One request and its echo, bounded. */
static void
plain_echo (int fd, const char *line)
{
  g_autofree char *request = g_strconcat (line, "\n", NULL);
  char reply[256];
  gsize got = 0;
  struct pollfd pfd = { .fd = fd, .events = POLLIN };

  g_assert_cmpint (write (fd, request, strlen (request)), ==, (gssize) strlen (request));
  while (got < strlen (request))
    {
      gssize n;

      g_assert_cmpint (poll (&pfd, 1, WAIT_MS), ==, 1);
      n = read (fd, reply + got, sizeof reply - got);
      g_assert_cmpint (n, >, 0);
      got += (gsize) n;
    }
  g_assert_cmpmem (reply, got, request, strlen (request));
}

/* Fills the board's control-block pool as a GUI that only ever close()s does:
 * each connection is FIN'd, and firmware that ignores EOF keeps its PCB. */
static void
leak_pcbs (Stm32Sim *board, guint count)
{
  for (guint i = 0; i < count; i++)
    {
      int fd = plain_connect (stm32_sim_get_port (board), WAIT_MS);

      g_assert_cmpint (fd, >=, 0);
      plain_echo (fd, "leak");
      close (fd);
      stm32_sim_expect (board, "eof", WAIT_MS);
    }
}

/* ---- stm32d --------------------------------------------------------------- */

static Stm32LinkConfig *
board_config (Stm32Sim *board)
{
  Stm32LinkConfig *config = stm32_link_config_new (BOARD_IP, stm32_sim_get_port (board));

  config->autoconnect = FALSE;
  config->connect_timeout = 1000;
  config->close_timeout = 100;
  config->retry_min = 100;
  config->retry_max = 400;
  config->busy_backoff = 200;
  return config;
}

/* Waits for the link to record one more ending than @before (its history
 * length before the ending was provoked); returns that entry. */
static Stm32HistoryEntry *
wait_ended (Stm32Link *link, guint before, guint timeout_ms)
{
  stm32_test_wait_until (stm32_test_link_history_length (link) > before, timeout_ms);
  return stm32_test_link_last_history_entry (link);
}

static const char *
event_string (JsonObject *event, const char *member)
{
  g_assert_true (json_object_has_member (event, member));
  return json_object_get_string_member (event, member);
}

/* ---- the problem, reproduced ----------------------------------------------- */

typedef struct
{
  const char *variant; /* which board build, see board_start_va() */
  guint tcp_pcbs;      /* its MEMP_NUM_TCP_PCB */
} BoardPool;

static const BoardPool default_pool = { "", BOARD_TCP_PCBS };
static const BoardPool small_pool = { "-pcb2", 2 };

static void
test_plain_close_exhausts_pool (gconstpointer data)
{
  const BoardPool *pool = data;
  Stm32Sim *board;
  guint failed_at = 0;
  int connect_errno = 0;

  board = board_start_variant (pool->variant, "--firmware", "leak", NULL);
  for (guint cycle = 1; cycle <= 3 * pool->tcp_pcbs && failed_at == 0; cycle++)
    {
      int fd = plain_connect (stm32_sim_get_port (board), 1500);

      if (fd < 0)
        {
          connect_errno = errno;
          failed_at = cycle;
          break;
        }
      plain_echo (fd, "hello");
      /* What QTcpSocket::close() and most GUIs do: FIN, and forget. */
      close (fd);
      stm32_sim_expect (board, "eof", WAIT_MS);
    }
  g_test_message ("plain client against a board with %u control blocks failed at cycle %u: %s",
                  pool->tcp_pcbs, failed_at, g_strerror (connect_errno));
  g_assert_cmpuint (failed_at, ==, pool->tcp_pcbs + 1);
  g_assert_cmpint (connect_errno, ==, ETIMEDOUT);
  /* The board's own account: every control block held, and a SYN turned away. */
  g_assert_cmpint (board_pool (board, "TCP_PCB", "used"), ==, pool->tcp_pcbs);
  g_assert_cmpint (board_pool (board, "TCP_PCB", "avail"), ==, pool->tcp_pcbs);
  g_assert_cmpint (board_pool (board, "TCP_PCB", "err"), >, 0);
  stm32_sim_stop (board);
}

/* ---- stm32d against the same board ------------------------------------------ */

static guint
cycles_wanted (void)
{
  const char *text = g_getenv ("STM32_LWIP_CYCLES");
  guint64 cycles = DEFAULT_CYCLES;

  if (text != NULL && !g_ascii_string_to_unsigned (text, 10, 1, G_MAXUINT, &cycles, NULL))
    g_error ("STM32_LWIP_CYCLES=%s: expected a number of cycles", text);
  return (guint) cycles;
}

static void
test_stm32d_cycles (void)
{
  g_autofree char *dir = NULL, *path = NULL;
  guint cycles = cycles_wanted ();
  Stm32DbusLink1 *link;
  Stm32Daemon *daemon;
  Stm32Sim *board;
  gint64 started;
  double seconds;

  board = board_start ("--firmware", "leak", "-q", NULL);
  dir = g_dir_make_tmp ("stm32-lwip-XXXXXX", NULL);
  path = g_build_filename (dir, "stm32d.conf", NULL);
  /* CloseTimeout short: this firmware never answers our FIN, so every close
   * ends with our RST after it — the rescue under test. */
  stm32_test_write_file (path,
                         "[Link board]\nHost=%s\nPort=%u\nAutoconnect=false\nCloseTimeout=10\n"
                         "ConnectTimeout=2000\n",
                         BOARD_IP, stm32_sim_get_port (board));
  daemon = stm32_daemon_start ("--config", path, NULL);
  link = stm32_daemon_get_link (daemon, "board");

  started = g_get_monotonic_time ();
  for (guint i = 0; i < cycles; i++)
    {
      g_autofree char *request = g_strdup_printf ("cycle %u", i);
      g_autoptr (GVariant) reply = NULL;
      g_autoptr (GError) error = NULL;

      if (!stm32_dbus_link1_call_connect_sync (link, NULL, &error) ||
          !stm32_dbus_link1_call_transact_sync (link, stm32_daemon_bytes (request), 2000, &reply,
                                                NULL, &error) ||
          !stm32_dbus_link1_call_disconnect_sync (link, NULL, &error))
        g_error ("cycle %u of %u failed: %s", i + 1, cycles, error->message);
      g_assert_cmpmem (g_variant_get_data (reply), g_variant_get_size (reply), request,
                       strlen (request));
      /* The board reports every connection; read its reports as we go (the
       * status answer comes after them) rather than all at the end. */
      if ((i + 1) % 500 == 0)
        {
          json_object_unref (stm32_sim_status (board));
          stm32_sim_discard_events (board);
          if ((i + 1) % 10000 == 0)
            g_test_message ("%u cycles, %.0f cycles/s so far", i + 1,
                            (i + 1) * (double) G_USEC_PER_SEC /
                                (double) (g_get_monotonic_time () - started));
        }
    }
  seconds = (double) (g_get_monotonic_time () - started) / G_USEC_PER_SEC;

  wait_pcbs_used (board, 0);
  {
    g_autoptr (JsonObject) status = stm32_sim_status (board);
    JsonObject *pcb =
        json_object_get_object_member (json_object_get_object_member (status, "memp"), "TCP_PCB");

    g_test_message ("%u connect/transact/disconnect cycles in %.1f s: %.0f cycles/s; lwIP "
                    "TCP_PCB pool: used %" G_GINT64_FORMAT ", max %" G_GINT64_FORMAT
                    ", err %" G_GINT64_FORMAT ", accepted %" G_GINT64_FORMAT,
                    cycles, seconds, cycles / seconds, json_object_get_int_member (pcb, "used"),
                    json_object_get_int_member (pcb, "max"),
                    json_object_get_int_member (pcb, "err"),
                    json_object_get_int_member (status, "accepted"));
    /* One control block at a time, never one turned away, all given back. */
    g_assert_cmpint (json_object_get_int_member (pcb, "err"), ==, 0);
    g_assert_cmpint (json_object_get_int_member (pcb, "max"), ==, 1);
    g_assert_cmpint (json_object_get_int_member (status, "accepted"), ==, cycles);
    g_assert_cmpint (json_object_get_int_member (status, "rejected"), ==, 0);
  }
  g_assert_cmpuint (stm32_dbus_link1_get_connect_failures (link), ==, 0);
  g_assert_cmpuint (stm32_dbus_link1_get_connects (link), ==, cycles);
  stm32_daemon_stop (daemon);
  stm32_sim_stop (board);
  g_unlink (path);
  g_rmdir (dir);
}

/* stm32ctl doctor's probe estimates how many connections a board can hold:
 * against lwIP that is its control-block pool, and it gives them all back. */
static void
test_doctor_probe_capacity (void)
{
  g_autofree char *dir = g_dir_make_tmp ("stm32-lwip-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "stm32d.conf", NULL);
  g_autoptr (GVariant) report = NULL, probe = NULL;
  g_autoptr (GError) error = NULL;
  GVariantDict options;
  guint32 capacity = 0;
  gboolean released = FALSE;
  Stm32DbusLink1 *link;
  Stm32Daemon *daemon;
  Stm32Sim *board;

  board = board_start ("-q", NULL);
  /* lwIP drops the SYN that finds the pool empty: the probe's count ends
   * with a connect timeout, kept short here. */
  stm32_test_write_file (path, "[Link board]\nHost=%s\nPort=%u\nConnectTimeout=500\n", BOARD_IP,
                         stm32_sim_get_port (board));
  daemon = stm32_daemon_start ("--config", path, NULL);
  link = stm32_daemon_get_link (daemon, "board");
  stm32_test_wait_until (stm32_daemon_link_state_is (link, "connected"), WAIT_MS);

  g_variant_dict_init (&options, NULL);
  g_variant_dict_insert (&options, "probe", "b", TRUE);
  g_variant_dict_insert (&options, "probe-max", "u", 2 * BOARD_TCP_PCBS);
  g_assert_true (stm32_dbus_link1_call_diagnose_sync (link, g_variant_dict_end (&options), &report,
                                                      NULL, &error));
  g_assert_no_error (error);
  probe = g_variant_lookup_value (report, "probe", G_VARIANT_TYPE_VARDICT);
  g_assert_nonnull (probe);
  g_assert_true (g_variant_lookup (probe, "capacity", "u", &capacity));
  g_assert_true (g_variant_lookup (probe, "released", "b", &released));
  g_test_message ("probe: capacity %u (lwIP MEMP_NUM_TCP_PCB %u), released %s", capacity,
                  BOARD_TCP_PCBS, released ? "yes" : "no");
  g_assert_cmpuint (capacity, ==, BOARD_TCP_PCBS);
  g_assert_true (released);
  /* lwIP's own account: the pool was really full once, and only the link's
   * control block is left. */
  g_assert_cmpint (board_pool (board, "TCP_PCB", "err"), >, 0);
  wait_pcbs_used (board, 1);
  g_assert_true (stm32_daemon_link_state_is (link, "connected"));
  stm32_daemon_stop (daemon);
  stm32_sim_stop (board);
  g_unlink (path);
  g_rmdir (dir);
}

/* ---- every failure signature, from the real stack ---------------------------- */

/* Control blocks exhausted by someone else: lwIP drops our SYN. */
static void
test_classify_pool_exhausted (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GError) error = NULL;
  Stm32Sim *board;

  board = board_start ("--firmware", "leak", "-q", NULL);
  leak_pcbs (board, BOARD_TCP_PCBS);
  config = board_config (board);
  link = stm32_link_new ("exhausted", config);
  g_assert_false (stm32_test_link_connect (link, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_TIMEOUT);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "timeout");
  g_assert_cmpint (board_pool (board, "TCP_PCB", "err"), >, 0);
  stm32_test_link_disconnect (link);
  stm32_sim_stop (board);
}

/* The firmware's own slot table is full: it accepts, then aborts (RST). */
static void
test_classify_slot_abort (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (JsonObject) rejected = NULL;
  g_autoptr (GError) error = NULL;
  Stm32Sim *board;
  int holder;

  board = board_start ("--slots", "1", "--when-full", "abort", NULL);
  holder = plain_connect (stm32_sim_get_port (board), WAIT_MS);
  g_assert_cmpint (holder, >=, 0);
  plain_echo (holder, "mine");
  config = board_config (board);
  link = stm32_link_new ("busy", config);
  /* The handshake completes; the abort follows at once. */
  g_assert_true (stm32_test_link_connect (link, &error) || error != NULL);
  g_clear_error (&error);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_WAITING, WAIT_MS);
  rejected = stm32_sim_wait_event (board, "rejected", WAIT_MS);
  g_assert_cmpstr (event_string (rejected, "action"), ==, "abort");
  g_assert_cmpint (stm32_link_get_last_error (link), ==, STM32_END_REASON_SERVER_BUSY);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "server-busy");
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_BOARD);
  stm32_test_link_disconnect (link);
  close (holder);
  stm32_sim_stop (board);
}

static void
test_classify_no_listener (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GError) error = NULL;
  Stm32Sim *board;

  board = board_start ("-q", NULL);
  stm32_sim_command (board, "listen off");
  config = board_config (board);
  link = stm32_link_new ("refused", config);
  g_assert_false (stm32_test_link_connect (link, &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_REFUSED);
  ended = stm32_test_link_last_history_entry (link);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "refused");
  stm32_test_link_disconnect (link);
  stm32_sim_stop (board);
}

/* A connection ended by the board after it was in use: the board's control
 * @command, and the end reason stm32d must name for it. */
typedef struct
{
  const char *command;
  const char *reason;
} BoardEnding;

static const BoardEnding ending_fin = { "close-all", "remote-closed" };
static const BoardEnding ending_abort = { "rst-all", "reset" };

static void
test_classify_board_ending (gconstpointer data)
{
  const BoardEnding *ending = data;
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = NULL;
  guint before;
  Stm32Sim *board;

  board = board_start ("-q", NULL);
  config = board_config (board);
  /* An ending this test provokes is not a full table, however soon it comes. */
  config->busy_window = 0;
  link = stm32_link_new ("ended", config);
  g_assert_true (stm32_test_link_connect (link, NULL));
  reply = stm32_test_link_transact (link, "before", 2000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (reply, ==, "before");
  before = stm32_test_link_history_length (link);
  stm32_sim_command (board, ending->command);
  ended = wait_ended (link, before, WAIT_MS);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, ending->reason);
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_BOARD);
  g_assert_false (stm32_test_link_send (link, "after", &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED);
  g_assert_cmpint (stm32_link_get_last_error (link), ==, ended->reason);
  stm32_test_link_disconnect (link);
  wait_board_idle (board);
  stm32_sim_stop (board);
}

/* ST's example lowers accepted connections to TCP_PRIO_MIN: with the pool
 * full, lwIP makes room for a new SYN by aborting the oldest idle one. */
static void
test_classify_evicted (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (JsonObject) evicted = NULL;
  int others[BOARD_TCP_PCBS];
  guint before;
  Stm32Sim *board;

  board = board_start ("--prio", "min", "-q", NULL);
  config = board_config (board);
  config->autoconnect = TRUE;
  config->busy_window = 0;
  link = stm32_link_new ("evicted", config);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  stm32_sim_expect (board, "accepted", WAIT_MS);
  /* Four more fill the pool; the fifth evicts the oldest: ours. */
  before = stm32_test_link_history_length (link);
  for (guint i = 0; i < BOARD_TCP_PCBS; i++)
    {
      others[i] = plain_connect (stm32_sim_get_port (board), WAIT_MS);
      g_assert_cmpint (others[i], >=, 0);
      stm32_sim_expect (board, "accepted", WAIT_MS);
    }
  evicted = stm32_sim_wait_event (board, "released", WAIT_MS);
  g_assert_cmpstr (event_string (evicted, "how"), ==, "stack-aborted");
  ended = wait_ended (link, before, WAIT_MS);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "reset");
  g_assert_cmpint (ended->closed_by, ==, STM32_CLOSED_BY_BOARD);
  /* Back with backoff, evicting in turn the oldest of the others. */
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_WAITING);
  g_assert_cmpuint (stm32_link_get_retry_in (link), >=, config->retry_min * 8 / 10);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  g_assert_cmpuint (stm32_test_link_history_length (link), ==, before + 1);
  for (guint i = 0; i < BOARD_TCP_PCBS; i++)
    close (others[i]);
  stm32_test_link_disconnect (link);
  stm32_sim_stop (board);
}

/* ---- the board reboots; the cable is pulled -------------------------------- */

/* Frames the board received, in order, across its lives. */
static GPtrArray *
board_frames (Stm32Sim *board)
{
  GPtrArray *frames = g_ptr_array_new_with_free_func (g_free);
  guint count = stm32_sim_count_events (board, "frame");

  for (guint i = 0; i < count; i++)
    {
      g_autoptr (JsonObject) frame = stm32_sim_wait_event (board, "frame", WAIT_MS);

      g_ptr_array_add (frames, g_strdup (event_string (frame, "data")));
    }
  return frames;
}

static guint
count_string (GPtrArray *strings, const char *wanted)
{
  guint count = 0;

  for (guint i = 0; i < strings->len; i++)
    count += g_str_equal (strings->pdata[i], wanted);
  return count;
}

/* Keeps the first retry delay the link chose. */
static void
on_retry_in (Stm32Link *link, GParamSpec *pspec, gpointer user_data)
{
  guint *retry_in = user_data;

  if (*retry_in == 0)
    *retry_in = stm32_link_get_retry_in (link);
}

static void
test_restart (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autoptr (GPtrArray) sent = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) received = NULL;
  g_autoptr (GError) error = NULL;
  guint before, retry_in = 0;
  Stm32Sim *board;
  gint64 back_at, reconnect_ms;

  board = board_start ("--reply", "none", NULL);
  config = board_config (board);
  config->autoconnect = TRUE;
  link = stm32_link_new ("rebooted", config);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  for (guint i = 1; i <= 3; i++)
    {
      g_autofree char *frame = g_strdup_printf ("first life %u", i);

      g_assert_true (stm32_test_link_send (link, frame, NULL));
      g_ptr_array_add (sent, g_steal_pointer (&frame));
    }

  /* The same IP and MAC, an empty stack: the board knows nothing of us. */
  stm32_sim_command (board, "restart 200");
  stm32_sim_expect (board, "restart", WAIT_MS);
  stm32_sim_expect (board, "listening", WAIT_MS);
  back_at = g_get_monotonic_time ();
  g_assert_cmpint (stm32_link_get_state (link), ==, STM32_LINK_STATE_CONNECTED);
  g_signal_connect (link, "notify::retry-in", G_CALLBACK (on_retry_in), &retry_in);

  /* Our kernel takes this frame; the new stack answers it with RST. It was
   * never on the board, so it must not be reported sent. */
  before = stm32_test_link_history_length (link);
  g_assert_false (stm32_test_link_send (link, "into the reboot", &error));
  g_assert_error (error, STM32_ERROR, STM32_ERROR_RESET);
  ended = wait_ended (link, before, WAIT_MS);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "reset");

  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  reconnect_ms = (g_get_monotonic_time () - back_at) / 1000;
  g_test_message ("connected again %" G_GINT64_FORMAT " ms after the board was back (RetryMin %u "
                  "ms)",
                  reconnect_ms, config->retry_min);
  /* The first retry after a healthy connection waits RetryMin (±20 %): the
   * delay the link chose, not how long a loaded machine took. */
  g_assert_cmpuint (retry_in, >=, config->retry_min * 8 / 10);
  g_assert_cmpuint (retry_in, <=, config->retry_min * 12 / 10);
  g_assert_cmpint (reconnect_ms, >=, config->retry_min * 8 / 10);
  g_signal_handlers_disconnect_by_func (link, on_retry_in, &retry_in);
  for (guint i = 1; i <= 3; i++)
    {
      g_autofree char *frame = g_strdup_printf ("second life %u", i);

      g_assert_true (stm32_test_link_send (link, frame, NULL));
      g_ptr_array_add (sent, g_steal_pointer (&frame));
    }

  /* Every frame reported sent is on the board exactly once; the other never arrived. */
  stm32_test_wait_until (stm32_sim_count_events (board, "frame") >= sent->len, WAIT_MS);
  received = board_frames (board);
  for (guint i = 0; i < sent->len; i++)
    g_assert_cmpuint (count_string (received, sent->pdata[i]), ==, 1);
  g_assert_cmpuint (count_string (received, "into the reboot"), ==, 0);
  g_assert_cmpuint (received->len, ==, sent->len);
  stm32_test_link_disconnect (link);
  stm32_sim_stop (board);
}

static void
test_cut_link (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  g_autoptr (Stm32HistoryEntry) ended = NULL;
  g_autofree char *reply = NULL;
  guint before;
  Stm32Sim *board;
  gint64 cut_at, noticed_ms;
  guint budget_ms;

  board = board_start ("-q", NULL);
  config = board_config (board);
  config->autoconnect = TRUE;
  config->keepalive_idle_s = 1;
  config->keepalive_interval_s = 1;
  config->keepalive_count = 2;
  config->user_timeout = 3000;
  budget_ms = config->user_timeout;
  link = stm32_link_new ("cut", config);
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  reply = stm32_test_link_transact (link, "still there?", 2000, NULL);
  g_assert_cmpstr (reply, ==, "still there?");

  before = stm32_test_link_history_length (link);
  stm32_sim_command (board, "cut on");
  cut_at = g_get_monotonic_time ();
  ended = wait_ended (link, before, 20000);
  noticed_ms = (g_get_monotonic_time () - cut_at) / 1000;
  g_test_message ("dead peer noticed %" G_GINT64_FORMAT " ms after the cut (budget %u ms)",
                  noticed_ms, budget_ms);
  g_assert_cmpstr (stm32_test_reason_nick (ended->reason), ==, "dead-peer");
  /* Not before the first keepalive probe went unanswered. */
  g_assert_cmpint (noticed_ms, >=, config->keepalive_idle_s * 1000);

  stm32_sim_command (board, "cut off");
  stm32_test_wait_until (stm32_link_get_state (link) == STM32_LINK_STATE_CONNECTED, WAIT_MS);
  g_clear_pointer (&reply, g_free);
  reply = stm32_test_link_transact (link, "back", 2000, NULL);
  g_assert_cmpstr (reply, ==, "back");
  stm32_test_link_disconnect (link);
  stm32_sim_stop (board);
}

/* ---- CloseMode=auto on the real stack --------------------------------------- */

/* Frames each learned-close cycle Sends without waiting before Disconnect. */
#define CLOSE_BURST 5
#define LEARNED_CYCLES 1000

static gint64
board_released_how (Stm32Sim *board, const char *how)
{
  g_autoptr (JsonObject) status = stm32_sim_status (board);
  JsonObject *counts = json_object_get_object_member (status, "released_how");

  return json_object_has_member (counts, how) ? json_object_get_int_member (counts, how) : 0;
}

/* Connect, a transaction, CLOSE_BURST frames sent without waiting and
 * Disconnect at once; every Send must be answered as sent. Returns the
 * history entry of this connection. */
static Stm32HistoryEntry *
close_cycle (Stm32Link *link, guint n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *request = g_strdup_printf ("cycle %u", n);
  g_autofree char *reply = NULL;
  guint sent = 0;

  if (!stm32_test_link_connect (link, &error) ||
      (reply = stm32_test_link_transact (link, request, WAIT_MS, &error)) == NULL)
    g_error ("cycle %u failed: %s", n, error->message);
  g_assert_cmpstr (reply, ==, request);
  for (guint i = 0; i < CLOSE_BURST; i++)
    {
      g_autofree char *text = g_strdup_printf ("cycle %u frame %u", n, i);
      g_autoptr (GBytes) frame = g_bytes_new (text, strlen (text));

      stm32_link_send_async (link, frame, NULL, stm32_test_link_count_sent, &sent);
    }
  stm32_test_link_disconnect (link);
  stm32_test_wait_until (sent == CLOSE_BURST, WAIT_MS);
  return stm32_test_link_last_history_entry (link);
}

/* The board's own count of the frames it received: all of them, once. */
static void
wait_board_frames (Stm32Sim *board, guint expected)
{
  stm32_test_wait_until (stm32_sim_count_events (board, "frame") >= expected, WAIT_MS);
  g_assert_cmpuint (stm32_sim_count_events (board, "frame"), ==, expected);
}

static void
assert_board_empty (Stm32Sim *board)
{
  g_autoptr (JsonObject) status = NULL;

  wait_pcbs_used (board, 0);
  status = stm32_sim_status (board);
  g_assert_cmpint (json_object_get_int_member (status, "slots_in_use"), ==, 0);
}

static Stm32LinkConfig *
default_close_config (Stm32Sim *board)
{
  Stm32LinkConfig *config = stm32_link_config_new (BOARD_IP, stm32_sim_get_port (board));

  /* Everything at its default (CloseMode=auto, CloseTimeout 1 s) but the
   * link is driven by the test. */
  config->autoconnect = FALSE;
  return config;
}

/* Firmware that ignores EOF, default config: three closes that wait out
 * CloseTimeout, then learned resets — every frame reaches the board's
 * application, and lwIP ends with no control block and no slot taken. */
static void
test_learned_close_cycles (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  Stm32Sim *board;
  guint graceful = 0, learned = 0, rechecks = 0;
  gint64 started;

  board = board_start ("--firmware", "leak", NULL);
  config = default_close_config (board);
  link = stm32_link_new ("leak", config);
  started = g_get_monotonic_time ();
  for (guint i = 0; i < LEARNED_CYCLES; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = close_cycle (link, i);

      g_assert_cmpstr (stm32_test_reason_nick (entry->reason), ==, "local");
      /* Never a FIN from this firmware: every connection ends with our RST. */
      g_assert_true (entry->aborted);
      g_assert_cmpint (entry->fin_delay, ==, -1);
      switch (entry->close_kind)
        {
        case STM32_CLOSE_KIND_GRACEFUL:
          graceful++;
          g_assert_cmpuint (i, <, STM32_CLOSE_LEARN_AFTER);
          break;
        case STM32_CLOSE_KIND_RECHECK:
          rechecks++;
          break;
        case STM32_CLOSE_KIND_LEARNED_RESET:
          learned++;
          /* Reset once acknowledged, never after a timeout. */
          g_assert_null (strstr (entry->error, "CloseTimeout"));
          g_assert_null (strstr (entry->error, "did not"));
          break;
        default:
          g_assert_not_reached ();
        }
      if ((i + 1) % 100 == 0)
        stm32_sim_discard_events (board);
    }
  g_test_message ("%u cycles in %.1f s: %u graceful, %u learned resets, %u re-checks",
                  LEARNED_CYCLES, (g_get_monotonic_time () - started) / 1e6, graceful, learned,
                  rechecks);
  g_assert_cmpuint (graceful, ==, STM32_CLOSE_LEARN_AFTER);
  /* The 16th learned close, then every 32nd, 64th, … 256th. */
  g_assert_cmpuint (rechecks, ==, 6);
  wait_board_frames (board, LEARNED_CYCLES * (1 + CLOSE_BURST));
  assert_board_empty (board);
  g_assert_cmpint (board_released_how (board, "peer-reset"), ==, LEARNED_CYCLES);
  stm32_sim_stop (board);
}

/* The firmware is fixed while stm32d runs: the re-check sees lwIP's FIN,
 * and the link closes gracefully from then on. */
static void
test_learned_close_firmware_fixed (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  Stm32Sim *board;
  guint cycle = 0, resets_before;
  gboolean rechecked = FALSE;

  board = board_start ("--firmware", "leak", "-q", NULL);
  config = default_close_config (board);
  link = stm32_link_new ("fixed", config);
  for (; cycle < STM32_CLOSE_LEARN_AFTER; cycle++)
    stm32_history_entry_free (close_cycle (link, cycle));
  stm32_sim_command (board, "mode good");
  while (!rechecked)
    {
      g_autoptr (Stm32HistoryEntry) entry = close_cycle (link, cycle++);

      g_assert_cmpuint (cycle, <=, STM32_CLOSE_LEARN_AFTER + STM32_CLOSE_RECHECK_FIRST);
      rechecked = entry->close_kind == STM32_CLOSE_KIND_RECHECK;
      if (rechecked)
        {
          g_assert_false (entry->aborted);
          g_assert_cmpint (entry->fin_delay, >=, 0);
        }
      else
        g_assert_cmpint (entry->close_kind, ==, STM32_CLOSE_KIND_LEARNED_RESET);
    }
  resets_before = (guint) board_released_how (board, "peer-reset");
  for (guint i = 0; i < 20; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = close_cycle (link, cycle++);

      g_assert_cmpint (entry->close_kind, ==, STM32_CLOSE_KIND_GRACEFUL);
      g_assert_false (entry->aborted);
    }
  assert_board_empty (board);
  g_assert_cmpint (board_released_how (board, "peer-reset"), ==, resets_before);
  stm32_sim_stop (board);
}

/* Firmware that closes on EOF never gets a RST in auto mode. */
static void
test_learned_close_good_firmware (void)
{
  g_autoptr (Stm32LinkConfig) config = NULL;
  g_autoptr (Stm32Link) link = NULL;
  Stm32Sim *board;

  board = board_start ("--firmware", "good", NULL);
  config = default_close_config (board);
  link = stm32_link_new ("good", config);
  for (guint i = 0; i < LEARNED_CYCLES; i++)
    {
      g_autoptr (Stm32HistoryEntry) entry = close_cycle (link, i);

      if (entry->aborted)
        g_error ("cycle %u ended with a RST: %s", i, entry->error);
      g_assert_cmpint (entry->close_kind, ==, STM32_CLOSE_KIND_GRACEFUL);
      g_assert_cmpint (entry->fin_delay, >=, 0);
      if ((i + 1) % 100 == 0)
        stm32_sim_discard_events (board);
    }
  wait_board_frames (board, LEARNED_CYCLES * (1 + CLOSE_BURST));
  assert_board_empty (board);
  g_assert_cmpint (board_released_how (board, "peer-reset"), ==, 0);
  g_assert_cmpint (board_released_how (board, "closed-after-eof"), ==, LEARNED_CYCLES);
  stm32_sim_stop (board);
}

int
main (int argc, char **argv)
{
  prepare_namespace ();
  if (skip_reason () != NULL)
    {
      /* Exit status 77: meson reports the test skipped, not passed. */
      g_print ("1..0 # SKIP %s\n", skip_reason ());
      return 77;
    }
  stm32_daemon_test_init (&argc, &argv);
  g_test_add_data_func ("/lwip/plain-close-exhausts-pool", &default_pool,
                        test_plain_close_exhausts_pool);
  g_test_add_data_func ("/lwip/plain-close-exhausts-pool/pcb2", &small_pool,
                        test_plain_close_exhausts_pool);
  g_test_add_func ("/lwip/stm32d-cycles", test_stm32d_cycles);
  g_test_add_func ("/lwip/doctor-probe-capacity", test_doctor_probe_capacity);
  g_test_add_func ("/lwip/classify/pool-exhausted-timeout", test_classify_pool_exhausted);
  g_test_add_func ("/lwip/classify/slot-abort-server-busy", test_classify_slot_abort);
  g_test_add_func ("/lwip/classify/no-listener-refused", test_classify_no_listener);
  g_test_add_data_func ("/lwip/classify/fin-remote-closed", &ending_fin,
                        test_classify_board_ending);
  g_test_add_data_func ("/lwip/classify/abort-reset", &ending_abort, test_classify_board_ending);
  g_test_add_func ("/lwip/classify/evicted-reset", test_classify_evicted);
  g_test_add_func ("/lwip/restart", test_restart);
  g_test_add_func ("/lwip/cut-link", test_cut_link);
  g_test_add_func ("/lwip/learned-close/cycles", test_learned_close_cycles);
  g_test_add_func ("/lwip/learned-close/firmware-fixed", test_learned_close_firmware_fixed);
  g_test_add_func ("/lwip/learned-close/good-firmware", test_learned_close_good_firmware);
  return stm32_daemon_test_run ();
}
