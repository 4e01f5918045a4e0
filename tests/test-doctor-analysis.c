/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The doctor's analysis on its own (daemon/stm32-doctor.h): histories and
 * censuses built by hand for the cases the simulator cannot stage, or
 * stages only slowly — the patterns that must not be mistaken for a problem,
 * and how the same symptom gets a different finding in a different context.
 */
#include <netinet/tcp.h>
#include <string.h>

#include "stm32-doctor.h"
#include "stm32-enum-types.h"
#include "stm32-history.h"
#include "stm32-sock-census.h"

#define S G_USEC_PER_SEC
#define MS 1000

typedef struct
{
  Stm32LinkConfig *config;
  GPtrArray *history;
  GPtrArray *census;
  gint64 clock;
} Case;

static void
case_init (Case *c)
{
  c->config = stm32_link_config_new ("10.0.0.7", 8080);
  c->history = g_ptr_array_new_with_free_func ((GDestroyNotify) stm32_history_entry_free);
  c->census = g_ptr_array_new_with_free_func ((GDestroyNotify) stm32_sock_entry_free);
  c->clock = G_GINT64_CONSTANT (1700000000) * S;
}

static void
case_clear (Case *c)
{
  stm32_link_config_free (c->config);
  g_ptr_array_unref (c->history);
  g_ptr_array_unref (c->census);
}

/* An attempt that connected (unless @lasted < 0), lasted @lasted µs and
 * ended with @reason; the clock moves on by a second. */
static Stm32HistoryEntry *
add_attempt (Case *c, Stm32EndReason reason, Stm32ClosedBy closed_by, gint64 lasted)
{
  Stm32HistoryEntry *entry = g_new0 (Stm32HistoryEntry, 1);

  entry->started = c->clock;
  entry->connected = lasted >= 0 ? c->clock + 1 * MS : 0;
  entry->closed = c->clock + 1 * MS + MAX (lasted, 0);
  entry->reason = reason;
  entry->closed_by = closed_by;
  entry->local_address = g_strdup_printf ("10.0.0.1:%u", 40000 + c->history->len);
  g_ptr_array_add (c->history, entry);
  c->clock = entry->closed + S;
  return entry;
}

static void
add_socket (Case *c, guint state, const char *local, int pid, const char *command)
{
  Stm32SockEntry *entry = g_new0 (Stm32SockEntry, 1);

  entry->state = state;
  entry->local_address = g_strdup (local);
  entry->remote_address = g_strdup ("10.0.0.7:8080");
  entry->pid = pid;
  entry->command = g_strdup (command);
  entry->uid = 1000;
  /* Every socket a process holds has an inode; only TIME_WAIT and orphans
   * (add_orphan) have none. */
  entry->inode = state == TCP_TIME_WAIT ? 0 : 1000 + c->census->len;
  g_ptr_array_add (c->census, entry);
}

/* A socket its program closed and no process holds, still being closed. */
static void
add_orphan (Case *c, guint state, const char *local)
{
  add_socket (c, state, local, 0, NULL);
  ((Stm32SockEntry *) c->census->pdata[c->census->len - 1])->inode = 0;
}

static GVariant *
report (Case *c)
{
  Stm32DoctorInput input = {
    .config = c->config,
    .history = c->history,
    .census = c->census,
    .self_pid = 100,
  };

  return stm32_doctor_report (&input);
}

static GVariant *
find (GVariant *report, const char *id)
{
  g_autoptr (GVariant) findings = g_variant_lookup_value (report, "findings", NULL);

  for (gsize i = 0; i < g_variant_n_children (findings); i++)
    {
      g_autoptr (GVariant) finding = g_variant_get_child_value (findings, i);
      const char *finding_id = NULL;

      g_variant_lookup (finding, "id", "&s", &finding_id);
      if (g_str_equal (finding_id, id))
        return g_steal_pointer (&finding);
    }
  return NULL;
}

static gsize
count_findings (GVariant *report)
{
  g_autoptr (GVariant) findings = g_variant_lookup_value (report, "findings", NULL);

  return g_variant_n_children (findings);
}

static gboolean
healthy (GVariant *report)
{
  gboolean value = FALSE;

  g_assert_true (g_variant_lookup (report, "healthy", "b", &value));
  return value;
}

static const char *
severity (GVariant *finding)
{
  const char *value = NULL;

  g_assert_nonnull (finding);
  g_variant_lookup (finding, "severity", "&s", &value);
  return value;
}

