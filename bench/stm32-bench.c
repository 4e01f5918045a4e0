/* stm32-bench: what going through stm32d costs compared with a direct socket
 * to the same board (stm32-sim on loopback). Each figure is printed beside a
 * baseline measured in the same run, and the ratio.
 *
 * Run on a private session bus (bench/run.sh does that); every section starts
 * its own simulator(s) and its own stm32d, so sections do not disturb each
 * other. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "stm32-client.h"
#include "stm32-client-link.h"

#define LINK_NAME "bench"
#define WAIT_MS 10000
#define IO_TIMEOUT_S 10
#define SEND_IN_FLIGHT 64

static char *opt_sim;
static char *opt_daemon;
static gboolean opt_smoke;
static gboolean opt_json;
static char *opt_only;
static int opt_board_cpu = -1;

/* ------------------------------------------------------------------ output */

typedef struct
{
  char *section;
  char *name;
  double value;
  double baseline; /* NAN when there is nothing to compare with */
  char *unit;
  char *note;
} Result;

static GPtrArray *results;

static void
result_free (gpointer data)
{
  Result *r = data;
  g_free (r->section);
  g_free (r->name);
  g_free (r->unit);
  g_free (r->note);
  g_free (r);
}

static void
report (const char *section, const char *name, double value, double baseline, const char *unit,
        const char *note)
{
  Result *r = g_new0 (Result, 1);
  r->section = g_strdup (section);
  r->name = g_strdup (name);
  r->value = value;
  r->baseline = baseline;
  r->unit = g_strdup (unit);
  r->note = g_strdup (note ? note : "");
  g_ptr_array_add (results, r);
  g_printerr ("bench: %s %s: %.3f %s\n", section, name, value, unit);
}

static void
print_results (void)
{
  if (opt_json)
    {
      for (guint i = 0; i < results->len; i++)
        {
          Result *r = results->pdata[i];
          g_autoptr (JsonBuilder) b = json_builder_new ();
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "section");
          json_builder_add_string_value (b, r->section);
          json_builder_set_member_name (b, "name");
          json_builder_add_string_value (b, r->name);
          json_builder_set_member_name (b, "value");
          json_builder_add_double_value (b, r->value);
          json_builder_set_member_name (b, "unit");
          json_builder_add_string_value (b, r->unit);
          json_builder_set_member_name (b, "baseline");
          if (isnan (r->baseline))
            json_builder_add_null_value (b);
          else
            json_builder_add_double_value (b, r->baseline);
          json_builder_set_member_name (b, "ratio");
          if (isnan (r->baseline) || r->baseline == 0)
            json_builder_add_null_value (b);
          else
            json_builder_add_double_value (b, r->value / r->baseline);
          json_builder_set_member_name (b, "note");
          json_builder_add_string_value (b, r->note);
          json_builder_end_object (b);
          g_autoptr (JsonNode) root = json_builder_get_root (b);
          g_autofree char *text = json_to_string (root, FALSE);
          g_print ("%s\n", text);
        }
      return;
    }
  g_print ("%-10s %-34s %14s %14s %8s  %-8s %s\n", "section", "measure", "stm32d", "direct",
           "ratio", "unit", "note");
  for (guint i = 0; i < results->len; i++)
    {
      Result *r = results->pdata[i];
      g_autofree char *base =
          isnan (r->baseline) ? g_strdup ("-") : g_strdup_printf ("%.3f", r->baseline);
      g_autofree char *ratio = (isnan (r->baseline) || r->baseline == 0)
                                   ? g_strdup ("-")
                                   : g_strdup_printf ("%.2f", r->value / r->baseline);
      g_print ("%-10s %-34s %14.3f %14s %8s  %-8s %s\n", r->section, r->name, r->value, base, ratio,
               r->unit, r->note);
    }
}

/* ------------------------------------------------------------- main loop */

static gboolean
set_flag (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the default main context until *done or timeout_ms passed. */
static gboolean
wait_until (const gboolean *done, guint timeout_ms)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add (timeout_ms, set_flag, &timed_out);
  while (!*done && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  return *done;
}

/* Lets time pass while the main context runs (the daemon's idle behaviour is
 * what is measured, so this process must not poll it). */
static void
run_for (guint ms)
{
  gboolean never = FALSE;
  wait_until (&never, ms);
}

static gint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

/* -------------------------------------------------------------- simulator */

typedef struct
{
  GSubprocess *proc;
  GDataInputStream *out;
  GOutputStream *in;
  guint16 port;
  gint64 last_event_ns; /* when the last awaited event was read */
} Sim;

typedef struct
{
  gboolean done;
  char *line;
  GError *error;
} LineRead;

static void
line_read_cb (GObject *source, GAsyncResult *res, gpointer data)
{
  LineRead *lr = data;
  lr->line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), res, NULL,
                                                        &lr->error);
  lr->done = TRUE;
}

/* Reads simulator events until one named @event; returns it, or NULL after
 * timeout_ms or at EOF. */
