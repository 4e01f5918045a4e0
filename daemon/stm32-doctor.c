/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-doctor.h"

#include <netinet/tcp.h>

#include "stm32-defaults.h"
#include "stm32-enum-types.h"
#include "stm32-history.h"
#include "stm32-sock-census.h"

/* A board that closes within this long of a frame from us, without
 * answering it, closed because of that frame; idle timeouts are longer. */
#define REJECT_WINDOW_US (1000 * G_TIME_SPAN_MILLISECOND)
/* Quiet intervals before the board's closes count as one idle timeout when
 * they are within this fraction (or at least the floor) of their median. */
#define IDLE_TOLERANCE 0.2
#define IDLE_TOLERANCE_FLOOR_US (50 * G_TIME_SPAN_MILLISECOND)

typedef enum
{
  SEVERITY_INFO,
  SEVERITY_WARNING,
  SEVERITY_ERROR,
} Severity;

typedef struct
{
  const char *id;
  Severity severity;
  const char *side; /* "board" or "pc": where the fix is made */
  char *title;
  char *evidence;
  char *fix;
  char *workaround; /* what the other side can do meanwhile; may be NULL */
  guint interval_ms;
  GArray *pids;
} Finding;

typedef struct
{
  const Stm32DoctorInput *in;
  const Stm32LinkConfig *config;
  const Stm32HistoryEntry *last;
  guint attempts;
  guint connected;
  guint reasons[STM32_END_REASON_N_REASONS];
  guint closed_by_board;
  guint closed_by_pc;
  guint aborted;
  GPtrArray *findings;
  gboolean board_full; /* server-busy or pcb-exhaustion was found */
} Doctor;

static void
finding_free (Finding *finding)
{
  g_free (finding->title);
  g_free (finding->evidence);
  g_free (finding->fix);
  g_free (finding->workaround);
  g_clear_pointer (&finding->pids, g_array_unref);
  g_free (finding);
}

static Finding *
doctor_add (Doctor *doctor, const char *id, Severity severity, const char *side, char *title)
{
  Finding *finding = g_new0 (Finding, 1);

  finding->id = id;
  finding->severity = severity;
  finding->side = side;
  finding->title = title;
  g_ptr_array_add (doctor->findings, finding);
  return finding;
}

/* "850 ms", "2.5 s", "3 min 20 s": durations as people read them. */
static char *
format_duration (gint64 us)
{
  gint64 ms = (us + 500) / 1000;

  if (ms < 1000)
    return g_strdup_printf ("%" G_GINT64_FORMAT " ms", ms);
  if (ms < 60000)
    return g_strdup_printf ("%.1f s", ms / 1000.0);
  return g_strdup_printf ("%" G_GINT64_FORMAT " min %" G_GINT64_FORMAT " s", ms / 60000,
                          ms / 1000 % 60);
}

static char *
format_time (gint64 us)
{
  g_autoptr (GDateTime) when = g_date_time_new_from_unix_local (us / G_USEC_PER_SEC);

  return when ? g_date_time_format (when, "%H:%M:%S") : g_strdup ("?");
}

static gboolean
is_last (Doctor *doctor, Stm32EndReason reason)
{
  return doctor->last != NULL && doctor->last->reason == reason;
}

static int
compare_int64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

/* When the reason first and last ended an attempt: " (first 14:02:10, last 14:03:55)". */
static char *
reason_times (Doctor *doctor, Stm32EndReason reason)
{
  gint64 first = 0, last = 0;
  g_autofree char *first_text = NULL, *last_text = NULL;

  for (guint i = 0; i < doctor->in->history->len; i++)
    {
      const Stm32HistoryEntry *entry = doctor->in->history->pdata[i];

      if (entry->reason != reason)
        continue;
      first = first ? first : entry->closed;
      last = entry->closed;
    }
  first_text = format_time (first);
  last_text = format_time (last);
  if (first == last)
    return g_strdup_printf (" (at %s)", last_text);
  return g_strdup_printf (" (first at %s, last at %s)", first_text, last_text);
}

/* ---- the board's close and slots ------------------------------------------ */

static void
check_ignores_eof (Doctor *doctor)
{
  const Stm32ProbeResult *probe = doctor->in->probe;
  guint ours = 0, unanswered = 0, learned = 0, others = 0;
  g_autoptr (GString) evidence = g_string_new (NULL);
  Finding *finding;

  for (guint i = 0; i < doctor->in->history->len; i++)
    {
      const Stm32HistoryEntry *entry = doctor->in->history->pdata[i];

      if (entry->reason != STM32_END_REASON_LOCAL || entry->connected == 0)
        continue;
      /* A reset that did not wait for a FIN says nothing about the board. */
      if (entry->close_kind == STM32_CLOSE_KIND_LEARNED_RESET)
        learned++;
      else if (entry->close_kind != STM32_CLOSE_KIND_RESET)
        {
          ours++;
          unanswered += entry->aborted;
        }
    }
  /* Another client closed (FIN sent and acknowledged) and the board never closed back. */
  for (guint i = 0; doctor->in->census && i < doctor->in->census->len; i++)
    others += ((Stm32SockEntry *) doctor->in->census->pdata[i])->state == TCP_FIN_WAIT2;
  if (unanswered == 0 && learned == 0 && (probe == NULL || probe->closes_reset == 0))
    return;

  if (unanswered > 0)
    g_string_append_printf (evidence,
                            "%u of %u closes stm32d started got no FIN back within "
                            "CloseTimeout (%u ms) and had to end with a RST. ",
                            unanswered, ours, doctor->config->close_timeout);
  if (learned > 0)
    g_string_append_printf (evidence,
                            "Having learned that, stm32d closed %u more connection%s with a "
                            "learned reset (RST once the board acknowledged everything, no "
                            "FIN wait). ",
                            learned, learned == 1 ? "" : "s");
  if (probe != NULL && probe->closes_reset > 0)
    g_string_append_printf (evidence, "The probe: %u of %u closes needed a RST. ",
                            probe->closes_reset, probe->closes_reset + probe->closes_graceful);
  if (others > 0)
    g_string_append_printf (evidence,
                            "%u socket(s) of this PC sit in FIN_WAIT_2: closed by their "
                            "program, never closed by the board. ",
                            others);
  finding = doctor_add (doctor, "board-ignores-eof", SEVERITY_ERROR, "board",
                        g_strdup ("The board's firmware ignores the PC's close (recv() == 0)"));
  finding->evidence = g_strdup (g_strchomp (evidence->str));
  finding->fix = g_strdup (
      "Only the firmware can fix this: close the socket when recv()/netconn_recv() reports the "
      "end of the stream (0 or ERR_CLSD) — lwip_close(), or netconn_close() then "
      "netconn_delete(). stm32d's RST frees the board's TCP control block, but not its "
      "netconn/socket slot (MEMP_NUM_NETCONN): only the firmware's close() does that.");
  finding->workaround = g_strdup_printf (
      "stm32d already resets such connections: with CloseMode=auto, after %u closes without "
      "the board's FIN, as soon as the board acknowledged everything sent (a learned reset, "
      "about a round trip; re-checked now and then), else after CloseTimeout (%u ms). Keep "
      "every other client off the board (use stm32ctl or libstm32client): each one that merely "
      "closes leaves a slot taken.",
      STM32_CLOSE_LEARN_AFTER, doctor->config->close_timeout);
}