static gboolean
has (GVariant *report, const char *id)
{
  g_autoptr (GVariant) finding = find (report, id);

  return finding != NULL;
}

/* Interned: the finding it came from is gone by the time it is compared. */
static const char *
severity_of (GVariant *report, const char *id)
{
  g_autoptr (GVariant) finding = find (report, id);

  return g_intern_string (severity (finding));
}

/* Requested closes the board answered, the PC's TIME_WAITs, the link's own
 * socket, another program's TIME_WAIT: all as it should be. */
static void
test_healthy (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL;

  case_init (&c);
  for (guint i = 0; i < 5; i++)
    add_attempt (&c, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, 20 * S);
  add_socket (&c, TCP_TIME_WAIT, "10.0.0.1:40001", 0, NULL);
  add_socket (&c, TCP_ESTABLISHED, "10.0.0.1:40009", 100, "stm32d");
  add_socket (&c, TCP_TIME_WAIT, "10.0.0.1:51000", 0, NULL);
  r = report (&c);
  g_assert_cmpuint (count_findings (r), ==, 0);
  g_assert_true (healthy (r));
  case_clear (&c);
}

static Stm32HistoryEntry *
add_board_close (Case *c, gint64 quiet)
{
  Stm32HistoryEntry *entry =
      add_attempt (c, STM32_END_REASON_REMOTE_CLOSED, STM32_CLOSED_BY_BOARD, 5 * S + quiet);

  entry->last_sent = entry->last_received = entry->connected + 5 * S;
  return entry;
}

/* The board closes after 30 s of silence each time, with traffic before:
 * the silence is what counts, not how long the connection lasted. */
static void
test_idle_pattern (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL;
  guint32 interval = 0;
  const char *fix = NULL;

  case_init (&c);
  add_board_close (&c, 30 * S);
  add_board_close (&c, 30 * S + 40 * MS);
  add_board_close (&c, 30 * S + 90 * MS);
  r = report (&c);
  finding = find (r, "board-idle-timeout");
  g_assert_nonnull (finding);
  g_assert_true (g_variant_lookup (finding, "interval-ms", "u", &interval));
  g_assert_cmpuint (interval, ==, 30040);
  g_variant_lookup (finding, "fix", "&s", &fix);
  g_assert_nonnull (strstr (fix, "HeartbeatInterval=15000"));
  case_clear (&c);
}

/* A heartbeat already configured, but slower than the board's timeout. */
static void
test_idle_heartbeat_too_slow (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL;
  const char *fix = NULL;

  case_init (&c);
  c.config->heartbeat = g_bytes_new_static ("ping", 4);
  c.config->heartbeat_interval = 5000;
  add_board_close (&c, 2 * S);
  add_board_close (&c, 2 * S);
  r = report (&c);
  finding = find (r, "board-idle-timeout");
  g_assert_nonnull (finding);
  g_variant_lookup (finding, "fix", "&s", &fix);
  g_assert_nonnull (strstr (fix, "HeartbeatInterval=5000 is longer"));
  g_assert_nonnull (strstr (fix, "HeartbeatInterval=1000"));
  case_clear (&c);
}

/* Closes at scattered intervals are not a timer, and one close is no pattern. */
static void
test_idle_irregular (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, once = NULL;

  case_init (&c);
  add_board_close (&c, 2 * S);
  once = report (&c);
  g_assert_false (has (once, "board-idle-timeout"));
  add_board_close (&c, 11 * S);
  add_board_close (&c, 47 * S);
  r = report (&c);
  g_assert_false (has (r, "board-idle-timeout"));
  case_clear (&c);
}

/* A refusal long ago (a board booting) is a note; a refusal now is an error. */
static void
test_refused_severity (void)
{
  Case c;
  g_autoptr (GVariant) before = NULL, now = NULL;

  case_init (&c);
  add_attempt (&c, STM32_END_REASON_REFUSED, STM32_CLOSED_BY_NONE, -1);
  add_attempt (&c, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, 60 * S);
  before = report (&c);
  g_assert_cmpstr (severity_of (before, "refused"), ==, "info");
  g_assert_true (healthy (before));
  add_attempt (&c, STM32_END_REASON_REFUSED, STM32_CLOSED_BY_NONE, -1);
  now = report (&c);
  g_assert_cmpstr (severity_of (now, "refused"), ==, "error");
  g_assert_false (healthy (now));
  case_clear (&c);
}

/* Replies after their callers' timeouts are worth knowing; connections that
 * ended out of step because of them are worth a warning. */