static JsonObject *
sim_wait_event (Sim *sim, const char *event, guint timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  for (;;)
    {
      gint64 left = (end - g_get_monotonic_time ()) / 1000;
      if (left <= 0)
        return NULL;
      g_autoptr (GCancellable) cancel = g_cancellable_new ();
      LineRead lr = { 0 };
      g_data_input_stream_read_line_async (sim->out, G_PRIORITY_DEFAULT, cancel, line_read_cb, &lr);
      if (!wait_until (&lr.done, (guint) left))
        {
          /* GIO runs the callback even after cancel: wait for it so lr stays valid. */
          g_cancellable_cancel (cancel);
          while (!lr.done)
            g_main_context_iteration (NULL, TRUE);
          g_clear_error (&lr.error);
          g_free (lr.line);
          return NULL;
        }
      gint64 t = now_ns ();
      g_autofree char *line = lr.line;
      if (lr.error || !line)
        {
          g_clear_error (&lr.error);
          return NULL;
        }
      g_autoptr (JsonParser) parser = json_parser_new ();
      if (!json_parser_load_from_data (parser, line, -1, NULL))
        continue;
      JsonNode *root = json_parser_get_root (parser);
      if (!JSON_NODE_HOLDS_OBJECT (root))
        continue;
      JsonObject *obj = json_node_get_object (root);
      if (g_strcmp0 (json_object_get_string_member_with_default (obj, "event", ""), event) == 0)
        {
          sim->last_event_ns = t;
          return json_object_ref (obj);
        }
    }
}

static gboolean
sim_command (Sim *sim, const char *command, GError **error)
{
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  return g_output_stream_write_all (sim->in, line, strlen (line), NULL, NULL, error) &&
         g_output_stream_flush (sim->in, NULL, error);
}

static void
wait_exit_cb (GObject *source, GAsyncResult *res, gpointer data)
{
  g_subprocess_wait_finish (G_SUBPROCESS (source), res, NULL);
  *(gboolean *) data = TRUE;
}

/* SIGTERM, then SIGKILL if it is still there after WAIT_MS. */
static void
stop_process (GSubprocess *proc)
{
  gboolean exited = FALSE;
  g_subprocess_send_signal (proc, SIGTERM);
  g_subprocess_wait_async (proc, NULL, wait_exit_cb, &exited);
  if (!wait_until (&exited, WAIT_MS))
    {
      g_printerr ("stm32-bench: %s did not exit on SIGTERM, killing it\n",
                  g_subprocess_get_identifier (proc));
      g_subprocess_force_exit (proc);
    }
  while (!exited)
    g_main_context_iteration (NULL, TRUE);
}

static void
sim_free (Sim *sim)
{
  if (!sim)
    return;
  if (sim->proc)
    {
      /* Events nobody read fill the pipe: close it so the simulator's last
       * writes fail instead of waiting for us. */
      g_input_stream_close (G_INPUT_STREAM (sim->out), NULL, NULL);
      sim_command (sim, "quit", NULL);
      g_output_stream_close (sim->in, NULL, NULL);
      stop_process (sim->proc);
    }
  g_clear_object (&sim->out);
  g_clear_object (&sim->proc);
  g_free (sim);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Sim, sim_free)

/* In the child, before exec: the board gets a CPU of its own (--board-cpu). */
static void
pin_to_board_cpu (gpointer user_data)
{
  cpu_set_t set;

  CPU_ZERO (&set);
  CPU_SET (opt_board_cpu, &set);
  (void) sched_setaffinity (0, sizeof set, &set);
}

/* Starts stm32-sim with --port 0 --quiet and the given extra arguments. */
static Sim *
sim_start (const char *const *extra, GError **error)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, opt_sim);
  g_ptr_array_add (argv, "--port");
  g_ptr_array_add (argv, "0");
  g_ptr_array_add (argv, "--quiet");
  for (; extra && *extra; extra++)
    g_ptr_array_add (argv, (gpointer) *extra);
  g_ptr_array_add (argv, NULL);

  g_autoptr (Sim) sim = g_new0 (Sim, 1);
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  if (opt_board_cpu >= 0)
    g_subprocess_launcher_set_child_setup (launcher, pin_to_board_cpu, NULL, NULL);
  sim->proc = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, error);
  if (!sim->proc)
    return NULL;
  sim->in = g_subprocess_get_stdin_pipe (sim->proc);
  sim->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (sim->proc));
  g_autoptr (JsonObject) ev = sim_wait_event (sim, "listening", WAIT_MS);
  if (!ev)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "stm32-sim did not report its port");
      return NULL;
    }
  sim->port = (guint16) json_object_get_int_member (ev, "port");
  return g_steal_pointer (&sim);
}

/* ------------------------------------------------------------------ daemon */

typedef struct
{
  GSubprocess *proc;
  char *conf;
  Stm32Client *client;
  Stm32ClientLink *link;
  pid_t pid;
} Daemon;