static char *
busy_timing (Doctor *doctor)
{
  g_autoptr (GArray) spans = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autofree char *median = NULL;

  for (guint i = 0; i < doctor->in->history->len; i++)
    {
      const Stm32HistoryEntry *entry = doctor->in->history->pdata[i];
      gint64 span = entry->closed - entry->connected;

      if (entry->reason == STM32_END_REASON_SERVER_BUSY && entry->connected != 0)
        g_array_append_val (spans, span);
    }
  if (spans->len == 0)
    return g_strdup ("");
  g_array_sort (spans, compare_int64);
  median = format_duration (g_array_index (spans, gint64, spans->len / 2));
  return g_strdup_printf (" Typically turned away %s after the handshake.", median);
}

static void
check_server_busy (Doctor *doctor)
{
  const Stm32ProbeResult *probe = doctor->in->probe;
  guint busy = doctor->reasons[STM32_END_REASON_SERVER_BUSY];
  g_autoptr (GString) evidence = g_string_new (NULL);
  Finding *finding;

  if (busy == 0 && (probe == NULL || probe->cycles_busy == 0))
    return;
  if (busy > 0)
    {
      g_autofree char *times = reason_times (doctor, STM32_END_REASON_SERVER_BUSY);
      g_autofree char *timing = busy_timing (doctor);

      g_string_append_printf (evidence,
                              "%u of %u attempts (%u %%) were accepted and then closed or reset "
                              "within BusyWindow (%u ms)%s.%s ",
                              busy, doctor->attempts, busy * 100 / MAX (doctor->attempts, 1),
                              doctor->config->busy_window, times, timing);
    }
  if (probe != NULL && probe->cycles_busy > 0)
    g_string_append_printf (evidence, "The probe: %u of %u connects were turned away. ",
                            probe->cycles_busy, probe->cycles);
  doctor->board_full = TRUE;
  finding = doctor_add (
      doctor, "server-busy",
      is_last (doctor, STM32_END_REASON_SERVER_BUSY) ? SEVERITY_ERROR : SEVERITY_WARNING, "board",
      g_strdup ("The board accepts connections and drops them at once: its "
                "connection table is full"));
  finding->evidence = g_strdup (g_strchomp (evidence->str));
  finding->fix = g_strdup (
      "lwIP completes the handshake and aborts when no netconn is free (MEMP_NUM_NETCONN, "
      "default 4 including the listener) or the accept backlog is full. Free the slots: make "
      "the firmware close on recv() == 0, and raise MEMP_NUM_NETCONN (with MEMP_NUM_TCP_PCB) in "
      "lwipopts.h if several clients must be connected at once.");
  finding->workaround = g_strdup_printf (
      "End other programs' direct connections to the board (see the census and "
      "competing-client). BusyBackoff (%u ms) is how long stm32d waits before trying a full "
      "board again.",
      doctor->config->busy_backoff);
}

static gboolean
board_answered (Doctor *doctor)
{
  const Stm32ProbeResult *probe = doctor->in->probe;

  return doctor->connected > 0 ||
         (probe != NULL && probe->cycles_accepted + probe->cycles_busy > 0);
}