static void
test_late_replies (void)
{
  Case c;
  g_autoptr (GVariant) none = NULL, late = NULL, out_of_step = NULL;
  g_autoptr (GVariant) late_finding = NULL, out_of_step_finding = NULL;

  case_init (&c);
  add_attempt (&c, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, 60 * S);
  none = report (&c);
  g_assert_false (has (none, "late-replies"));
  add_attempt (&c, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, 60 * S)->late_replies = 2;
  late = report (&c);
  late_finding = find (late, "late-replies");
  g_assert_cmpstr (severity (late_finding), ==, "info");
  add_attempt (&c, STM32_END_REASON_OUT_OF_STEP, STM32_CLOSED_BY_PC, 60 * S);
  out_of_step = report (&c);
  out_of_step_finding = find (out_of_step, "late-replies");
  g_assert_cmpstr (severity (out_of_step_finding), ==, "warning");
  case_clear (&c);
}

/* Connect timeouts from a board that answered before: its PCB pool; from one
 * that never did: the path to it. */
static void
test_timeouts (void)
{
  Case c;
  g_autoptr (GVariant) never = NULL, after = NULL;

  case_init (&c);
  add_attempt (&c, STM32_END_REASON_TIMEOUT, STM32_CLOSED_BY_NONE, -1);
  never = report (&c);
  g_assert_true (has (never, "connect-timeout"));
  g_assert_false (has (never, "pcb-exhaustion"));
  g_ptr_array_insert (c.history, 0, g_new0 (Stm32HistoryEntry, 1));
  ((Stm32HistoryEntry *) c.history->pdata[0])->connected = 1;
  ((Stm32HistoryEntry *) c.history->pdata[0])->reason = STM32_END_REASON_LOCAL;
  after = report (&c);
  g_assert_cmpstr (severity_of (after, "pcb-exhaustion"), ==, "error");
  g_assert_false (has (after, "connect-timeout"));
  case_clear (&c);
}

/* Another program's established socket and one in CLOSE_WAIT compete; its
 * TIME_WAIT does not; a hidden owner is reported by uid. */
static void
test_competing (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL;
  const char *evidence = NULL, *fix = NULL;

  case_init (&c);
  add_socket (&c, TCP_ESTABLISHED, "10.0.0.1:50000", 4242, "qtgui");
  add_socket (&c, TCP_CLOSE_WAIT, "10.0.0.1:50001", 4242, "qtgui");
  add_socket (&c, TCP_ESTABLISHED, "10.0.0.1:50002", 0, NULL);
  add_socket (&c, TCP_TIME_WAIT, "10.0.0.1:50003", 0, NULL);
  r = report (&c);
  finding = find (r, "competing-client");
  g_assert_cmpstr (severity (finding), ==, "warning");
  g_variant_lookup (finding, "evidence", "&s", &evidence);
  g_variant_lookup (finding, "fix", "&s", &fix);
  g_assert_nonnull (strstr (evidence, "pid 4242 (qtgui, uid 1000)"));
  g_assert_nonnull (strstr (evidence, "1 in CLOSE_WAIT"));
  g_assert_nonnull (strstr (evidence, "uid 1000 that stm32d may not inspect"));
  g_assert_null (strstr (evidence, "50003"));
  g_assert_nonnull (strstr (fix, "Stop pid 4242 (qtgui)"));
  g_assert_nonnull (strstr (fix, "ss -tnp"));
  case_clear (&c);
}

/* A socket another program closed, which the kernel is still ending, is
 * neither a hidden process nor a reason to run the doctor as root: no
 * process holds it. It still counts, as it may hold the board's slot. */
static void
test_competing_orphan (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL;
  const char *evidence = NULL, *fix = NULL;

  case_init (&c);
  add_orphan (&c, TCP_FIN_WAIT2, "10.0.0.1:50004");
  r = report (&c);
  finding = find (r, "competing-client");
  g_variant_lookup (finding, "evidence", "&s", &evidence);
  g_variant_lookup (finding, "fix", "&s", &fix);
  g_assert_nonnull (strstr (evidence, "a socket its program has closed, still being ended by the "
                                      "kernel: FIN_WAIT_2 10.0.0.1:50004"));
  g_assert_null (strstr (evidence, "may not inspect"));
  g_assert_null (strstr (fix, "ss -tnp"));
  case_clear (&c);
}

