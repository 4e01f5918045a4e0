/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-probe.h"

#include "stm32-connect.h"
#include "stm32-deadline.h"
#include "stm32-socket-options.h"

Stm32ProbeResult *
stm32_probe_result_new (guint max, guint held_by_link)
{
  Stm32ProbeResult *result = g_new0 (Stm32ProbeResult, 1);

  result->max = max;
  result->held_by_link = held_by_link;
  return result;
}

void
stm32_probe_result_free (Stm32ProbeResult *result)
{
  if (result == NULL)
    return;
  g_free (result->error);
  g_free (result);
}

/* ---- closing one connection like the link does ------------------------------------ */

typedef enum
{
  CLOSE_ANSWERED, /* the board answered our FIN with its own */
  CLOSE_RESET,    /* it did not within CloseTimeout: we sent RST */
  CLOSE_GONE,     /* it had reset the connection already */
} CloseResult;

typedef struct
{
  GSocketConnection *connection;
  Stm32Deadline deadline;
  CloseResult result;
  guint8 buffer[512];
} CloseOp;

static void
close_op_free (CloseOp *op)
{
  stm32_deadline_stop (&op->deadline);
  g_clear_object (&op->connection);
  g_free (op);
}

static void
on_close_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  CloseOp *op = g_task_get_task_data (task);

  /* The fd is gone either way. */
  g_io_stream_close_finish (G_IO_STREAM (source), result, NULL);
  if (g_task_return_error_if_cancelled (task))
    return;
  g_task_return_int (task, op->result);
}

static void
close_op_finish (GTask *task, CloseResult result)
{
  CloseOp *op = g_task_get_task_data (task);

  stm32_deadline_stop (&op->deadline);
  op->result = result;
  if (result == CLOSE_RESET)
    stm32_socket_set_abortive_close (g_socket_connection_get_socket (op->connection), NULL);
  /* Not cancellable: a close that never ran would leak the fd and the slot. */
  g_io_stream_close_async (G_IO_STREAM (op->connection), G_PRIORITY_DEFAULT, NULL, on_close_done,
                           task);
}

static void close_op_read (GTask *task);

static void
on_close_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  g_autoptr (GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (n > 0)
    close_op_read (task);
  else if (n == 0)
    close_op_finish (task, CLOSE_ANSWERED);
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    /* Out of time, or the caller gave up: either way nobody waits for the FIN. */
    close_op_finish (task, CLOSE_RESET);
  else
    close_op_finish (task, CLOSE_GONE);
}

static void
close_op_read (GTask *task)
{
  CloseOp *op = g_task_get_task_data (task);
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (op->connection));

  g_input_stream_read_async (in, op->buffer, sizeof op->buffer, G_PRIORITY_DEFAULT,
                             op->deadline.cancellable, on_close_read, task);
}

/* FIN, then the board's EOF within @close_timeout, else RST. A cancelled
 * @cancellable resets at once; the fd is closed in every case. */
static void
probe_close_async (GSocketConnection *connection, guint close_timeout, GCancellable *cancellable,
                   GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  CloseOp *op = g_new0 (CloseOp, 1);

  op->connection = g_object_ref (connection);
  g_task_set_task_data (task, op, (GDestroyNotify) close_op_free);
  if (g_cancellable_is_cancelled (cancellable))
    {
      close_op_finish (task, CLOSE_RESET);
      return;
    }
  if (!g_socket_shutdown (g_socket_connection_get_socket (connection), FALSE, TRUE, NULL))
    {
      close_op_finish (task, CLOSE_GONE);
      return;
    }
  stm32_deadline_start (&op->deadline, cancellable, close_timeout);
  close_op_read (task);
}

static gboolean
probe_close_finish (GAsyncResult *result, CloseResult *close_result, GError **error)
{
  gssize value = g_task_propagate_int (G_TASK (result), error);

  if (value < 0)
    return FALSE;
  *close_result = (CloseResult) value;
  return TRUE;
}

/* ---- opening one connection and seeing whether the board keeps it ----------------- */

typedef enum
{
  OPEN_ACCEPTED, /* up, and still up after BusyWindow */
  OPEN_BUSY,     /* accepted, then closed or reset within BusyWindow */
  OPEN_REFUSED,
  OPEN_TIMEOUT,
  OPEN_FAILED,
} OpenOutcome;

typedef struct
{
  const Stm32LinkConfig *config;
  Stm32Deadline deadline;
  gint64 started;
  GSocketConnection *connection;
  OpenOutcome outcome;
  guint64 latency_us;
  char *error;
  guint8 buffer[64];
} OpenOp;