static void
check_connect_timeouts (Doctor *doctor)
{
  const Stm32ProbeResult *probe = doctor->in->probe;
  guint timeouts = doctor->reasons[STM32_END_REASON_TIMEOUT];
  guint probed = probe ? probe->cycles_timeout : 0;
  g_autofree char *times = NULL;
  Severity severity =
      is_last (doctor, STM32_END_REASON_TIMEOUT) ? SEVERITY_ERROR : SEVERITY_WARNING;
  Finding *finding;

  if (timeouts + probed == 0)
    return;
  times = timeouts ? reason_times (doctor, STM32_END_REASON_TIMEOUT) : g_strdup ("");
  if (board_answered (doctor))
    {
      doctor->board_full = TRUE;
      finding = doctor_add (doctor, "pcb-exhaustion", severity, "board",
                            g_strdup ("Connects time out although the board answers at other "
                                      "times: its TCP control-block pool is probably exhausted"));
      finding->fix = g_strdup (
          "lwIP drops the SYN when MEMP_NUM_TCP_PCB (default 5) has no free control block and "
          "none can be reclaimed: it reclaims TIME_WAIT, LAST_ACK and CLOSING ones, never "
          "ESTABLISHED or CLOSE_WAIT, and CLOSE_WAIT lasts forever when the firmware ignores "
          "recv() == 0. Close sockets on recv() == 0 and raise MEMP_NUM_TCP_PCB in lwipopts.h.");
      finding->workaround = g_strdup (
          "End other programs' connections to the board (see competing-client): a RST from the "
          "PC frees a control block in any state.");
    }
  else
    {
      finding = doctor_add (doctor, "connect-timeout", severity, "pc",
                            g_strdup ("The board has never answered a connect"));
      finding->fix = g_strdup_printf (
          "Check Host= (%s) and Port= (%u), the cable, the board's power and the route to it "
          "(ping it). A board whose control-block pool is full drops SYNs the same way.",
          doctor->config->host, doctor->config->port);
    }
  finding->evidence = g_strdup_printf ("%u connect(s) got no answer within ConnectTimeout "
                                       "(%u ms)%s%s.",
                                       timeouts + probed, doctor->config->connect_timeout,
                                       probed ? ", the probe's included" : "", times);
}

static void
check_refused (Doctor *doctor)
{
  guint refused = doctor->reasons[STM32_END_REASON_REFUSED];
  g_autofree char *times = NULL;
  Finding *finding;

  if (refused == 0)
    return;
  times = reason_times (doctor, STM32_END_REASON_REFUSED);
  /* Once, long ago, is a board that was rebooting; now, nothing listens. */
  finding = doctor_add (doctor, "refused",
                        is_last (doctor, STM32_END_REASON_REFUSED) ? SEVERITY_ERROR : SEVERITY_INFO,
                        "board", g_strdup ("Nothing listened on the board's port"));
  finding->evidence = g_strdup_printf ("%u of %u attempts were refused (RST to our SYN)%s.",
                                       refused, doctor->attempts, times);
  finding->fix = g_strdup_printf (
      "The firmware's TCP server was not listening on port %u: still booting, crashed, or its "
      "listening netconn was closed. Check that it listens again after an error, and that "
      "Port= is right.",
      doctor->config->port);
}

static void
check_late_replies (Doctor *doctor)
{
  guint out_of_step = doctor->reasons[STM32_END_REASON_OUT_OF_STEP];
  guint64 late = 0;
  Finding *finding;

  for (guint i = 0; i < doctor->in->history->len; i++)
    late += ((Stm32HistoryEntry *) doctor->in->history->pdata[i])->late_replies;
  if (late == 0 && out_of_step == 0)
    return;
  finding = doctor_add (doctor, "late-replies", out_of_step ? SEVERITY_WARNING : SEVERITY_INFO,
                        "pc", g_strdup ("The board answered after its callers stopped waiting"));
  finding->evidence = g_strdup_printf (
      "%" G_GUINT64_FORMAT " repl%s came after the transaction's timeout; %u connection(s) "
      "ended out of step (requests that got no reply even ReplyGrace, %u ms, later).",
      late, late == 1 ? "y" : "ies", out_of_step, doctor->config->reply_grace);
  finding->fix = g_strdup (
      "Give transactions a timeout above the board's slowest answer. Each late reply holds "
      "the next request back until it comes (replies carry no request id, so that is the "
      "only way none reaches the wrong caller); if the board is sometimes slower than "
      "ReplyGrace, raise ReplyGrace too.");
  finding->workaround = g_strdup ("On the board: answer every request, and faster.");
}

static void
check_resets (Doctor *doctor)
{
  guint resets = doctor->reasons[STM32_END_REASON_RESET];
  g_autofree char *times = NULL;
  Finding *finding;

  if (resets == 0)
    return;
  times = reason_times (doctor, STM32_END_REASON_RESET);
  finding = doctor_add (doctor, "board-resets", SEVERITY_WARNING, "board",
                        g_strdup ("The board reset established connections"));
  finding->evidence =
      g_strdup_printf ("%u connection(s) ended with a RST from the board%s.", resets, times);
  finding->fix = g_strdup (
      "The firmware or its stack aborted the connection (tcp_abort(), an error path, a "
      "reboot). With its pool full, lwIP also evicts the oldest connection at TCP_PRIO_MIN "
      "(tcp_setprio() in ST's examples) whenever another client connects: if other programs "
      "connect to the board, that is the likely cause.");
}

/* ---- what the board says about traffic ------------------------------------ */

static gint64
last_activity (const Stm32HistoryEntry *entry)
{
  return MAX (entry->connected, MAX (entry->last_sent, entry->last_received));
}

/* The board hung up within REJECT_WINDOW_US of a frame from us that it never
 * answered: "board-rejects-frames" counts these, and the idle analysis leaves
 * them out, as they say nothing about an idle timeout. */
static gboolean
closed_on_our_frame (const Stm32HistoryEntry *e)
{
  if (e->closed_by != STM32_CLOSED_BY_BOARD || e->connected == 0 ||
      (e->reason != STM32_END_REASON_REMOTE_CLOSED && e->reason != STM32_END_REASON_RESET))
    return FALSE;
  /* Our frame went out, nothing came back, and the board hung up. */
  return e->last_sent != 0 && e->last_received <= e->last_sent &&
         e->closed - e->last_sent <= REJECT_WINDOW_US;
}