/* Closes on request, @kind each; @fin: whether the board's FIN came. */
static void
add_closes (Case *c, guint n, Stm32CloseKind kind, gboolean fin)
{
  for (guint i = 0; i < n; i++)
    {
      Stm32HistoryEntry *entry =
          add_attempt (c, STM32_END_REASON_LOCAL, STM32_CLOSED_BY_PC, 20 * MS);

      entry->close_kind = kind;
      entry->fin_delay = fin ? 300 : -1;
      entry->aborted = !fin;
    }
}

static const char *
lookup_string (GVariant *finding, const char *key)
{
  const char *value = NULL;

  g_assert_true (g_variant_lookup (finding, key, "&s", &value));
  return value;
}

/* After learning, the finding counts the graceful closes the board left
 * unanswered, says the link now resets at once, and still names the
 * firmware fix. */
static void
test_learned_reset (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL;

  case_init (&c);
  add_closes (&c, 3, STM32_CLOSE_KIND_GRACEFUL, FALSE);
  add_closes (&c, 15, STM32_CLOSE_KIND_LEARNED_RESET, FALSE);
  add_closes (&c, 1, STM32_CLOSE_KIND_RECHECK, FALSE);
  r = report (&c);
  finding = find (r, "board-ignores-eof");
  g_assert_nonnull (finding);
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "4 of 4 closes"));
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "15 more connections with a "
                                                                 "learned reset"));
  g_assert_nonnull (strstr (lookup_string (finding, "fix"), "Only the firmware can fix this"));
  g_assert_nonnull (strstr (lookup_string (finding, "workaround"), "learned reset"));
  case_clear (&c);

  /* As tools/demo.sh shows it: one learned reset after the three. */
  g_clear_pointer (&r, g_variant_unref);
  g_clear_pointer (&finding, g_variant_unref);
  case_init (&c);
  add_closes (&c, 3, STM32_CLOSE_KIND_GRACEFUL, FALSE);
  add_closes (&c, 1, STM32_CLOSE_KIND_LEARNED_RESET, FALSE);
  r = report (&c);
  finding = find (r, "board-ignores-eof");
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "closed 1 more connection with a "
                                                                 "learned reset"));
  case_clear (&c);
}

/* CloseMode=reset resets every close without asking the board: no
 * evidence against a board that answers. */
static void
test_configured_reset (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL;

  case_init (&c);
  add_closes (&c, 2, STM32_CLOSE_KIND_GRACEFUL, TRUE);
  add_closes (&c, 10, STM32_CLOSE_KIND_RESET, FALSE);
  r = report (&c);
  g_assert_null (find (r, "board-ignores-eof"));
  g_assert_true (healthy (r));
  case_clear (&c);
}

/* Whether the doctor calls a dead peer that @detector noticed, with
 * @error as its message, a hung firmware (TRUE) or a gone board (FALSE). */
static gboolean
reported_hung (Stm32Detector detector, const char *error)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL;
  Stm32HistoryEntry *entry;
  const char *title = NULL;
  gboolean hung;

  case_init (&c);
  entry = add_attempt (&c, STM32_END_REASON_DEAD_PEER, STM32_CLOSED_BY_PC, 20 * S);
  entry->detector = detector;
  entry->error = g_strdup (error);
  r = report (&c);
  finding = find (r, "dead-peer");
  g_assert_nonnull (finding);
  g_assert_true (g_variant_lookup (finding, "title", "&s", &title));
  hung = strstr (title, "firmware stopped answering") != NULL;
  g_assert_true (hung || strstr (title, "stopped answering altogether") != NULL);
  case_clear (&c);
  return hung;
}

/* A hung firmware or a gone board, by what detected the end, whatever the
 * message says: messages are for people, and their wording changes. */
static void
test_dead_peer_detector (void)
{
  GEnumClass *detectors = g_type_class_ref (STM32_TYPE_DETECTOR);

  /* Every detector has its nick; the sentinel is not one. */
  g_assert_cmpuint (detectors->n_values, ==, STM32_DETECTOR_N);
  g_type_class_unref (detectors);

  g_assert_true (reported_hung (STM32_DETECTOR_HEARTBEAT, "kein Herzschlag"));
  g_assert_true (reported_hung (STM32_DETECTOR_IDLE_TIMEOUT, "silence"));
  g_assert_true (reported_hung (STM32_DETECTOR_IDLE_TIMEOUT, NULL));
  /* The kernel gave up: nothing on the board ACKs, whatever the text says. */
  g_assert_false (reported_hung (STM32_DETECTOR_KEEPALIVE, "no Heartbeat, Idle: timed out"));
}

/* The PC ran out of local ports: a PC-side finding, with the TIME_WAIT
 * sockets counted and the fixes on the PC. */