static void
daemon_free (Daemon *d)
{
  if (!d)
    return;
  g_clear_object (&d->link);
  g_clear_object (&d->client);
  if (d->proc)
    {
      stop_process (d->proc);
    }
  g_clear_object (&d->proc);
  if (d->conf)
    g_unlink (d->conf);
  g_free (d->conf);
  g_free (d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Daemon, daemon_free)

static void
name_appeared_cb (GDBusConnection *c, const char *name, const char *owner, gpointer data)
{
  *(gboolean *) data = TRUE;
}

typedef struct
{
  const char *want;
  gboolean reached;
  gint64 at_ns;
} StateWait;

static void
state_cb (GObject *obj, GParamSpec *pspec, gpointer data)
{
  StateWait *sw = data;
  const char *state = stm32_client_link_get_state (STM32_CLIENT_LINK (obj));
  gboolean match =
      sw->want[0] == '!' ? g_strcmp0 (state, sw->want + 1) != 0 : g_strcmp0 (state, sw->want) == 0;
  if (match && !sw->reached)
    {
      sw->reached = TRUE;
      sw->at_ns = now_ns ();
    }
}

/* Waits until the link's State is @want ("!x": anything but x); returns the
 * time it was seen, or 0 on timeout. */
static gint64
link_wait_state (Stm32ClientLink *link, const char *want, guint timeout_ms)
{
  StateWait sw = { want, FALSE, 0 };
  gulong id = g_signal_connect (link, "notify::state", G_CALLBACK (state_cb), &sw);
  state_cb (G_OBJECT (link), NULL, &sw);
  wait_until (&sw.reached, timeout_ms);
  g_signal_handler_disconnect (link, id);
  return sw.reached ? sw.at_ns : 0;
}

/* Starts stm32d with one link "bench" to 127.0.0.1:port and the extra config
 * lines, waits for its bus name, and (with Autoconnect) for "connected". */
static Daemon *
daemon_start (guint16 port, const char *extra_conf, gboolean autoconnect, GError **error)
{
  g_autoptr (Daemon) d = g_new0 (Daemon, 1);
  int fd = g_file_open_tmp ("stm32-bench-XXXXXX.conf", &d->conf, error);
  if (fd < 0)
    return NULL;
  close (fd);
  g_autofree char *conf =
      g_strdup_printf ("[Link " LINK_NAME "]\nHost=127.0.0.1\nPort=%u\n"
                       "Autoconnect=%s\n%s",
                       port, autoconnect ? "true" : "false", extra_conf ? extra_conf : "");
  if (!g_file_set_contents (d->conf, conf, -1, error))
    return NULL;

  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (!bus)
    return NULL;
  gboolean appeared = FALSE;
  guint watch = g_bus_watch_name_on_connection (bus, "org.stm32d", G_BUS_NAME_WATCHER_FLAGS_NONE,
                                                name_appeared_cb, NULL, &appeared, NULL);
  d->proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDERR_SILENCE, error, opt_daemon, "--session",
                              "--config", d->conf, NULL);
  if (!d->proc)
    {
      g_bus_unwatch_name (watch);
      return NULL;
    }
  d->pid = (pid_t) g_ascii_strtoll (g_subprocess_get_identifier (d->proc), NULL, 10);
  wait_until (&appeared, WAIT_MS);
  g_bus_unwatch_name (watch);
  if (!appeared)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "stm32d did not take org.stm32d");
      return NULL;
    }
  d->client = stm32_client_new_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (!d->client)
    return NULL;
  d->link = stm32_client_get_link (d->client, LINK_NAME);
  if (!d->link)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "stm32d has no link " LINK_NAME);
      return NULL;
    }
  g_object_ref (d->link);
  if (autoconnect && !link_wait_state (d->link, "connected", WAIT_MS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "link " LINK_NAME " did not connect");
      return NULL;
    }
  return g_steal_pointer (&d);
}

/* -------------------------------------------------------- direct sockets */

static GSocket *
direct_connect (guint16 port, GError **error)
{
  g_autoptr (GSocket) sock =
      g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (!sock)
    return NULL;
  /* Same as the daemon: small request frames must not wait for Nagle. */
  if (!g_socket_set_option (sock, IPPROTO_TCP, TCP_NODELAY, 1, error))
    return NULL;
  g_socket_set_timeout (sock, IO_TIMEOUT_S);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (lo, port);
  if (!g_socket_connect (sock, addr, NULL, error))
    return NULL;
  return g_steal_pointer (&sock);
}

static gboolean
send_all (GSocket *sock, const char *buf, gsize len, GError **error)
{
  while (len > 0)
    {
      gssize n = g_socket_send (sock, buf, len, NULL, error);
      if (n < 0)
        return FALSE;
      buf += n;
      len -= (gsize) n;
    }
  return TRUE;
}

/* Reads until a "\n"; request/reply is strictly alternating, so nothing
 * beyond the newline can have arrived. */
static gboolean
recv_line (GSocket *sock, char *buf, gsize size, GError **error)
{
  gsize got = 0;
  while (got == 0 || buf[got - 1] != '\n')
    {
      if (got == size)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE, "reply too long");
          return FALSE;
        }
      gssize n = g_socket_receive (sock, buf + got, size - got, NULL, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "EOF");
          return FALSE;
        }
      got += (gsize) n;
    }
  return TRUE;
}

/* ------------------------------------------------------------- /proc/PID */

typedef struct
{
  double rss_kib;
  guint fds;
  guint64 ctxt;
  double cpu_s; /* user + system, all threads */
} ProcStat;

static gboolean
proc_stat (pid_t pid, ProcStat *st, GError **error)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, error))
    return FALSE;
  memset (st, 0, sizeof *st);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    if (g_str_has_prefix (*l, "VmRSS:"))
      st->rss_kib = g_ascii_strtod (*l + 6, NULL);
  /* The process's status counts its main thread only; GDBus has a worker
   * thread, so add up every task's switches. */
  g_autofree char *taskpath = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr (GDir) tasks = g_dir_open (taskpath, 0, error);
  if (!tasks)
    return FALSE;
  for (const char *tid; (tid = g_dir_read_name (tasks));)
    {
      g_autofree char *tpath = g_build_filename (taskpath, tid, "status", NULL);
      g_autofree char *ttext = NULL;
      if (!g_file_get_contents (tpath, &ttext, NULL, NULL))
        continue; /* the thread just ended */
      g_auto (GStrv) tlines = g_strsplit (ttext, "\n", -1);
      for (char **l = tlines; *l; l++)
        if (g_str_has_prefix (*l, "voluntary_ctxt_switches:"))
          st->ctxt += g_ascii_strtoull (*l + 24, NULL, 10);
        else if (g_str_has_prefix (*l, "nonvoluntary_ctxt_switches:"))
          st->ctxt += g_ascii_strtoull (*l + 27, NULL, 10);
    }
  g_autofree char *statpath = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  if (!g_file_get_contents (statpath, &stat, NULL, error))
    return FALSE;
  /* utime and stime are fields 14 and 15, counted after the ")" that ends comm. */
  const char *p = strrchr (stat, ')');
  g_auto (GStrv) fields = g_strsplit (p ? p + 2 : stat, " ", 16);
  if (g_strv_length (fields) >= 14)
    st->cpu_s = (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) /
                sysconf (_SC_CLK_TCK);
  g_autofree char *fdpath = g_strdup_printf ("/proc/%d/fd", (int) pid);
  g_autoptr (GDir) dir = g_dir_open (fdpath, 0, error);
  if (!dir)
    return FALSE;
  while (g_dir_read_name (dir))
    st->fds++;
  return TRUE;
}