static void
check_rejects_frames (Doctor *doctor)
{
  guint closes = 0;
  const Stm32HistoryEntry *latest = NULL;
  Finding *finding;

  for (guint i = 0; i < doctor->in->history->len; i++)
    {
      const Stm32HistoryEntry *entry = doctor->in->history->pdata[i];

      if (!closed_on_our_frame (entry))
        continue;
      closes++;
      latest = entry;
    }
  if (closes == 0)
    return;
  finding = doctor_add (doctor, "board-rejects-frames", SEVERITY_WARNING, "pc",
                        g_strdup ("The board hangs up right after frames from the PC"));
  finding->evidence = g_strdup_printf (
      "%u time(s) the board closed the connection within 1 s of a frame from stm32d, without "
      "answering it (last: %s).",
      closes, latest->error ? latest->error : "no message");
  finding->fix = g_strdup_printf (
      "Make sure Framing= (now %s) and MaxFrame= (now %u) are what the firmware expects, and "
      "that senders send frames it understands.",
      stm32_enum_to_string (STM32_TYPE_FRAMING, doctor->config->framing),
      doctor->config->max_frame);
  finding->workaround = g_strdup (
      "In the firmware, answer a frame it cannot parse with an error reply and log it, instead "
      "of closing the connection.");
}

/* Quiet intervals before the board's own closes, sorted. */
static GArray *
board_close_quiets (Doctor *doctor)
{
  GArray *quiets = g_array_new (FALSE, FALSE, sizeof (gint64));

  for (guint i = 0; i < doctor->in->history->len; i++)
    {
      const Stm32HistoryEntry *entry = doctor->in->history->pdata[i];
      gint64 quiet = entry->closed - last_activity (entry);

      if (entry->reason == STM32_END_REASON_REMOTE_CLOSED && entry->connected != 0 &&
          !closed_on_our_frame (entry))
        g_array_append_val (quiets, quiet);
    }
  g_array_sort (quiets, compare_int64);
  return quiets;
}

/* A heartbeat interval comfortably under @idle_ms, rounded to look deliberate. */
static guint
suggest_interval (guint idle_ms)
{
  guint half = MAX (idle_ms / 2, 1);
  guint step = half >= 10000 ? 1000 : half >= 1000 ? 100 : half >= 100 ? 10 : 1;

  return MAX (half / step * step, 1);
}

static char *
idle_fix (Doctor *doctor, guint idle_ms)
{
  guint interval = suggest_interval (idle_ms);
  const Stm32LinkConfig *config = doctor->config;

  if (config->heartbeat == NULL)
    return g_strdup_printf (
        "Set Heartbeat= to a frame the firmware answers (a ping) with HeartbeatInterval=%u, "
        "shorter than the board's idle timeout of about %u ms, so the link never goes quiet "
        "that long.",
        interval, idle_ms);
  if (config->heartbeat_interval >= idle_ms)
    return g_strdup_printf ("HeartbeatInterval=%u is longer than the board's idle timeout of "
                            "about %u ms: set HeartbeatInterval=%u.",
                            config->heartbeat_interval, idle_ms, interval);
  return g_strdup_printf (
      "The heartbeat (every %u ms) does not keep the board from closing after about %u ms: "
      "make the firmware count it as traffic, or shorten HeartbeatInterval to %u.",
      config->heartbeat_interval, idle_ms, interval);
}

static void
check_idle_timeout (Doctor *doctor)
{
  g_autoptr (GArray) quiets = board_close_quiets (doctor);
  gint64 median, tolerance;
  guint matching = 0;
  g_autofree char *median_text = NULL, *shortest = NULL, *longest = NULL;
  Finding *finding;

  if (quiets->len < 2)
    return;
  median = g_array_index (quiets, gint64, quiets->len / 2);
  tolerance = MAX ((gint64) (median * IDLE_TOLERANCE), IDLE_TOLERANCE_FLOOR_US);
  for (guint i = 0; i < quiets->len; i++)
    matching += ABS (g_array_index (quiets, gint64, i) - median) <= tolerance;
  /* A timer closes at the same quiet interval every time; a firmware that
   * closes for other reasons does not. */
  if (matching < 2 || matching * 2 < quiets->len)
    return;
  median_text = format_duration (median);
  shortest = format_duration (g_array_index (quiets, gint64, 0));
  longest = format_duration (g_array_index (quiets, gint64, quiets->len - 1));
  finding = doctor_add (
      doctor, "board-idle-timeout", SEVERITY_WARNING, "pc",
      g_strdup_printf ("The board closes connections after %s without traffic", median_text));
  finding->interval_ms = (guint) ((median + 500) / 1000);
  finding->evidence = g_strdup_printf (
      "%u of the board's %u closes came after %s of silence (from %s to %s); the PC never sent "
      "anything in between.",
      matching, quiets->len, median_text, shortest, longest);
  finding->fix = idle_fix (doctor, finding->interval_ms);
  finding->workaround = g_strdup ("Or raise or turn off the firmware's idle timeout (a receive "
                                  "timeout, SO_RCVTIMEO, or a timer that closes quiet "
                                  "connections).");
}

/* What each detector of a dead peer says about the board. The heartbeat and
 * the idle watchdog fire while the kernel still gets ACKs: the stack lives
 * and the firmware above it does not. Keepalive and TCP_USER_TIMEOUT give up
 * only when nothing on the board answers at all. */
static const struct
{
  gboolean stack_alive;
  const char *how;
} detectors[] = {
  [STM32_DETECTOR_NONE] = { FALSE, "the socket's own error" },
  [STM32_DETECTOR_CONNECT_TIMEOUT] = { FALSE, "no answer to a connect within ConnectTimeout" },
  [STM32_DETECTOR_KEEPALIVE] = { FALSE, "the PC's TCP got no ACK (keepalive or UserTimeout)" },
  [STM32_DETECTOR_IDLE_TIMEOUT] = { TRUE, "no data within IdleTimeout while TCP still ACKed" },
  [STM32_DETECTOR_HEARTBEAT] = { TRUE, "no heartbeat reply within HeartbeatTimeout while TCP "
                                       "still ACKed" },
  [STM32_DETECTOR_REPLY_GRACE] = { TRUE, "no reply even ReplyGrace after a transaction's "
                                         "timeout" },
};
G_STATIC_ASSERT (G_N_ELEMENTS (detectors) == STM32_DETECTOR_N);

