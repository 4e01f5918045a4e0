/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sim-harness.h"

#include <sched.h>

#include "test-util.h"

/* Bounds against a hung simulator, not a measure of speed: on two cores
 * shared with sanitized builds an answer can take seconds. */
#define SIM_START_TIMEOUT_MS 30000
#define SIM_REQUEST_TIMEOUT_MS 30000
#define SIM_STOP_TIMEOUT_MS 30000

struct _Stm32Sim
{
  GSubprocess *process;
  GOutputStream *stdin_pipe;
  GDataInputStream *events_in;
  /* Event name → GQueue of PendingEvent not yet consumed, in arrival order:
   * thousands of boards leave thousands of events no one waits for, and a
   * wait must not walk them all on every line read. */
  GHashTable *pending;
  guint64 read_count; /* events read so far: orders the pending ones across names */
  GHashTable *counts;     /* event name → GUINT_TO_POINTER (count) */
  GHashTable *last_times; /* event name → gint64 *, when the latest one was read */
  gboolean reading;       /* a read is in flight */
  gboolean stdout_closed; /* the simulator closed stdout: it exited */
  gboolean exited;
  guint16 port;
};

typedef struct
{
  guint64 seq;
  JsonObject *object;
} PendingEvent;

static void read_next_event (Stm32Sim *sim);

static void
pending_queue_free (gpointer data)
{
  GQueue *queue = data;
  PendingEvent *event;

  while ((event = g_queue_pop_head (queue)) != NULL)
    {
      json_object_unref (event->object);
      g_free (event);
    }
  g_queue_free (queue);
}

static void
queue_event (Stm32Sim *sim, const char *line)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonNode *root;
  const char *name;
  gint64 *read_at;
  GQueue *pending;
  PendingEvent *event;

  if (!json_parser_load_from_data (parser, line, -1, &error))
    g_error ("stm32-sim wrote a line that is not JSON: %s: %s", error->message, line);
  root = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (root))
    g_error ("stm32-sim wrote a line that is not an object: %s", line);
  name = json_object_get_string_member_with_default (json_node_get_object (root), "event", NULL);
  if (name == NULL)
    g_error ("stm32-sim wrote an object without \"event\": %s", line);
  /* Outside a test (the bench), g_test_message would print to stdout. */
  if (g_test_initialized ())
    g_test_message ("sim: %s", line);
  g_hash_table_insert (
      sim->counts, g_strdup (name),
      GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (sim->counts, name)) + 1));
  read_at = g_new (gint64, 1);
  *read_at = g_get_monotonic_time ();
  g_hash_table_insert (sim->last_times, g_strdup (name), read_at);
  pending = g_hash_table_lookup (sim->pending, name);
  if (pending == NULL)
    {
      pending = g_queue_new ();
      g_hash_table_insert (sim->pending, g_strdup (name), pending);
    }
  event = g_new (PendingEvent, 1);
  event->seq = sim->read_count++;
  event->object = json_object_ref (json_node_get_object (root));
  g_queue_push_tail (pending, event);
}

static void
on_event_line (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Stm32Sim *sim = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *line =
      g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL, &error);

  sim->reading = FALSE;
  if (line == NULL)
    {
      if (error != NULL)
        g_error ("reading stm32-sim's events: %s", error->message);
      sim->stdout_closed = TRUE;
      return;
    }
  queue_event (sim, line);
  read_next_event (sim);
}

static void
read_next_event (Stm32Sim *sim)
{
  sim->reading = TRUE;
  g_data_input_stream_read_line_async (sim->events_in, G_PRIORITY_DEFAULT, NULL, on_event_line,
                                       sim);
}

static gboolean
has_port_option (GPtrArray *argv)
{
  for (guint i = 0; i < argv->len; i++)
    if (g_str_equal (argv->pdata[i], "--port") || g_str_has_prefix (argv->pdata[i], "--port="))
      return TRUE;
  return FALSE;
}