/* ---------------------------------------------------------------- latency */

static int
cmp_gint64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return x < y ? -1 : x > y;
}

static double
percentile_us (GArray *ns, double p)
{
  if (ns->len == 0)
    return NAN;
  qsort (ns->data, ns->len, sizeof (gint64), cmp_gint64);
  guint i = (guint) (p * (ns->len - 1) + 0.5);
  return g_array_index (ns, gint64, i) / 1000.0;
}

/* One request and its reply on the path being measured. */
typedef gboolean (*RoundTrip) (gpointer path, GError **error);

/* @n round trips, each timed on its own, in ns. */
static GArray *
time_round_trips (RoundTrip round_trip, gpointer path, guint n, GError **error)
{
  g_autoptr (GArray) ns = g_array_sized_new (FALSE, FALSE, sizeof (gint64), n);
  for (guint i = 0; i < n; i++)
    {
      gint64 t0 = now_ns ();
      if (!round_trip (path, error))
        return NULL;
      gint64 dt = now_ns () - t0;
      g_array_append_val (ns, dt);
    }
  return g_steal_pointer (&ns);
}

/* Request/reply on a socket: "payload\n" out, a line back. */
typedef struct
{
  GSocket *sock;
  char *req;
  char *reply;
  gsize size;
} SocketPath;

static gboolean
socket_round_trip (gpointer path, GError **error)
{
  SocketPath *p = path;
  return send_all (p->sock, p->req, p->size + 1, error) &&
         recv_line (p->sock, p->reply, p->size + 2, error);
}

static GArray *
latency_socket (GSocket *sock, gsize size, guint n, GError **error)
{
  g_autofree char *req = g_malloc (size + 1);
  g_autofree char *reply = g_malloc (size + 2);
  memset (req, 'r', size);
  req[size] = '\n';
  SocketPath path = { sock, req, reply, size };
  return time_round_trips (socket_round_trip, &path, n, error);
}

/* A transaction of @size bytes, as a D-Bus call (@channel NULL) or on a
 * transaction channel (one socket round trip to stm32d instead). */
typedef struct
{
  Stm32ClientLink *link;
  Stm32ClientChannel *channel;
  GBytes *request;
} TransactPath;

static gboolean
transact_round_trip (gpointer path, GError **error)
{
  TransactPath *p = path;
  g_autoptr (GBytes) reply =
      p->channel ? stm32_client_channel_transact_sync (p->channel, p->request, 5000, NULL, error)
                 : stm32_client_link_transact_sync (p->link, p->request, 5000, NULL, error);
  return reply != NULL;
}

static GArray *
latency_transact (Stm32ClientLink *link, Stm32ClientChannel *channel, gsize size, guint n,
                  GError **error)
{
  g_autofree char *req = g_malloc (size);
  memset (req, 'r', size);
  g_autoptr (GBytes) request = g_bytes_new (req, size);
  TransactPath path = { link, channel, request };
  return time_round_trips (transact_round_trip, &path, n, error);
}

/* Where the time goes that is not CPU work: thread hand-offs. @what is the
 * call measured, "Transact 16 B" say. */
static void
report_daemon_cost (const char *what, const ProcStat *before, const ProcStat *after, guint n)
{
  g_autofree char *cs = g_strdup_printf ("stm32d per %s: ctxt switches", what);
  g_autofree char *cpu = g_strdup_printf ("stm32d per %s: CPU", what);
  report ("latency", cs, (double) (after->ctxt - before->ctxt) / n, NAN, "1", "all threads");
  report ("latency", cpu, (after->cpu_s - before->cpu_s) * 1e6 / n, NAN, "us",
          "user + system, 10 ms ticks");
}

/* org.freedesktop.DBus.Peer.Ping to stm32d: the bus round trip alone, the
 * floor under any method call. */
static gboolean
ping_round_trip (gpointer bus, GError **error)
{
  g_autoptr (GVariant) r =
      g_dbus_connection_call_sync (bus, "org.stm32d", "/org/stm32d", "org.freedesktop.DBus.Peer",
                                   "Ping", NULL, NULL, G_DBUS_CALL_FLAGS_NONE, 5000, NULL, error);
  return r != NULL;
}

static GArray *
latency_ping (guint n, GError **error)
{
  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (!bus)
    return NULL;
  return time_round_trips (ping_round_trip, bus, n, error);
}

static void
report_latency (const char *what, gsize size, GArray *via, GArray *direct)
{
  double d50 = percentile_us (direct, 0.5), d99 = percentile_us (direct, 0.99);
  double v50 = percentile_us (via, 0.5), v99 = percentile_us (via, 0.99);
  g_autofree char *n50 = g_strdup_printf ("%s %zu B p50", what, size);
  g_autofree char *n99 = g_strdup_printf ("%s %zu B p99", what, size);
  g_autofree char *note = g_strdup_printf ("p99/p50 %.1f (n=%u)", v99 / v50, via->len);
  report ("latency", n50, v50, d50, "us", NULL);
  report ("latency", n99, v99, d99, "us", note);
}