static gboolean
detector_sees_stack_alive (Stm32Detector detector)
{
  return detector < STM32_DETECTOR_N && detectors[detector].stack_alive;
}

static const char *
detector_how (Stm32Detector detector)
{
  return detector < STM32_DETECTOR_N ? detectors[detector].how : "?";
}

static void
check_dead_peer (Doctor *doctor)
{
  guint dead = doctor->reasons[STM32_END_REASON_DEAD_PEER];
  const Stm32HistoryEntry *latest = NULL;
  g_autofree char *times = NULL;
  gboolean hung;
  Finding *finding;

  if (dead == 0)
    return;
  for (guint i = 0; i < doctor->in->history->len; i++)
    if (((Stm32HistoryEntry *) doctor->in->history->pdata[i])->reason == STM32_END_REASON_DEAD_PEER)
      latest = doctor->in->history->pdata[i];
  hung = detector_sees_stack_alive (latest->detector);
  times = reason_times (doctor, STM32_END_REASON_DEAD_PEER);
  finding = doctor_add (
      doctor, "dead-peer",
      is_last (doctor, STM32_END_REASON_DEAD_PEER) ? SEVERITY_ERROR : SEVERITY_WARNING, "board",
      g_strdup (hung ? "The board's firmware stopped answering while its TCP "
                       "stack kept the connection up"
                     : "The board stopped answering altogether"));
  finding->evidence = g_strdup_printf (
      "%u connection(s) were declared dead%s; the last one detected by %s (%s): %s.", dead, times,
      stm32_enum_to_string (STM32_TYPE_DETECTOR, latest->detector), detector_how (latest->detector),
      latest->error ? latest->error : "no message");
  finding->fix = g_strdup (
      hung ? "The firmware hung (a blocked task, a full queue, a deadlock) while lwIP still "
             "acknowledged: find what blocks the TCP task and give the firmware a watchdog "
             "(IWDG) that resets it."
           : "Check the board's power, cable and switch; a board that reboots loses every "
             "connection without a word.");
}

static void
check_bad_frames (Doctor *doctor)
{
  guint bad = doctor->reasons[STM32_END_REASON_PROTOCOL_ERROR];
  Finding *finding;

  if (bad == 0)
    return;
  finding = doctor_add (doctor, "board-sends-bad-frames", SEVERITY_WARNING, "pc",
                        g_strdup ("The board sent data that breaks the link's framing"));
  finding->evidence = g_strdup_printf ("%u connection(s) were reset by stm32d because of a bad "
                                       "frame from the board.",
                                       bad);
  finding->fix = g_strdup_printf (
      "Check that Framing= (now %s) and MaxFrame= (now %u) match what the firmware sends.",
      stm32_enum_to_string (STM32_TYPE_FRAMING, doctor->config->framing),
      doctor->config->max_frame);
}

/* ---- other programs ----------------------------------------------------------- */

static gboolean
census_is_ours (Doctor *doctor, const Stm32SockEntry *entry)
{
  if (entry->pid != 0)
    return entry->pid == doctor->in->self_pid;
  /* No owner to ask (TIME_WAIT, a socket being closed): ours if one of the
   * link's connections used that local address. */
  if (g_strcmp0 (entry->local_address, doctor->in->link_local_address) == 0)
    return TRUE;
  for (guint i = 0; i < doctor->in->history->len; i++)
    if (g_strcmp0 (entry->local_address,
                   ((Stm32HistoryEntry *) doctor->in->history->pdata[i])->local_address) == 0)
      return TRUE;
  return FALSE;
}

/* A socket of another program that holds something on the board. TIME_WAIT
 * does not: that program closed first, and the wait is on the PC. */
static gboolean
census_is_competing (Doctor *doctor, const Stm32SockEntry *entry)
{
  return entry->state != TCP_TIME_WAIT && !census_is_ours (doctor, entry);
}

static void
describe_competitor (GString *evidence, const Stm32SockEntry *entry)
{
  if (entry->pid != 0)
    g_string_append_printf (evidence, "pid %d (%s, uid %u)", entry->pid,
                            entry->command ? entry->command : "?", entry->uid);
  else if (entry->inode == 0)
    /* An orphan: its program closed it, the kernel is still ending it (and
     * the board's slot with it, unless the firmware ignores the FIN). */
    g_string_append (evidence, "a socket its program has closed, still being ended by the kernel");
  else
    g_string_append_printf (evidence, "a process of uid %u that stm32d may not inspect",
                            entry->uid);
  g_string_append_printf (evidence, ": %s %s → %s; ", stm32_sock_state_name (entry->state),
                          entry->local_address, entry->remote_address);
}

