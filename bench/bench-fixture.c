/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A section's board and stm32d: the test harnesses start and stop the
 * processes; here the bench's settings (binaries, the board's CPU, one link
 * "bench"), the client library's view of the link, and bounded waits that
 * report a timeout instead of failing a test. */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "bench.h"
#include "test-util.h"

gint64
bench_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

gboolean
bench_wait_until (const gboolean *done, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (!*done && g_get_monotonic_time () < deadline)
    stm32_test_iterate (deadline);
  return *done;
}

void
bench_run_for (guint ms)
{
  /* The daemon's idle behaviour is measured, so this process must not poll it. */
  gboolean never = FALSE;
  bench_wait_until (&never, ms);
}

Stm32Sim *
bench_sim_start (const BenchConfig *config, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  va_list args;

  g_ptr_array_add (argv, (gpointer) config->sim);
  g_ptr_array_add (argv, "--port");
  g_ptr_array_add (argv, "0");
  g_ptr_array_add (argv, "--quiet");
  va_start (args, config);
  for (const char *arg; (arg = va_arg (args, const char *));)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return stm32_sim_spawn_on_cpu ((const char *const *) argv->pdata, config->board_cpu);
}

void
bench_daemon_free (BenchDaemon *d)
{
  if (!d)
    return;
  g_clear_object (&d->link);
  g_clear_object (&d->client);
  if (d->process)
    {
      /* Its exit status is not the bench's business (the tests judge it). */
      stm32_daemon_send_signal (d->process, SIGTERM);
      (void) stm32_daemon_wait_exit (d->process);
      stm32_daemon_free (d->process);
    }
  if (d->conf)
    g_unlink (d->conf);
  g_free (d->conf);
  g_free (d);
}

GPid
bench_daemon_get_pid (BenchDaemon *d)
{
  return stm32_daemon_get_pid (d->process);
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
      sw->at_ns = bench_now_ns ();
    }
}

gint64
bench_link_wait_state (Stm32ClientLink *link, const char *want, guint timeout_ms)
{
  StateWait sw = { want, FALSE, 0 };
  gulong id = g_signal_connect (link, "notify::state", G_CALLBACK (state_cb), &sw);
  state_cb (G_OBJECT (link), NULL, &sw);
  bench_wait_until (&sw.reached, timeout_ms);
  g_signal_handler_disconnect (link, id);
  return sw.reached ? sw.at_ns : 0;
}

static gboolean
write_config (BenchDaemon *d, guint16 port, const char *extra_conf, gboolean autoconnect,
              GError **error)
{
  int fd = g_file_open_tmp ("stm32-bench-XXXXXX.conf", &d->conf, error);
  if (fd < 0)
    return FALSE;
  close (fd);
  g_autofree char *conf =
      g_strdup_printf ("[Link " BENCH_LINK_NAME "]\nHost=127.0.0.1\nPort=%u\n"
                       "Autoconnect=%s\n%s",
                       port, autoconnect ? "true" : "false", extra_conf ? extra_conf : "");
  return g_file_set_contents (d->conf, conf, -1, error);
}

static BenchDaemon *
daemon_spawn (const BenchConfig *config, guint16 port, const char *extra_conf,
              gboolean autoconnect, GError **error)
{
  g_autoptr (BenchDaemon) d = g_new0 (BenchDaemon, 1);
  if (!write_config (d, port, extra_conf, autoconnect, error))
    return NULL;
  const char *argv[] = { config->daemon, "--session", "--config", d->conf, NULL };
  d->process = stm32_daemon_spawn (argv, G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  return g_steal_pointer (&d);
}

BenchDaemon *
bench_daemon_spawn (const BenchConfig *config, guint16 port, const char *extra_conf,
                    GError **error)
{
  return daemon_spawn (config, port, extra_conf, TRUE, error);
}

BenchDaemon *
bench_daemon_start (const BenchConfig *config, guint16 port, const char *extra_conf,
                    gboolean autoconnect, GError **error)
{
  g_autoptr (BenchDaemon) d = daemon_spawn (config, port, extra_conf, autoconnect, error);
  if (!d)
    return NULL;
  d->client = stm32_client_new_sync (G_BUS_TYPE_SESSION, NULL, error);
  if (!d->client)
    return NULL;
  d->link = stm32_client_get_link (d->client, BENCH_LINK_NAME);
  if (!d->link)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "stm32d has no link " BENCH_LINK_NAME);
      return NULL;
    }
  g_object_ref (d->link);
  if (autoconnect && !bench_link_wait_state (d->link, "connected", BENCH_WAIT_MS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "link " BENCH_LINK_NAME " did not connect");
      return NULL;
    }
  return g_steal_pointer (&d);
}