static gboolean
bench_latency (GError **error)
{
  guint n = opt_smoke ? 100 : 2000;
  const gsize sizes[] = { 16, 1024 };
  g_autoptr (Sim) sim = sim_start (NULL, error);
  if (!sim)
    return FALSE;
  g_autoptr (Daemon) d = daemon_start (sim->port, NULL, TRUE, error);
  if (!d)
    return FALSE;
  g_autoptr (GSocket) direct = direct_connect (sim->port, error);
  if (!direct)
    return FALSE;

  g_autoptr (Stm32ClientChannel) channel =
      stm32_client_link_open_transact_channel_sync (d->link, NULL, error);
  if (!channel)
    return FALSE;

  /* Direct figures per size, the baseline for Transact, the channel and AcquireStream. */
  g_autoptr (GPtrArray) base = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      /* A short warm-up of each path so the first connection's page faults
       * and the bus's first round trips are not counted. */
      g_autoptr (GArray) w1 = latency_socket (direct, sizes[i], n / 10, error);
      g_autoptr (GArray) w2 = w1 ? latency_transact (d->link, NULL, sizes[i], n / 10, error) : NULL;
      g_autoptr (GArray) w3 =
          w2 ? latency_transact (d->link, channel, sizes[i], n / 10, error) : NULL;
      if (!w3)
        return FALSE;
      GArray *direct_ns = latency_socket (direct, sizes[i], n, error);
      if (!direct_ns)
        return FALSE;
      g_ptr_array_add (base, direct_ns);
      ProcStat before, after;
      if (!proc_stat (d->pid, &before, error))
        return FALSE;
      g_autoptr (GArray) via = latency_transact (d->link, NULL, sizes[i], n, error);
      if (!via || !proc_stat (d->pid, &after, error))
        return FALSE;
      report_latency ("Transact", sizes[i], via, direct_ns);
      g_autofree char *transact = g_strdup_printf ("Transact %zu B", sizes[i]);
      report_daemon_cost (transact, &before, &after, n);

      if (!proc_stat (d->pid, &before, error))
        return FALSE;
      g_autoptr (GArray) via_channel = latency_transact (d->link, channel, sizes[i], n, error);
      if (!via_channel || !proc_stat (d->pid, &after, error))
        return FALSE;
      report_latency ("Transact channel", sizes[i], via_channel, direct_ns);
      g_autofree char *channel_call = g_strdup_printf ("Transact channel %zu B", sizes[i]);
      report_daemon_cost (channel_call, &before, &after, n);
    }
  /* AcquireStream takes the link: transactions, the channel's too, are Busy. */
  stm32_client_channel_close (channel);

  ProcStat before, after;
  if (!proc_stat (d->pid, &before, error))
    return FALSE;
  g_autoptr (GArray) ping = latency_ping (n, error);
  if (!ping || !proc_stat (d->pid, &after, error))
    return FALSE;
  report_daemon_cost ("Peer.Ping", &before, &after, n);
  report ("latency", "D-Bus Peer.Ping p50 (bus floor)", percentile_us (ping, 0.5),
          percentile_us (base->pdata[0], 0.5), "us", "baseline: direct 16 B");

  g_autoptr (GSocket) stream = stm32_client_link_acquire_stream_sync (d->link, NULL, error);
  if (!stream)
    return FALSE;
  g_socket_set_timeout (stream, IO_TIMEOUT_S);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr (GArray) w = latency_socket (stream, sizes[i], n / 10, error);
      g_autoptr (GArray) via = w ? latency_socket (stream, sizes[i], n, error) : NULL;
      if (!via)
        return FALSE;
      report_latency ("AcquireStream", sizes[i], via, base->pdata[i]);
    }
  return TRUE;
}

/* ------------------------------------------------------------- throughput */

typedef struct
{
  Stm32ClientLink *link;
  GBytes *frame;
  guint total, started, finished, in_flight;
  GError *error;
  gint64 deadline_ns;
  gboolean done;
} SendPump;

static void send_pump_fill (SendPump *p);

static void
send_done_cb (GObject *source, GAsyncResult *res, gpointer data)
{
  SendPump *p = data;
  GError *error = NULL;
  p->in_flight--;
  p->finished++;
  if (!stm32_client_link_send_finish (STM32_CLIENT_LINK (source), res, &error) && !p->error)
    p->error = error;
  else
    g_clear_error (&error);
  send_pump_fill (p);
}

/* Keeps SEND_IN_FLIGHT sends outstanding, as a GUI using the async API would;
 * stops starting new ones on error or past the deadline. */
static void
send_pump_fill (SendPump *p)
{
  gboolean stop = p->error || now_ns () > p->deadline_ns;
  while (!stop && p->in_flight < SEND_IN_FLIGHT && p->started < p->total)
    {
      p->started++;
      p->in_flight++;
      stm32_client_link_send (p->link, p->frame, NULL, send_done_cb, p);
    }
  if (p->in_flight == 0 && (stop || p->started == p->total))
    p->done = TRUE;
}

/* Pipelined Sends of n frames of size bytes; returns seconds taken and the
 * frames done, or -1. */
static double
send_pipelined (Stm32ClientLink *link, gsize size, guint n, guint max_s, guint *frames,
                GError **error)
{
  g_autofree char *buf = g_malloc (size);
  memset (buf, 's', size);
  g_autoptr (GBytes) frame = g_bytes_new (buf, size);
  SendPump p = { link, frame, n, 0, 0, 0, NULL, now_ns () + (gint64) max_s * 1000000000, FALSE };
  gint64 t0 = now_ns ();
  send_pump_fill (&p);
  if (!wait_until (&p.done, (max_s + 30) * 1000))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "sends did not finish");
      return -1; /* p is on the stack: leaving with sends in flight would be fatal */
    }
  double s = (now_ns () - t0) / 1e9;
  if (p.error)
    {
      g_propagate_error (error, p.error);
      return -1;
    }
  *frames = p.finished;
  return s;
}

