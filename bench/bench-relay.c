/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The relay baseline: what a lab that only wants to share one board could put
 * in front of it instead of stm32d, a plain socat TCP relay on the PC. socat
 * picks its own port (TCP-LISTEN:0, no free port guessed and raced for) and
 * names it in its notice-level log, which is read here until it does and
 * drained after that. */
#include <signal.h>
#include <string.h>

#include "bench.h"

struct _BenchRelay
{
  GSubprocess *process;
  GDataInputStream *log;
  GCancellable *cancellable;
  GString *last_lines; /* what socat said, for the error when it gives no port */
  guint16 port;
  gboolean settled; /* the port is known, or socat's log ended without it */
  gboolean reading; /* a read of the log is pending */
};

/* "… N listening on AF=2 127.0.0.1:39123" */
static guint16
listening_port (const char *line)
{
  const char *at = strstr (line, " listening on AF=2 127.0.0.1:");
  guint64 port;

  if (at == NULL)
    return 0;
  at = strrchr (at, ':') + 1;
  if (!g_ascii_string_to_unsigned (at, 10, 1, G_MAXUINT16, &port, NULL))
    return 0;
  return (guint16) port;
}

static void read_next_line (BenchRelay *relay);

static void
on_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *line =
      g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL, &error);

  BenchRelay *relay = user_data;

  relay->reading = FALSE;
  if (line == NULL)
    {
      relay->settled = TRUE;
      return;
    }
  if (relay->port == 0)
    {
      relay->port = listening_port (line);
      relay->settled = relay->port != 0;
      g_string_append_printf (relay->last_lines, "%s%s", relay->last_lines->len ? "; " : "", line);
    }
  read_next_line (relay);
}

/* Read for as long as socat runs: its connections log too, and a full pipe
 * would stall it. */
static void
read_next_line (BenchRelay *relay)
{
  relay->reading = TRUE;
  g_data_input_stream_read_line_async (relay->log, G_PRIORITY_DEFAULT, relay->cancellable, on_line,
                                       relay);
}

BenchRelay *
bench_relay_start (guint16 board_port, GError **error)
{
  g_autofree char *socat = g_find_program_in_path ("socat");
  g_autofree char *target = NULL;
  g_autoptr (BenchRelay) relay = NULL;

  if (socat == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                           "socat is not installed (tools/deps.sh installs it)");
      return NULL;
    }
  /* TCP_NODELAY on both sides, as stm32d and the direct client set it:
   * the relay is measured at its best, not slowed by Nagle. */
  target = g_strdup_printf ("TCP4:127.0.0.1:%u,nodelay", board_port);
  relay = g_new0 (BenchRelay, 1);
  relay->cancellable = g_cancellable_new ();
  relay->last_lines = g_string_new (NULL);
  relay->process =
      g_subprocess_new (G_SUBPROCESS_FLAGS_STDERR_PIPE, error, socat, "-d", "-d",
                        "TCP4-LISTEN:0,bind=127.0.0.1,reuseaddr,fork,nodelay", target, NULL);
  if (relay->process == NULL)
    return NULL;
  relay->log = g_data_input_stream_new (g_subprocess_get_stderr_pipe (relay->process));
  read_next_line (relay);
  if (!bench_wait_until (&relay->settled, BENCH_WAIT_MS) || relay->port == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "socat named no port within %d ms: %s",
                   BENCH_WAIT_MS, relay->last_lines->str);
      return NULL;
    }
  return g_steal_pointer (&relay);
}

guint16
bench_relay_get_port (BenchRelay *relay)
{
  return relay->port;
}

void
bench_relay_stop (BenchRelay *relay)
{
  if (relay == NULL)
    return;
  if (relay->process != NULL)
    {
      /* The forked relays end with their connections, closed before this. */
      g_subprocess_send_signal (relay->process, SIGTERM);
      (void) g_subprocess_wait (relay->process, NULL, NULL);
    }
  /* The pending read ends at EOF now, or at the cancel: either way it is
   * over before @relay goes. */
  g_cancellable_cancel (relay->cancellable);
  while (relay->reading)
    g_main_context_iteration (NULL, TRUE);
  g_clear_object (&relay->log);
  g_clear_object (&relay->process);
  g_clear_object (&relay->cancellable);
  g_string_free (relay->last_lines, TRUE);
  g_free (relay);
}

BenchRelay *
bench_relay_start_or_skip (guint16 board_port, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  BenchRelay *relay = bench_relay_start (board_port, &local_error);

  if (relay == NULL && g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    g_printerr ("bench: %s: no relay baseline\n", local_error->message);
  else if (relay == NULL)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return relay;
}