static void
check_competing (Doctor *doctor)
{
  g_autoptr (GString) evidence = g_string_new (NULL);
  g_autoptr (GString) who = g_string_new (NULL);
  g_autoptr (GArray) pids = g_array_new (FALSE, FALSE, sizeof (int));
  guint count = 0, hidden = 0, close_wait = 0;
  Finding *finding;

  for (guint i = 0; doctor->in->census && i < doctor->in->census->len; i++)
    {
      const Stm32SockEntry *entry = doctor->in->census->pdata[i];
      gboolean seen = FALSE;

      if (!census_is_competing (doctor, entry))
        continue;
      count++;
      hidden += entry->pid == 0 && entry->inode != 0;
      close_wait += entry->state == TCP_CLOSE_WAIT;
      describe_competitor (evidence, entry);
      for (guint j = 0; j < pids->len; j++)
        seen |= g_array_index (pids, int, j) == entry->pid;
      if (entry->pid != 0 && !seen)
        {
          g_array_append_val (pids, entry->pid);
          g_string_append_printf (who, "%spid %d (%s)", who->len ? ", " : "", entry->pid,
                                  entry->command ? entry->command : "?");
        }
    }
  if (count == 0)
    return;
  g_string_prepend (evidence, count == 1 ? "Another program holds a connection to the board: "
                                         : "Other programs hold connections to the board: ");
  g_string_truncate (evidence, evidence->len - 2);
  g_string_append_c (evidence, '.');
  if (close_wait > 0)
    g_string_append_printf (evidence,
                            " %u in CLOSE_WAIT: the board closed and the program never closed its "
                            "socket (QTcpSocket without close()/deleteLater() does that).",
                            close_wait);
  finding = doctor_add (doctor, "competing-client",
                        doctor->board_full ? SEVERITY_ERROR : SEVERITY_WARNING, "pc",
                        g_strdup_printf ("%u connection(s) to the board bypass stm32d", count));
  finding->evidence = g_string_free (g_steal_pointer (&evidence), FALSE);
  finding->fix = g_strdup_printf (
      "Stop %s, or make it reach the board through stm32d (stm32ctl, libstm32client, or "
      "Link1.AcquireStream for raw bytes) instead of its own socket: each direct connection "
      "takes one of the board's few slots, and one closed carelessly keeps it.%s",
      who->len ? who->str : "those programs",
      hidden ? " stm32ctl doctor, run as root, names the programs stm32d may not see (so does "
               "“sudo ss -tnp dst BOARD”)."
             : "");
  finding->pids = g_steal_pointer (&pids);
}

/* ---- the probe ------------------------------------------------------------------- */

static void
check_probe (Doctor *doctor)
{
  const Stm32ProbeResult *probe = doctor->in->probe;
  Finding *finding;

  if (probe == NULL || probe->limit == STM32_PROBE_LIMIT_NONE)
    return;
  if (!probe->released)
    {
      finding = doctor_add (doctor, "probe-not-released", SEVERITY_WARNING, "board",
                            g_strdup ("The board did not take connections again after the "
                                      "probe closed its own"));
      finding->evidence = g_strdup_printf (
          "The probe opened %u extra connection(s) and closed them (%u with a RST); a new "
          "connection was still turned away afterwards.",
          probe->extra, probe->closes_reset);
      finding->fix = g_strdup (
          "Only the firmware can fix this: it keeps a netconn/socket slot until it calls "
          "close() itself, whatever the PC sends. Close on recv() == 0 and on every error.");
    }
  if (probe->extra == 0 && probe->limit != STM32_PROBE_LIMIT_MAX)
    {
      finding = doctor_add (doctor, "no-spare-slots", SEVERITY_INFO, "board",
                            g_strdup ("The board has no room for a connection besides the "
                                      "link's"));
      finding->evidence = g_strdup_printf (
          "The first extra connection was turned away (%s) "
          "while the link held %u.",
          stm32_enum_to_string (STM32_TYPE_PROBE_LIMIT, probe->limit), probe->held_by_link);
      finding->fix = g_strdup ("Any other client (a GUI, a script) will be turned away: share "
                               "the board through stm32d, or raise MEMP_NUM_NETCONN and "
                               "MEMP_NUM_TCP_PCB in lwipopts.h.");
    }
}

/* ---- the report ------------------------------------------------------------------- */

static void
doctor_count (Doctor *doctor)
{
  GPtrArray *history = doctor->in->history;

  doctor->attempts = history->len;
  doctor->last = history->len ? history->pdata[history->len - 1] : NULL;
  for (guint i = 0; i < history->len; i++)
    {
      const Stm32HistoryEntry *entry = history->pdata[i];

      doctor->connected += entry->connected != 0;
      doctor->aborted += entry->aborted;
      doctor->closed_by_board += entry->closed_by == STM32_CLOSED_BY_BOARD;
      doctor->closed_by_pc += entry->closed_by == STM32_CLOSED_BY_PC;
      if (entry->reason < G_N_ELEMENTS (doctor->reasons))
        doctor->reasons[entry->reason]++;
    }
}

static const char *
severity_name (Severity severity)
{
  return severity == SEVERITY_ERROR ? "error" : severity == SEVERITY_WARNING ? "warning" : "info";
}

static GVariant *
finding_to_variant (const Finding *finding)
{
  GVariantDict dict;

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "id", "s", finding->id);
  g_variant_dict_insert (&dict, "severity", "s", severity_name (finding->severity));
  g_variant_dict_insert (&dict, "side", "s", finding->side);
  g_variant_dict_insert (&dict, "title", "s", finding->title);
  g_variant_dict_insert (&dict, "evidence", "s", finding->evidence);
  g_variant_dict_insert (&dict, "fix", "s", finding->fix);
  if (finding->workaround != NULL)
    g_variant_dict_insert (&dict, "workaround", "s", finding->workaround);
  if (finding->interval_ms != 0)
    g_variant_dict_insert (&dict, "interval-ms", "u", finding->interval_ms);
  if (finding->pids != NULL && finding->pids->len > 0)
    g_variant_dict_insert_value (&dict, "pids",
                                 g_variant_new_fixed_array (G_VARIANT_TYPE_INT32,
                                                            finding->pids->data, finding->pids->len,
                                                            sizeof (int)));
  return g_variant_dict_end (&dict);
}

static GVariant *
census_entry_to_variant (Doctor *doctor, const Stm32SockEntry *entry)
{
  GVariantDict dict;

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "state", "s", stm32_sock_state_name (entry->state));
  g_variant_dict_insert (&dict, "local", "s", entry->local_address);
  g_variant_dict_insert (&dict, "remote", "s", entry->remote_address);
  g_variant_dict_insert (&dict, "uid", "u", entry->uid);
  g_variant_dict_insert (&dict, "inode", "t", entry->inode);
  g_variant_dict_insert (&dict, "ours", "b", census_is_ours (doctor, entry));
  if (entry->pid != 0)
    g_variant_dict_insert (&dict, "pid", "i", entry->pid);
  if (entry->command != NULL)
    g_variant_dict_insert (&dict, "command", "s", entry->command);
  return g_variant_dict_end (&dict);
}