/* The same frames written one send() each to the board directly. */
static double
send_direct (GSocket *sock, gsize size, guint n, GError **error)
{
  g_autofree char *buf = g_malloc (size + 1);
  memset (buf, 's', size);
  buf[size] = '\n';
  gint64 t0 = now_ns ();
  for (guint i = 0; i < n; i++)
    if (!send_all (sock, buf, size + 1, error))
      return -1;
  return (now_ns () - t0) / 1e9;
}

/* Writes total bytes of 1 KiB lines while reading their echo, on one
 * non-blocking socket, until the whole echo is back: the board's view of a
 * bulk transfer, for a direct socket and an AcquireStream alike. At most
 * WINDOW bytes are out unechoed, as a holder that reads what it provokes
 * would: stm32d closes a stream whose holder lets more than 1 MiB from the
 * board wait (STM32_STREAM_BUFFER_MAX). */
static double
bulk_echo (GSocket *sock, guint64 total, GError **error)
{
  enum
  {
    LINE = 1024,
    CHUNK = 64 * LINE,
    WINDOW = 256 * LINE
  };
  g_autofree char *out = g_malloc (CHUNK);
  g_autofree char *in = g_malloc (CHUNK);
  for (guint i = 0; i < CHUNK; i++)
    out[i] = (i % LINE == LINE - 1) ? '\n' : 'b';
  total -= total % LINE;
  int fd = g_socket_get_fd (sock);
  guint64 sent = 0, received = 0;
  gint64 t0 = now_ns ();
  while (received < total)
    {
      gboolean may_send = sent < total && sent - received < WINDOW;
      struct pollfd pfd = { fd, POLLIN | (may_send ? POLLOUT : 0), 0 };
      int r = poll (&pfd, 1, IO_TIMEOUT_S * 1000);
      if (r <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "bulk transfer stalled at %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                       " bytes",
                       received, total);
          return -1;
        }
      if (pfd.revents & POLLIN)
        {
          ssize_t n = recv (fd, in, CHUNK, MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                           "bulk transfer: the stream ended");
              return -1;
            }
          if (n > 0)
            received += (guint64) n;
        }
      if (may_send && (pfd.revents & POLLOUT))
        {
          gsize off = sent % CHUNK;
          gsize len = MIN ((guint64) (CHUNK - off), MIN (total - sent, WINDOW - (sent - received)));
          ssize_t n = send (fd, out + off, len, MSG_DONTWAIT | MSG_NOSIGNAL);
          if (n < 0 && errno != EAGAIN && errno != EINTR)
            {
              g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "bulk send: %s",
                           g_strerror (errno));
              return -1;
            }
          if (n > 0)
            sent += (guint64) n;
        }
    }
  return (now_ns () - t0) / 1e9;
}

static gboolean
bench_throughput (GError **error)
{
  guint n = opt_smoke ? 500 : 20000;
  guint max_s = opt_smoke ? 5 : 30;
  const gsize sizes[] = { 64, 4096 };
  const char *none[] = { "--reply", "none", NULL };
  g_autoptr (Sim) sink = sim_start (none, error);
  if (!sink)
    return FALSE;
  g_autoptr (Daemon) d = daemon_start (sink->port, NULL, TRUE, error);
  if (!d)
    return FALSE;
  g_autoptr (GSocket) direct = direct_connect (sink->port, error);
  if (!direct)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      guint frames = 0;
      double sd = send_direct (direct, sizes[i], n, error);
      double sv = sd < 0 ? -1 : send_pipelined (d->link, sizes[i], n, max_s, &frames, error);
      if (sv < 0)
        return FALSE;
      g_autofree char *name =
          g_strdup_printf ("Send %zu B x%d in flight", sizes[i], SEND_IN_FLIGHT);
      g_autofree char *fps = g_strdup_printf ("%s frames/s", name);
      g_autofree char *mbs = g_strdup_printf ("%s MB/s", name);
      g_autofree char *note = g_strdup_printf ("%u frames", frames);
      report ("throughput", fps, frames / sv, n / sd, "frames/s", note);
      report ("throughput", mbs, frames * (double) sizes[i] / sv / 1e6,
              n * (double) sizes[i] / sd / 1e6, "MB/s", NULL);
    }

  /* Bulk through AcquireStream against an echoing board, both ways at once. */
  guint64 bulk = (opt_smoke ? 2 : 64) * G_GUINT64_CONSTANT (1048576);
  g_autoptr (Sim) echo = sim_start (NULL, error);
  if (!echo)
    return FALSE;
  g_clear_pointer (&d, daemon_free);
  d = daemon_start (echo->port, NULL, TRUE, error);
  if (!d)
    return FALSE;
  g_autoptr (GSocket) direct_echo = direct_connect (echo->port, error);
  if (!direct_echo)
    return FALSE;
  double bd = bulk_echo (direct_echo, bulk, error);
  if (bd < 0)
    return FALSE;
  g_autoptr (GSocket) stream = stm32_client_link_acquire_stream_sync (d->link, NULL, error);
  if (!stream)
    return FALSE;
  double bv = bulk_echo (stream, bulk, error);
  if (bv < 0)
    return FALSE;
  g_autofree char *note =
      g_strdup_printf ("%" G_GUINT64_FORMAT " MiB out and echoed back", bulk / 1048576);
  report ("throughput", "AcquireStream bulk echo", bulk / bv / 1e6, bulk / bd / 1e6, "MB/s", note);
  return TRUE;
}