static void
test_pc_no_ports (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL;

  case_init (&c);
  add_closes (&c, 5, STM32_CLOSE_KIND_GRACEFUL, TRUE);
  for (guint i = 0; i < 3; i++)
    add_attempt (&c, STM32_END_REASON_PC_NO_PORTS, STM32_CLOSED_BY_NONE, -1);
  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *local = g_strdup_printf ("10.0.0.1:%u", 50000 + i);

      add_socket (&c, TCP_TIME_WAIT, local, 0, NULL);
    }
  add_socket (&c, TCP_ESTABLISHED, "10.0.0.1:50100", 100, "stm32d");
  r = report (&c);
  finding = find (r, "pc-no-ports");
  g_assert_nonnull (finding);
  g_assert_cmpstr (lookup_string (finding, "side"), ==, "pc");
  g_assert_cmpstr (lookup_string (finding, "severity"), ==, "error");
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "3 of 8 attempts"));
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "4 socket(s)"));
  g_assert_nonnull (strstr (lookup_string (finding, "fix"), "net.ipv4.tcp_tw_reuse"));
  g_assert_nonnull (strstr (lookup_string (finding, "fix"), "ip_local_port_range"));
  g_assert_nonnull (strstr (lookup_string (finding, "fix"), "fewer connections"));
  /* Nothing is blamed on the board. */
  g_assert_null (find (r, "pcb-exhaustion"));
  g_assert_null (find (r, "connect-timeout"));
  case_clear (&c);
}

/* stm32d out of fds: a PC-side finding that names the fd limit, says the
 * retries kept their backoff, and blames nothing on the board; once a later
 * attempt connected it is only a warning. */
static void
test_pc_no_fds (void)
{
  Case c;
  g_autoptr (GVariant) r = NULL, finding = NULL, later = NULL;

  case_init (&c);
  add_closes (&c, 2, STM32_CLOSE_KIND_GRACEFUL, TRUE);
  for (guint i = 0; i < 4; i++)
    add_attempt (&c, STM32_END_REASON_PC_NO_FDS, STM32_CLOSED_BY_NONE, -1);
  r = report (&c);
  finding = find (r, "pc-no-fds");
  g_assert_nonnull (finding);
  g_assert_cmpstr (lookup_string (finding, "side"), ==, "pc");
  g_assert_cmpstr (lookup_string (finding, "severity"), ==, "error");
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "4 of 6 attempts"));
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "EMFILE"));
  g_assert_nonnull (strstr (lookup_string (finding, "evidence"), "backoff"));
  g_assert_nonnull (strstr (lookup_string (finding, "fix"), "LimitNOFILE="));
  g_assert_nonnull (strstr (lookup_string (finding, "fix"), "not at fault"));
  g_assert_null (find (r, "connect-timeout"));
  g_assert_null (find (r, "refused"));
  g_assert_null (find (r, "pc-no-memory"));

  add_closes (&c, 1, STM32_CLOSE_KIND_GRACEFUL, TRUE);
  later = report (&c);
  g_clear_pointer (&finding, g_variant_unref);
  finding = find (later, "pc-no-fds");
  g_assert_nonnull (finding);
  g_assert_cmpstr (lookup_string (finding, "severity"), ==, "warning");
  case_clear (&c);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/doctor-analysis/healthy", test_healthy);
  g_test_add_func ("/doctor-analysis/idle-pattern", test_idle_pattern);
  g_test_add_func ("/doctor-analysis/idle-heartbeat-too-slow", test_idle_heartbeat_too_slow);
  g_test_add_func ("/doctor-analysis/idle-irregular", test_idle_irregular);
  g_test_add_func ("/doctor-analysis/refused-severity", test_refused_severity);
  g_test_add_func ("/doctor-analysis/timeouts", test_timeouts);
  g_test_add_func ("/doctor-analysis/competing", test_competing);
  g_test_add_func ("/doctor-analysis/competing-orphan", test_competing_orphan);
  g_test_add_func ("/doctor-analysis/late-replies", test_late_replies);
  g_test_add_func ("/doctor-analysis/learned-reset", test_learned_reset);
  g_test_add_func ("/doctor-analysis/configured-reset", test_configured_reset);
  g_test_add_func ("/doctor-analysis/pc-no-ports", test_pc_no_ports);
  g_test_add_func ("/doctor-analysis/pc-no-fds", test_pc_no_fds);
  g_test_add_func ("/doctor-analysis/dead-peer-detector", test_dead_peer_detector);
  return g_test_run ();
}