static GVariant *
summary_to_variant (Doctor *doctor)
{
  GVariantDict dict;
  GVariantBuilder reasons;

  g_variant_builder_init (&reasons, G_VARIANT_TYPE ("a{su}"));
  for (guint i = 0; i < G_N_ELEMENTS (doctor->reasons); i++)
    if (doctor->reasons[i] > 0)
      g_variant_builder_add (&reasons, "{su}", stm32_enum_to_string (STM32_TYPE_END_REASON, i),
                             doctor->reasons[i]);
  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "attempts", "u", doctor->attempts);
  g_variant_dict_insert (&dict, "connected", "u", doctor->connected);
  g_variant_dict_insert (&dict, "aborted", "u", doctor->aborted);
  g_variant_dict_insert (&dict, "closed-by-board", "u", doctor->closed_by_board);
  g_variant_dict_insert (&dict, "closed-by-pc", "u", doctor->closed_by_pc);
  g_variant_dict_insert_value (&dict, "reasons", g_variant_builder_end (&reasons));
  if (doctor->attempts > 0)
    {
      g_variant_dict_insert (&dict, "first-started", "x",
                             ((Stm32HistoryEntry *) doctor->in->history->pdata[0])->started);
      g_variant_dict_insert (&dict, "last-closed", "x", doctor->last->closed);
    }
  return g_variant_dict_end (&dict);
}

/* Other programs' established connections hold board slots during the probe too. */
static guint
held_by_others (Doctor *doctor)
{
  guint held = 0;

  for (guint i = 0; doctor->in->census && i < doctor->in->census->len; i++)
    {
      const Stm32SockEntry *entry = doctor->in->census->pdata[i];

      held += entry->state == TCP_ESTABLISHED && census_is_competing (doctor, entry);
    }
  return held;
}

static GVariant *
probe_to_variant (Doctor *doctor, const Stm32ProbeResult *probe)
{
  guint others = held_by_others (doctor);
  GVariantDict dict;

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "cycles", "u", probe->cycles);
  g_variant_dict_insert (&dict, "cycles-accepted", "u", probe->cycles_accepted);
  g_variant_dict_insert (&dict, "cycles-busy", "u", probe->cycles_busy);
  g_variant_dict_insert (&dict, "cycles-refused", "u", probe->cycles_refused);
  g_variant_dict_insert (&dict, "cycles-timeout", "u", probe->cycles_timeout);
  g_variant_dict_insert (&dict, "cycles-failed", "u", probe->cycles_failed);
  g_variant_dict_insert (&dict, "connect-us-min", "t", probe->connect_us_min);
  g_variant_dict_insert (&dict, "connect-us-median", "t", probe->connect_us_median);
  g_variant_dict_insert (&dict, "connect-us-max", "t", probe->connect_us_max);
  g_variant_dict_insert (&dict, "closes-graceful", "u", probe->closes_graceful);
  g_variant_dict_insert (&dict, "closes-reset", "u", probe->closes_reset);
  g_variant_dict_insert (&dict, "held-by-link", "u", probe->held_by_link);
  g_variant_dict_insert (&dict, "held-by-others", "u", others);
  g_variant_dict_insert (&dict, "extra", "u", probe->extra);
  g_variant_dict_insert (&dict, "capacity", "u", probe->held_by_link + others + probe->extra);
  g_variant_dict_insert (&dict, "capacity-exact", "b", probe->limit != STM32_PROBE_LIMIT_MAX);
  g_variant_dict_insert (&dict, "limit", "s",
                         stm32_enum_to_string (STM32_TYPE_PROBE_LIMIT, probe->limit));
  g_variant_dict_insert (&dict, "max", "u", probe->max);
  g_variant_dict_insert (&dict, "released", "b", probe->released);
  g_variant_dict_insert (&dict, "duration-ms", "u", (guint32) (probe->duration_us / 1000));
  if (probe->error != NULL)
    g_variant_dict_insert (&dict, "error", "s", probe->error);
  return g_variant_dict_end (&dict);
}

static int
compare_severity (gconstpointer a, gconstpointer b)
{
  const Finding *x = *(Finding *const *) a, *y = *(Finding *const *) b;

  return (int) y->severity - (int) x->severity;
}

static GVariant *
doctor_to_variant (Doctor *doctor)
{
  GVariantDict dict;
  GVariantBuilder findings, census;
  gboolean healthy = TRUE;

  g_ptr_array_sort (doctor->findings, compare_severity);
  g_variant_builder_init (&findings, G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; i < doctor->findings->len; i++)
    {
      const Finding *finding = doctor->findings->pdata[i];

      healthy &= finding->severity == SEVERITY_INFO;
      g_variant_builder_add_value (&findings, finding_to_variant (finding));
    }
  g_variant_builder_init (&census, G_VARIANT_TYPE ("aa{sv}"));
  for (guint i = 0; doctor->in->census && i < doctor->in->census->len; i++)
    g_variant_builder_add_value (&census,
                                 census_entry_to_variant (doctor, doctor->in->census->pdata[i]));

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "healthy", "b", healthy);
  g_variant_dict_insert_value (&dict, "endpoint",
                               g_variant_new_take_string (g_strdup_printf (
                                   "%s:%u", doctor->config->host, doctor->config->port)));
  g_variant_dict_insert_value (&dict, "findings", g_variant_builder_end (&findings));
  g_variant_dict_insert_value (&dict, "census", g_variant_builder_end (&census));
  if (doctor->in->census == NULL)
    g_variant_dict_insert (&dict, "census-error", "s",
                           doctor->in->census_error ? doctor->in->census_error : "unknown");
  g_variant_dict_insert_value (&dict, "history-summary", summary_to_variant (doctor));
  if (doctor->in->probe != NULL)
    g_variant_dict_insert_value (&dict, "probe", probe_to_variant (doctor, doctor->in->probe));
  return g_variant_ref_sink (g_variant_dict_end (&dict));
}