/* ------------------------------------------------------------------ cycles */

/* connect → request/reply → shutdown(WR) → EOF → close, as the daemon does. */
static gboolean
direct_cycle (guint16 port, GError **error)
{
  char reply[64];
  g_autoptr (GSocket) sock = direct_connect (port, error);
  if (!sock || !send_all (sock, "cycle\n", 6, error) ||
      !recv_line (sock, reply, sizeof reply, error))
    return FALSE;
  if (!g_socket_shutdown (sock, FALSE, TRUE, error))
    return FALSE;
  for (;;)
    {
      gssize n = g_socket_receive (sock, reply, sizeof reply, NULL, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        break;
    }
  return g_socket_close (sock, error);
}

static gboolean
link_cycle (Stm32ClientLink *link, GBytes *req, GError **error)
{
  if (!stm32_client_link_connect_sync (link, NULL, error))
    return FALSE;
  g_autoptr (GBytes) reply = stm32_client_link_transact_sync (link, req, 5000, NULL, error);
  return reply && stm32_client_link_disconnect_sync (link, NULL, error);
}

static gboolean
bench_cycles (GError **error)
{
  guint n = opt_smoke ? 20 : 500;
  gint64 max_ns = (opt_smoke ? 5 : 30) * G_GINT64_CONSTANT (1000000000);
  const char *good[] = { "--mode", "good", "--slots", "0", NULL };
  g_autoptr (Sim) sim = sim_start (good, error);
  if (!sim)
    return FALSE;
  g_autoptr (Daemon) d = daemon_start (sim->port, NULL, FALSE, error);
  if (!d)
    return FALSE;
  g_autoptr (GBytes) req = g_bytes_new_static ("cycle", 5);

  guint nd = 0, nv = 0;
  gint64 t0 = now_ns ();
  for (; nd < n && now_ns () - t0 < max_ns; nd++)
    if (!direct_cycle (sim->port, error))
      return FALSE;
  double sd = (now_ns () - t0) / 1e9;
  t0 = now_ns ();
  for (; nv < n && now_ns () - t0 < max_ns; nv++)
    if (!link_cycle (d->link, req, error))
      return FALSE;
  double sv = (now_ns () - t0) / 1e9;
  g_autofree char *note = g_strdup_printf ("%u / %u cycles", nv, nd);
  report ("cycle", "connect-transact-disconnect", nv / sv, nd / sd, "cycles/s", note);
  return TRUE;
}

/* ---------------------------------------------------------------- recovery */

static gboolean
bench_recovery (GError **error)
{
  guint rounds = opt_smoke ? 1 : 5;
  g_autoptr (Sim) sim = sim_start (NULL, error);
  if (!sim)
    return FALSE;
  /* A heartbeat keeps an idle but healthy board talking, so IdleTimeout only
   * fires when the board goes silent. */
  const guint idle_ms = 1000;
  g_autofree char *conf = g_strdup_printf ("IdleTimeout=%u\nHeartbeat=ping\nHeartbeatInterval=200\n"
                                           "HeartbeatTimeout=10000\nRetryResetAfter=1000\n",
                                           idle_ms);
  g_autoptr (Daemon) d = daemon_start (sim->port, conf, TRUE, error);
  if (!d)
    return FALSE;

  g_autoptr (GArray) back = g_array_new (FALSE, FALSE, sizeof (gint64));
  for (guint i = 0; i < rounds; i++)
    {
      /* Stay up past BusyWindow (a reset sooner counts as a full board and
       * waits BusyBackoff) and RetryResetAfter, so every round starts the
       * backoff from RetryMin. */
      run_for (1100);
      /* The board reboots: its listener is gone for 500 ms, its connections reset. */
      if (!sim_command (sim, "refuse 500", error) || !sim_command (sim, "rst-all", error))
        return FALSE;
      g_autoptr (JsonObject) open = sim_wait_event (sim, "listener-open", WAIT_MS);
      if (!open)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the listener did not reopen");
          return FALSE;
        }
      gint64 t_open = sim->last_event_ns;
      gint64 t_up = link_wait_state (d->link, "connected", WAIT_MS);
      if (!t_up)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the link did not come back");
          return FALSE;
        }
      gint64 dt = MAX (t_up - t_open, 0);
      g_array_append_val (back, dt);
    }
  g_autofree char *note =
      g_strdup_printf ("max %.0f ms over %u restarts; RetryMin 250 ms, +/-20 %% jitter",
                       percentile_us (back, 1.0) / 1000, rounds);
  report ("recovery", "board back -> connected (median)", percentile_us (back, 0.5) / 1000, NAN,
          "ms", note);

  /* Hung firmware: the kernel still ACKs, only IdleTimeout can notice. */
  if (!sim_command (sim, "blackhole on", error))
    return FALSE;
  g_autoptr (JsonObject) ok = sim_wait_event (sim, "ok", WAIT_MS);
  gint64 t_silent = sim->last_event_ns;
  gint64 t_noticed = ok ? link_wait_state (d->link, "!connected", idle_ms * 5) : 0;
  if (!t_noticed)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "a blackholed board went unnoticed");
      return FALSE;
    }
  report ("recovery", "blackhole noticed vs IdleTimeout", (t_noticed - t_silent) / 1e6, idle_ms,
          "ms", "budget = IdleTimeout (heartbeat 200 ms keeps a healthy link busy)");
  return TRUE;
}

/* --------------------------------------------------------------- footprint */