static void
open_op_free (OpenOp *op)
{
  stm32_deadline_stop (&op->deadline);
  g_clear_object (&op->connection);
  g_free (op->error);
  g_free (op);
}

static void
open_op_return (GTask *task, OpenOutcome outcome)
{
  OpenOp *op = g_task_get_task_data (task);

  stm32_deadline_stop (&op->deadline);
  op->outcome = outcome;
  /* A connection the board turned away is closed here; the caller gets
   * only the ones that stayed up. Cancelled: reset it, hold nothing. */
  if (op->connection != NULL &&
      (outcome != OPEN_ACCEPTED || g_cancellable_is_cancelled (g_task_get_cancellable (task))))
    {
      GSocketConnection *connection = g_steal_pointer (&op->connection);

      stm32_socket_set_abortive_close (g_socket_connection_get_socket (connection), NULL);
      g_io_stream_close_async (G_IO_STREAM (connection), G_PRIORITY_DEFAULT, NULL, NULL, NULL);
      g_object_unref (connection);
    }
  if (!g_task_return_error_if_cancelled (task))
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
on_open_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  OpenOp *op = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  /* Bytes first: a firmware that greets is keeping the connection. Silence
   * through BusyWindow is the normal case. EOF or a reset is lwIP's accept-then-abort. */
  if (n > 0 || (n < 0 && op->deadline.timed_out))
    open_op_return (task, OPEN_ACCEPTED);
  else
    open_op_return (task, OPEN_BUSY);
}

static void
on_open_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  OpenOp *op = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  gboolean timed_out = op->deadline.timed_out;
  GInputStream *in;

  op->connection = stm32_connect_finish (result, &error);
  stm32_deadline_stop (&op->deadline);
  if (op->connection == NULL)
    {
      op->error = g_strdup (error->message);
      if (timed_out)
        open_op_return (task, OPEN_TIMEOUT);
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
        open_op_return (task, OPEN_REFUSED);
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
        open_op_return (task, OPEN_BUSY); /* the abort overtook the handshake's completion */
      else
        open_op_return (task, OPEN_FAILED);
      return;
    }
  op->latency_us = (guint64) (g_get_monotonic_time () - op->started);
  stm32_deadline_start (&op->deadline, g_task_get_cancellable (task), op->config->busy_window);
  in = g_io_stream_get_input_stream (G_IO_STREAM (op->connection));
  g_input_stream_read_async (in, op->buffer, sizeof op->buffer, G_PRIORITY_DEFAULT,
                             op->deadline.cancellable, on_open_read, task);
}

static void
probe_open_async (GSocketAddress *address, const Stm32LinkConfig *config, GCancellable *cancellable,
                  GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  OpenOp *op = g_new0 (OpenOp, 1);

  op->config = config;
  op->started = g_get_monotonic_time ();
  g_task_set_task_data (task, op, (GDestroyNotify) open_op_free);
  /* No socket option bounds a connect; this deadline does. */
  stm32_deadline_start (&op->deadline, cancellable, config->connect_timeout);
  stm32_connect_async (address, op->deadline.cancellable, on_open_connected, task);
}

/* The outcome; the connection (only if accepted) is the caller's. */
static gboolean
probe_open_finish (GAsyncResult *result, OpenOutcome *outcome, guint64 *latency_us,
                   GSocketConnection **connection, char **message, GError **error)
{
  OpenOp *op = g_task_get_task_data (G_TASK (result));

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return FALSE;
  *outcome = op->outcome;
  *latency_us = op->latency_us;
  *connection = g_steal_pointer (&op->connection);
  *message = g_steal_pointer (&op->error);
  return TRUE;
}

/* ---- the probe -------------------------------------------------------------------- */

typedef enum
{
  PHASE_CYCLES, /* clean connect/close cycles */
  PHASE_COUNT,  /* extra connections, kept open, until one is turned away */
  PHASE_VERIFY, /* all closed: does a new one get in again? */
} Phase;

typedef struct
{
  GSocketAddress *address;
  Stm32LinkConfig *config;
  Stm32ProbeResult *result;
  GArray *latencies; /* guint64 µs */
  GPtrArray *held;   /* GSocketConnection kept open by the count */
  Phase phase;
  gboolean cycles_over; /* the board refused or ignored a cycle: no point in more */
  guint closing;        /* closes under way */
  guint verify_tries;
  gboolean settle; /* a close needed a RST: give the board time before the next connect */
  guint retry_timer;
  gint64 started;
} Probe;