/* ---- the PC's side ------------------------------------------------------------ */

/* The PC closes first, so every connection it closed gracefully keeps its
 * local port in TIME_WAIT for 60 s: fast connect cycles use up the range. */
static void
check_pc_no_ports (Doctor *doctor)
{
  guint failures = doctor->reasons[STM32_END_REASON_PC_NO_PORTS];
  guint time_wait = 0;
  g_autofree char *times = NULL;
  g_autofree char *sockets = NULL;
  Finding *finding;

  if (failures == 0)
    return;
  for (guint i = 0; doctor->in->census && i < doctor->in->census->len; i++)
    time_wait += ((Stm32SockEntry *) doctor->in->census->pdata[i])->state == TCP_TIME_WAIT;
  times = reason_times (doctor, STM32_END_REASON_PC_NO_PORTS);
  sockets = doctor->in->census
                ? g_strdup_printf ("%u socket(s) of this PC towards the board are in TIME_WAIT "
                                   "now.",
                                   time_wait)
                : g_strdup ("The PC's sockets could not be counted.");
  finding = doctor_add (doctor, "pc-no-ports",
                        is_last (doctor, STM32_END_REASON_PC_NO_PORTS) ? SEVERITY_ERROR
                                                                       : SEVERITY_WARNING,
                        "pc", g_strdup ("This PC ran out of local ports to connect from"));
  finding->evidence =
      g_strdup_printf ("%u of %u attempts failed on the PC before a SYN went out: no free "
                       "local port (EADDRNOTAVAIL)%s. %s",
                       failures, doctor->attempts, times, sockets);
  finding->fix = g_strdup (
      "The board is not at fault. The PC closes first, so each connection it closed gracefully "
      "keeps its local port in TIME_WAIT for 60 s; a few hundred connect cycles a second use up "
      "net.ipv4.ip_local_port_range (about 28,000 ports by default). Make fewer connections: "
      "keep the link up (Autoconnect=true) and send over it instead of connecting per request. "
      "Or let new connections reuse ports in TIME_WAIT (sysctl net.ipv4.tcp_tw_reuse=1), or "
      "widen the range (sysctl net.ipv4.ip_local_port_range=\"10000 65535\").");
  finding->workaround = g_strdup (
      "A close that ends with a RST leaves no TIME_WAIT: CloseMode=reset does that for every "
      "close (after the board acknowledged everything sent), CloseMode=auto for a board that "
      "ignores EOF.");
}

/* stm32d itself out of fds, or the kernel out of socket memory: the board
 * never saw a SYN, so nothing about it may be concluded from these. */
static void
check_pc_shortage (Doctor *doctor, Stm32EndReason reason)
{
  gboolean fds = reason == STM32_END_REASON_PC_NO_FDS;
  guint failures = doctor->reasons[reason];
  g_autofree char *times = NULL;
  Finding *finding;

  if (failures == 0)
    return;
  times = reason_times (doctor, reason);
  finding = doctor_add (doctor, fds ? "pc-no-fds" : "pc-no-memory",
                        is_last (doctor, reason) ? SEVERITY_ERROR : SEVERITY_WARNING, "pc",
                        g_strdup (fds ? "stm32d ran out of file descriptors"
                                      : "This PC's kernel ran out of memory for sockets"));
  finding->evidence = g_strdup_printf (
      "%u of %u attempts failed on the PC before a SYN went out: %s%s. Each was retried "
      "after the link's backoff.",
      failures, doctor->attempts,
      fds ? "no file descriptor left (EMFILE or ENFILE)" : "no kernel memory (ENOMEM or ENOBUFS)",
      times);
  finding->fix = g_strdup (
      fds ? "The board is not at fault. Each link holds one fd (two more while a client holds its "
            "stream or transaction channel), and stm32d raises its soft fd limit to the hard "
            "limit at start: raise LimitNOFILE= of stm32d.service (the unit ships 16384), or "
            "fs.file-max if the whole PC is out (ENFILE); /proc/PID/fd of stm32d shows what "
            "holds them."
          : "The board is not at fault. Free memory on the PC, or look for a process whose "
            "sockets hold much of it (ss -tm).");
}

GVariant *
stm32_doctor_report (const Stm32DoctorInput *input)
{
  g_autoptr (GPtrArray) findings = g_ptr_array_new_with_free_func ((GDestroyNotify) finding_free);
  Doctor doctor = { .in = input, .config = input->config, .findings = findings };

  g_return_val_if_fail (input->config != NULL && input->history != NULL, NULL);

  doctor_count (&doctor);
  check_ignores_eof (&doctor);
  check_server_busy (&doctor);
  check_connect_timeouts (&doctor);
  check_refused (&doctor);
  check_pc_no_ports (&doctor);
  check_pc_shortage (&doctor, STM32_END_REASON_PC_NO_FDS);
  check_pc_shortage (&doctor, STM32_END_REASON_PC_NO_MEMORY);
  check_resets (&doctor);
  check_late_replies (&doctor);
  check_rejects_frames (&doctor);
  check_idle_timeout (&doctor);
  check_dead_peer (&doctor);
  check_bad_frames (&doctor);
  /* After the checks that tell whether the board is full. */
  check_competing (&doctor);
  check_probe (&doctor);
  return doctor_to_variant (&doctor);
}