/* Context switches per second over a quiet window of ms. */
static gboolean
quiet_wakeups (pid_t pid, guint ms, double *rate, GError **error)
{
  ProcStat a, b;
  if (!proc_stat (pid, &a, error))
    return FALSE;
  run_for (ms);
  if (!proc_stat (pid, &b, error))
    return FALSE;
  *rate = (double) (b.ctxt - a.ctxt) * 1000.0 / ms;
  return TRUE;
}

static gboolean
bench_footprint (GError **error)
{
  guint window = opt_smoke ? 1000 : 5000;
  guint frames = opt_smoke ? 2000 : 1000000;
  guint max_s = opt_smoke ? 5 : 120;
  const char *none[] = { "--reply", "none", NULL };
  g_autoptr (Sim) sim = sim_start (none, error);
  if (!sim)
    return FALSE;
  g_autoptr (Daemon) d = daemon_start (sim->port, NULL, FALSE, error);
  if (!d)
    return FALSE;

  ProcStat idle, quiet, half, full;
  double idle_rate, quiet_rate;
  if (!quiet_wakeups (d->pid, window, &idle_rate, error) || !proc_stat (d->pid, &idle, error))
    return FALSE;
  if (!stm32_client_link_connect_sync (d->link, NULL, error))
    return FALSE;
  if (!quiet_wakeups (d->pid, window, &quiet_rate, error) || !proc_stat (d->pid, &quiet, error))
    return FALSE;
  guint done1 = 0, done2 = 0;
  if (send_pipelined (d->link, 64, frames / 2, max_s / 2, &done1, error) < 0 ||
      !proc_stat (d->pid, &half, error) ||
      send_pipelined (d->link, 64, frames / 2, max_s / 2, &done2, error) < 0 ||
      !proc_stat (d->pid, &full, error))
    return FALSE;
  g_autofree char *note_w = g_strdup_printf ("over %u ms, voluntary + nonvoluntary", window);
  g_autofree char *note_h = g_strdup_printf ("baseline: after the first %u frames", done1);
  g_autofree char *name_f = g_strdup_printf ("RSS after %u 64 B Sends", done1 + done2);
  g_autofree char *name_d = g_strdup_printf ("open fds after %u 64 B Sends", done1 + done2);
  report ("footprint", "ctxt switches/s, no link up", idle_rate, NAN, "1/s", note_w);
  report ("footprint", "ctxt switches/s, connected, quiet", quiet_rate, NAN, "1/s", note_w);
  report ("footprint", "RSS connected, quiet", quiet.rss_kib, idle.rss_kib, "KiB",
          "baseline: no link up");
  report ("footprint", name_f, full.rss_kib, half.rss_kib, "KiB", note_h);
  report ("footprint", "open fds connected, quiet", quiet.fds, idle.fds, "fds",
          "baseline: no link up");
  report ("footprint", name_d, full.fds, quiet.fds, "fds", "baseline: before the frames");
  return TRUE;
}

/* -------------------------------------------------------------------- main */

typedef struct
{
  const char *name;
  gboolean (*run) (GError **error);
} Section;

static const Section sections[] = {
  { "latency", bench_latency },   { "throughput", bench_throughput }, { "cycle", bench_cycles },
  { "recovery", bench_recovery }, { "footprint", bench_footprint },
};

int
main (int argc, char **argv)
{
  const GOptionEntry entries[] = {
    { "sim", 0, 0, G_OPTION_ARG_FILENAME, &opt_sim, "The stm32-sim binary", "PATH" },
    { "daemon", 0, 0, G_OPTION_ARG_FILENAME, &opt_daemon, "The stm32d binary", "PATH" },
    { "smoke", 0, 0, G_OPTION_ARG_NONE, &opt_smoke, "Tiny sizes: does it all work", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "One JSON object per figure", NULL },
    { "only", 0, 0, G_OPTION_ARG_STRING, &opt_only,
      "One section: latency, throughput, cycle, recovery, footprint", "SECTION" },
    { "board-cpu", 0, 0, G_OPTION_ARG_INT, &opt_board_cpu,
      "Run the simulator on CPU N alone, as a board is another machine (run.sh picks the last "
      "CPU and keeps everything else off it)",
      "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("— stm32d against a direct socket");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("stm32-bench: error: %s\n", error->message);
      return 2;
    }
  if (!opt_sim || !opt_daemon)
    {
      g_printerr ("stm32-bench: error: --sim and --daemon are required\n");
      return 2;
    }
  if (opt_board_cpu < -1 || opt_board_cpu >= CPU_SETSIZE ||
      opt_board_cpu >= sysconf (_SC_NPROCESSORS_ONLN))
    {
      g_printerr ("stm32-bench: error: --board-cpu must be one of this machine's CPUs "
                  "(0-%ld), not %d\n",
                  sysconf (_SC_NPROCESSORS_ONLN) - 1, opt_board_cpu);
      return 2;
    }
  if (!g_getenv ("DBUS_SESSION_BUS_ADDRESS"))
    {
      g_printerr ("stm32-bench: error: needs a private session bus (run bench/run.sh)\n");
      return 2;
    }
  /* A simulator that already exited must not kill us when we write to its stdin. */
  signal (SIGPIPE, SIG_IGN);
  results = g_ptr_array_new_with_free_func (result_free);
  int status = 0;
  for (guint i = 0; i < G_N_ELEMENTS (sections); i++)
    {
      if (opt_only && g_strcmp0 (opt_only, sections[i].name) != 0)
        continue;
      if (!sections[i].run (&error))
        {
          g_printerr ("stm32-bench: %s: %s\n", sections[i].name, error->message);
          g_clear_error (&error);
          status = 1;
        }
    }
  print_results ();
  g_ptr_array_unref (results);
  return status;
}