/* @options: the simulator's options, NULL-terminated (NULL for none). */
static Stm32Sim *
sim_start_options (const char *netns, const char *const *options)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);

  if (netns != NULL)
    {
      /* `ip netns exec` execs the simulator, so its exit status is the simulator's. */
      g_ptr_array_add (argv, g_strdup ("ip"));
      g_ptr_array_add (argv, g_strdup ("netns"));
      g_ptr_array_add (argv, g_strdup ("exec"));
      g_ptr_array_add (argv, g_strdup (netns));
    }
  g_ptr_array_add (argv, stm32_test_build_path ("tests/sim/stm32-sim"));
  for (gsize i = 0; options != NULL && options[i] != NULL; i++)
    g_ptr_array_add (argv, g_strdup (options[i]));
  if (!has_port_option (argv))
    {
      g_ptr_array_add (argv, g_strdup ("--port"));
      g_ptr_array_add (argv, g_strdup ("0"));
    }
  g_ptr_array_add (argv, NULL);
  return stm32_sim_spawn ((const char *const *) argv->pdata);
}

static Stm32Sim *
sim_start_va (const char *netns, const char *first_arg, va_list args)
{
  g_autoptr (GPtrArray) options = g_ptr_array_new ();

  for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (options, (gpointer) arg);
  g_ptr_array_add (options, NULL);
  return sim_start_options (netns, (const char *const *) options->pdata);
}

/* In the child, before exec. */
static void
pin_to_cpu (gpointer cpu)
{
  cpu_set_t set;

  CPU_ZERO (&set);
  CPU_SET (GPOINTER_TO_INT (cpu), &set);
  (void) sched_setaffinity (0, sizeof set, &set);
}

Stm32Sim *
stm32_sim_spawn (const char *const *argv)
{
  return stm32_sim_spawn_on_cpu (argv, -1);
}

Stm32Sim *
stm32_sim_spawn_on_cpu (const char *const *argv, int cpu)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) listening = NULL;
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  Stm32Sim *sim = g_new0 (Stm32Sim, 1);

  if (cpu >= 0)
    g_subprocess_launcher_set_child_setup (launcher, pin_to_cpu, GINT_TO_POINTER (cpu), NULL);
  /* stderr is inherited: the simulator's diagnostics land in the test log. */
  sim->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  sim->stdin_pipe = g_object_ref (g_subprocess_get_stdin_pipe (sim->process));
  sim->events_in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (sim->process));
  sim->counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  sim->last_times = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  sim->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, pending_queue_free);
  read_next_event (sim);
  listening = stm32_sim_wait_event (sim, "listening", SIM_START_TIMEOUT_MS);
  sim->port = (guint16) json_object_get_int_member (listening, "port");
  g_assert_cmpuint (sim->port, >, 0);
  return sim;
}

Stm32Sim *
stm32_sim_start (const char *first_arg, ...)
{
  Stm32Sim *sim;
  va_list args;

  va_start (args, first_arg);
  sim = sim_start_va (NULL, first_arg, args);
  va_end (args);
  return sim;
}

Stm32Sim *
stm32_sim_start_in_netns (const char *netns, const char *first_arg, ...)
{
  Stm32Sim *sim;
  va_list args;

  va_start (args, first_arg);
  sim = sim_start_va (netns, first_arg, args);
  va_end (args);
  return sim;
}

guint16
stm32_sim_get_port (Stm32Sim *sim)
{
  return sim->port;
}

void
stm32_sim_send_signal (Stm32Sim *sim, int signum)
{
  stm32_test_send_signal (sim->process, signum, SIM_REQUEST_TIMEOUT_MS);
}

/* The oldest unconsumed event whose name is one of @names, removed from the queue. */
static JsonObject *
take_event (Stm32Sim *sim, const char *const *names)
{
  GQueue *oldest = NULL;
  PendingEvent *event;
  JsonObject *object;

  for (guint i = 0; names[i] != NULL; i++)
    {
      GQueue *queue = g_hash_table_lookup (sim->pending, names[i]);

      if (queue != NULL && !g_queue_is_empty (queue) &&
          (oldest == NULL ||
           ((PendingEvent *) g_queue_peek_head (queue))->seq <
               ((PendingEvent *) g_queue_peek_head (oldest))->seq))
        oldest = queue;
    }
  if (oldest == NULL)
    return NULL;
  event = g_queue_pop_head (oldest);
  object = event->object;
  g_free (event);
  return object;
}

static JsonObject *
wait_for_one_of (Stm32Sim *sim, const char *const *names, guint timeout_ms)
{
  g_autofree char *what = g_strjoinv ("|", (char **) names);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  JsonObject *event;

  while ((event = take_event (sim, names)) == NULL)
    {
      if (sim->stdout_closed)
        g_error ("stm32-sim exited while the test waited for event %s", what);
      if (g_get_monotonic_time () >= deadline)
        g_error ("no %s event from stm32-sim within %u ms", what, timeout_ms);
      stm32_test_iterate (deadline);
    }
  return event;
}