static void
probe_free (Probe *probe)
{
  g_clear_handle_id (&probe->retry_timer, g_source_remove);
  g_clear_object (&probe->address);
  g_clear_pointer (&probe->config, stm32_link_config_free);
  g_clear_pointer (&probe->result, stm32_probe_result_free);
  g_array_unref (probe->latencies);
  g_ptr_array_unref (probe->held);
  g_free (probe);
}

static void probe_next (GTask *task);

static void
probe_note_error (Probe *probe, const char *message)
{
  if (probe->result->error == NULL && message != NULL)
    probe->result->error = g_strdup (message);
}

/* A close that ended in the caller's cancellation counts as neither. */
static void
probe_count_close (Probe *probe, GAsyncResult *close)
{
  CloseResult result;

  if (!probe_close_finish (close, &result, NULL))
    return;
  probe->result->closes_graceful += result == CLOSE_ANSWERED;
  probe->result->closes_reset += result == CLOSE_RESET;
  probe->settle |= result == CLOSE_RESET;
}

static gboolean
on_settled (gpointer user_data)
{
  GTask *task = user_data;
  Probe *probe = g_task_get_task_data (task);

  probe->retry_timer = 0;
  probe_next (task);
  return G_SOURCE_REMOVE;
}

/* The next connect, after BusyWindow if the board has a RST to process. */
static void
probe_continue (GTask *task)
{
  Probe *probe = g_task_get_task_data (task);

  if (!probe->settle)
    {
      probe_next (task);
      return;
    }
  probe->settle = FALSE;
  probe->retry_timer = g_timeout_add (MAX (probe->config->busy_window, 1), on_settled, task);
}

static int
compare_uint64 (gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;

  return x < y ? -1 : x > y;
}

static void
probe_return (GTask *task)
{
  Probe *probe = g_task_get_task_data (task);
  Stm32ProbeResult *result = probe->result;

  if (probe->latencies->len > 0)
    {
      g_array_sort (probe->latencies, compare_uint64);
      result->connect_us_min = g_array_index (probe->latencies, guint64, 0);
      result->connect_us_median =
          g_array_index (probe->latencies, guint64, probe->latencies->len / 2);
      result->connect_us_max = g_array_index (probe->latencies, guint64, probe->latencies->len - 1);
    }
  result->duration_us = (guint64) (g_get_monotonic_time () - probe->started);
  g_debug ("probe of %s:%u done in %" G_GUINT64_FORMAT " ms", probe->config->host,
           probe->config->port, result->duration_us / 1000);
  if (!g_task_return_error_if_cancelled (task))
    g_task_return_pointer (task, g_steal_pointer (&probe->result),
                           (GDestroyNotify) stm32_probe_result_free);
  g_object_unref (task);
}

/* A cycle's or the release check's connection is closed as soon as it is counted. */
static void
on_single_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Probe *probe = g_task_get_task_data (task);

  probe_count_close (probe, result);
  if (g_cancellable_is_cancelled (g_task_get_cancellable (task)) || probe->phase == PHASE_VERIFY)
    probe_return (task);
  else
    probe_continue (task);
}

/* Nothing the count opened is held any more: on to the release check. */
static void
probe_closes_done (GTask *task)
{
  Probe *probe = g_task_get_task_data (task);

  if (g_cancellable_is_cancelled (g_task_get_cancellable (task)))
    {
      probe_return (task);
      return;
    }
  probe->phase = PHASE_VERIFY;
  probe_continue (task);
}

static void
on_held_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Probe *probe = g_task_get_task_data (task);

  probe_count_close (probe, result);
  if (--probe->closing > 0)
    return;
  probe_closes_done (task);
}

/* Closes what the count holds, all at once, each the link's way. */
static void
probe_release_held (GTask *task)
{
  Probe *probe = g_task_get_task_data (task);

  if (probe->held->len == 0)
    {
      probe_closes_done (task);
      return;
    }
  probe->closing = probe->held->len;
  for (guint i = 0; i < probe->held->len; i++)
    probe_close_async (probe->held->pdata[i], probe->config->close_timeout,
                       g_task_get_cancellable (task), on_held_closed, task);
  g_ptr_array_set_size (probe->held, 0);
}

static Stm32ProbeLimit
limit_of (OpenOutcome outcome)
{
  switch (outcome)
    {
    case OPEN_BUSY:
      return STM32_PROBE_LIMIT_REJECTED;
    case OPEN_TIMEOUT:
      return STM32_PROBE_LIMIT_TIMEOUT;
    case OPEN_REFUSED:
      return STM32_PROBE_LIMIT_REFUSED;
    case OPEN_FAILED:
    case OPEN_ACCEPTED:
    default:
      return STM32_PROBE_LIMIT_FAILED;
    }
}

static void
probe_after_cycle (GTask *task, OpenOutcome outcome, GSocketConnection *connection)
{
  Probe *probe = g_task_get_task_data (task);
  Stm32ProbeResult *result = probe->result;

  result->cycles++;
  result->cycles_accepted += outcome == OPEN_ACCEPTED;
  result->cycles_busy += outcome == OPEN_BUSY;
  result->cycles_refused += outcome == OPEN_REFUSED;
  result->cycles_timeout += outcome == OPEN_TIMEOUT;
  result->cycles_failed += outcome == OPEN_FAILED;
  if (connection != NULL)
    {
      probe_close_async (connection, probe->config->close_timeout, g_task_get_cancellable (task),
                         on_single_closed, task);
      return;
    }
  /* A board that refuses or does not answer will not start holding connections now. */
  probe->cycles_over |= outcome != OPEN_BUSY;
  probe_next (task);
}

static void
probe_after_count (GTask *task, OpenOutcome outcome, GSocketConnection *connection)
{
  Probe *probe = g_task_get_task_data (task);

  if (connection != NULL)
    {
      g_ptr_array_add (probe->held, g_object_ref (connection));
      if (++probe->result->extra < probe->result->max)
        {
          probe_next (task);
          return;
        }
      probe->result->limit = STM32_PROBE_LIMIT_MAX;
    }
  else
    probe->result->limit = limit_of (outcome);
  probe_release_held (task);
}

static void
probe_after_verify (GTask *task, OpenOutcome outcome, GSocketConnection *connection)
{
  Probe *probe = g_task_get_task_data (task);

  if (connection != NULL)
    {
      probe->result->released = TRUE;
      probe_close_async (connection, probe->config->close_timeout, g_task_get_cancellable (task),
                         on_single_closed, task);
      return;
    }
  if (++probe->verify_tries < STM32_PROBE_VERIFY_TRIES)
    {
      probe->settle = TRUE;
      probe_continue (task);
      return;
    }
  probe_return (task);
}

static void
on_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Probe *probe = g_task_get_task_data (task);
  g_autofree char *message = NULL;
  /* The probe_after_*() functions borrow it; a close or the held set takes its own reference. */
  g_autoptr (GSocketConnection) connection = NULL;
  OpenOutcome outcome;
  guint64 latency;

  if (!probe_open_finish (result, &outcome, &latency, &connection, &message, NULL))
    {
      /* Cancelled: what the count holds is reset at once. */
      probe_release_held (task);
      return;
    }
  probe_note_error (probe, outcome == OPEN_FAILED ? message : NULL);
  if (probe->phase == PHASE_CYCLES && (outcome == OPEN_ACCEPTED || outcome == OPEN_BUSY))
    g_array_append_val (probe->latencies, latency);
  if (probe->phase == PHASE_CYCLES)
    probe_after_cycle (task, outcome, connection);
  else if (probe->phase == PHASE_COUNT)
    probe_after_count (task, outcome, connection);
  else
    probe_after_verify (task, outcome, connection);
}

static void
probe_next (GTask *task)
{
  Probe *probe = g_task_get_task_data (task);

  if (probe->phase == PHASE_CYCLES &&
      (probe->cycles_over || probe->result->cycles >= STM32_PROBE_CYCLES))
    {
      /* Counting needs a board that takes connections at all. */
      if (probe->result->cycles_accepted == 0)
        {
          probe_return (task);
          return;
        }
      probe->phase = PHASE_COUNT;
    }
  probe_open_async (probe->address, probe->config, g_task_get_cancellable (task), on_opened, task);
}

void
stm32_probe_async (GSocketAddress *address, const Stm32LinkConfig *config, guint max,
                   guint held_by_link, GCancellable *cancellable, GAsyncReadyCallback callback,
                   gpointer user_data)
{
  GTask *task;
  Probe *probe;

  g_return_if_fail (G_IS_SOCKET_ADDRESS (address));
  g_return_if_fail (config != NULL);
  task = g_task_new (NULL, cancellable, callback, user_data);
  probe = g_new0 (Probe, 1);
  g_task_set_source_tag (task, stm32_probe_async);
  probe->address = g_object_ref (address);
  probe->config = stm32_link_config_copy (config);
  probe->result = stm32_probe_result_new (CLAMP (max, 1, STM32_PROBE_MAX_MAX), held_by_link);
  probe->latencies = g_array_new (FALSE, FALSE, sizeof (guint64));
  probe->held = g_ptr_array_new_with_free_func (g_object_unref);
  probe->started = g_get_monotonic_time ();
  g_task_set_task_data (task, probe, (GDestroyNotify) probe_free);
  probe_next (task);
}

Stm32ProbeResult *
stm32_probe_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