JsonObject *
stm32_sim_wait_event (Stm32Sim *sim, const char *event, guint timeout_ms)
{
  const char *names[] = { event, NULL };

  return wait_for_one_of (sim, names, timeout_ms);
}

guint
stm32_sim_count_events (Stm32Sim *sim, const char *event)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (sim->counts, event));
}

gint64
stm32_sim_last_event_time (Stm32Sim *sim, const char *event)
{
  const gint64 *at = g_hash_table_lookup (sim->last_times, event);

  return at != NULL ? *at : 0;
}

void
stm32_sim_discard_events (Stm32Sim *sim)
{
  g_hash_table_remove_all (sim->pending);
}

static void
send_line (Stm32Sim *sim, const char *command)
{
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  g_autoptr (GError) error = NULL;

  /* A short line into a pipe the simulator keeps reading: this cannot stall. */
  g_output_stream_write_all (sim->stdin_pipe, line, strlen (line), NULL, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_flush (sim->stdin_pipe, NULL, &error);
  g_assert_no_error (error);
}

JsonObject *
stm32_sim_request (Stm32Sim *sim, const char *command)
{
  /* The simulator answers every command with exactly one of these, in order. */
  static const char *const answers[] = { "ok", "status", "error", NULL };

  send_line (sim, command);
  return wait_for_one_of (sim, answers, SIM_REQUEST_TIMEOUT_MS);
}

void
stm32_sim_command (Stm32Sim *sim, const char *command)
{
  g_autoptr (JsonObject) answer = stm32_sim_request (sim, command);
  const char *name = json_object_get_string_member (answer, "event");

  if (!g_str_equal (name, "ok"))
    g_error ("stm32-sim command “%s” failed: %s", command,
             json_object_get_string_member_with_default (answer, "message", name));
}

JsonObject *
stm32_sim_status (Stm32Sim *sim)
{
  JsonObject *answer = stm32_sim_request (sim, "status");

  g_assert_cmpstr (json_object_get_string_member (answer, "event"), ==, "status");
  return answer;
}

gint64
stm32_sim_status_int (Stm32Sim *sim, const char *member)
{
  g_autoptr (JsonObject) status = stm32_sim_status (sim);

  g_assert_true (json_object_has_member (status, member));
  return json_object_get_int_member (status, member);
}

gint64
stm32_sim_released_how (Stm32Sim *sim, const char *how)
{
  g_autoptr (JsonObject) status = stm32_sim_status (sim);
  JsonObject *counts = json_object_get_object_member (status, "released_how");

  return json_object_has_member (counts, how) ? json_object_get_int_member (counts, how) : 0;
}

static void
on_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Stm32Sim *sim = user_data;
  g_autoptr (GError) error = NULL;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, &error);
  g_assert_no_error (error);
  sim->exited = TRUE;
}

void
stm32_sim_stop (Stm32Sim *sim)
{
  g_autoptr (GError) error = NULL;

  send_line (sim, "quit");
  g_output_stream_close (sim->stdin_pipe, NULL, &error);
  g_assert_no_error (error);
  g_subprocess_wait_async (sim->process, NULL, on_exited, sim);
  /* Both callbacks use @sim, so both must have run before it is freed. */
  stm32_test_wait_until (sim->exited && !sim->reading, SIM_STOP_TIMEOUT_MS);
  g_assert_true (g_subprocess_get_if_exited (sim->process));
  g_assert_cmpint (g_subprocess_get_exit_status (sim->process), ==, 0);
  g_hash_table_unref (sim->pending);
  g_hash_table_unref (sim->counts);
  g_hash_table_unref (sim->last_times);
  g_object_unref (sim->events_in);
  g_object_unref (sim->stdin_pipe);
  g_object_unref (sim->process);
  g_free (sim);
}

void
stm32_sim_expect (Stm32Sim *sim, const char *event, guint timeout_ms)
{
  json_object_unref (stm32_sim_wait_event (sim, event, timeout_ms));
}

Stm32Sim *
stm32_sim_startv (const char *const *options)
{
  return sim_start_options (NULL, options);
}
