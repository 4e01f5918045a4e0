/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The throughput section's Sends: frames pipelined through the client
 * library's async Send, as a GUI would, and streamed through a send channel,
 * against one send() each on a direct socket and through the socat relay;
 * then the AcquireStream bulk transfer (bench-stream.c). */
#include <math.h>
#include <string.h>

#include "bench.h"

/* Shared by the wait and every Send in flight (each holds a reference), so
 * a wait that gives up on a hung daemon leaves nothing dangling. */
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
send_pump_clear (SendPump *p)
{
  g_bytes_unref (p->frame);
  g_clear_error (&p->error);
}

static void
send_pump_unref (SendPump *p)
{
  g_rc_box_release_full (p, (GDestroyNotify) send_pump_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SendPump, send_pump_unref)

static void
send_done_cb (GObject *source, GAsyncResult *res, gpointer data)
{
  g_autoptr (SendPump) p = data;
  GError *error = NULL;
  p->in_flight--;
  p->finished++;
  if (!stm32_client_link_send_finish (STM32_CLIENT_LINK (source), res, &error) && !p->error)
    p->error = error;
  else
    g_clear_error (&error);
  send_pump_fill (p);
}

/* Keeps BENCH_SEND_IN_FLIGHT sends outstanding; stops starting new ones on
 * error or past the deadline. */
static void
send_pump_fill (SendPump *p)
{
  gboolean stop = p->error || bench_now_ns () > p->deadline_ns;
  while (!stop && p->in_flight < BENCH_SEND_IN_FLIGHT && p->started < p->total)
    {
      p->started++;
      p->in_flight++;
      stm32_client_link_send (p->link, p->frame, NULL, send_done_cb, g_rc_box_acquire (p));
    }
  if (p->in_flight == 0 && (stop || p->started == p->total))
    p->done = TRUE;
}

double
bench_send_pipelined (Stm32ClientLink *link, gsize size, guint n, guint max_s, guint *frames,
                      GError **error)
{
  g_autofree char *buf = g_malloc (size);
  memset (buf, 's', size);
  g_autoptr (SendPump) p = g_rc_box_new0 (SendPump);
  p->link = link;
  p->frame = g_bytes_new (buf, size);
  p->total = n;
  p->deadline_ns = bench_now_ns () + (gint64) max_s * 1000000000;
  gint64 t0 = bench_now_ns ();
  send_pump_fill (p);
  if (!bench_wait_until (&p->done, (max_s + 30) * 1000))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "sends did not finish");
      return -1;
    }
  double s = (bench_now_ns () - t0) / 1e9;
  if (p->error)
    {
      g_propagate_error (error, g_steal_pointer (&p->error));
      return -1;
    }
  *frames = p->finished;
  return s;
}

/* Frames kept outstanding on a send channel: its answers come in batches,
 * so it needs a deeper pipeline than the method to keep the board busy. */
#define BENCH_CHANNEL_IN_FLIGHT 4096

typedef struct
{
  Stm32ClientSendChannel *channel;
  GBytes *frame;
  guint total, started, finished, in_flight;
  GError *error;
  gboolean done;
} ChannelPump;

static void channel_pump_fill (ChannelPump *p);

static void
channel_pump_clear (ChannelPump *p)
{
  g_bytes_unref (p->frame);
  g_clear_error (&p->error);
}

static void
channel_pump_unref (ChannelPump *p)
{
  g_rc_box_release_full (p, (GDestroyNotify) channel_pump_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ChannelPump, channel_pump_unref)

static void
channel_sent_cb (GObject *source, GAsyncResult *res, gpointer data)
{
  g_autoptr (ChannelPump) p = data;
  GError *error = NULL;

  p->in_flight--;
  p->finished++;
  if (!stm32_client_send_channel_send_finish (STM32_CLIENT_SEND_CHANNEL (source), res, &error) &&
      !p->error)
    p->error = error;
  else
    g_clear_error (&error);
  /* Refilled in batches, as a producer of a stream would. */
  if (p->in_flight <= BENCH_CHANNEL_IN_FLIGHT / 2 || p->finished == p->total)
    channel_pump_fill (p);
}

static void
channel_pump_fill (ChannelPump *p)
{
  while (!p->error && p->in_flight < BENCH_CHANNEL_IN_FLIGHT && p->started < p->total)
    {
      p->started++;
      p->in_flight++;
      stm32_client_send_channel_send (p->channel, p->frame, NULL, channel_sent_cb,
                                      g_rc_box_acquire (p));
    }
  if (p->in_flight == 0 && (p->error || p->started == p->total))
    p->done = TRUE;
}

/* @n frames of @size bytes through a send channel (Link1.OpenSendChannel). */
static double
send_channel (Stm32ClientLink *link, gsize size, guint n, guint max_s, GError **error)
{
  g_autoptr (Stm32ClientSendChannel) channel =
      stm32_client_link_open_send_channel_sync (link, NULL, error);
  g_autofree char *buf = g_malloc (size);
  g_autoptr (ChannelPump) p = NULL;
  gint64 t0;
  double s;

  if (channel == NULL)
    return -1;
  memset (buf, 'c', size);
  p = g_rc_box_new0 (ChannelPump);
  p->channel = channel;
  p->frame = g_bytes_new (buf, size);
  p->total = n;
  t0 = bench_now_ns ();
  channel_pump_fill (p);
  if (!bench_wait_until (&p->done, (max_s + 30) * 1000))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "channel sends did not finish");
      return -1;
    }
  s = (bench_now_ns () - t0) / 1e9;
  if (p->error)
    {
      g_propagate_error (error, g_steal_pointer (&p->error));
      return -1;
    }
  return s;
}

/* The same frames written one send() each to the board directly. */
static double
send_direct (GSocket *sock, gsize size, guint n, GError **error)
{
  g_autofree char *buf = g_malloc (size + 1);
  memset (buf, 's', size);
  buf[size] = '\n';
  gint64 t0 = bench_now_ns ();
  for (guint i = 0; i < n; i++)
    if (!bench_send_all (sock, buf, size + 1, error))
      return -1;
  return (bench_now_ns () - t0) / 1e9;
}

static gboolean
measure_sends (const BenchConfig *config, GError **error)
{
  guint n = config->smoke ? 500 : 20000;
  guint max_s = config->smoke ? 5 : 30;
  const gsize sizes[] = { 64, 4096 };
  g_autoptr (Stm32Sim) sink = bench_sim_start (config, "--reply", "none", NULL);
  g_autoptr (BenchDaemon) d =
      bench_daemon_start (config, stm32_sim_get_port (sink), NULL, TRUE, error);
  if (!d)
    return FALSE;
  g_autoptr (GSocket) direct = bench_direct_connect (stm32_sim_get_port (sink), error);
  if (!direct)
    return FALSE;
  g_autoptr (GError) relay_error = NULL;
  g_autoptr (BenchRelay) relay =
      bench_relay_start_or_skip (stm32_sim_get_port (sink), &relay_error);
  if (relay_error)
    {
      g_propagate_error (error, g_steal_pointer (&relay_error));
      return FALSE;
    }
  /* Declared after @relay, so closed before socat is stopped. */
  g_autoptr (GSocket) via_relay =
      relay ? bench_direct_connect (bench_relay_get_port (relay), error) : NULL;
  if (relay && !via_relay)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      guint frames = 0;
      double sd = send_direct (direct, sizes[i], n, error);
      double sr = sd < 0 || !via_relay ? NAN : send_direct (via_relay, sizes[i], n, error);
      if (sr < 0)
        return FALSE;
      double sv = sd < 0 ? -1 : bench_send_pipelined (d->link, sizes[i], n, max_s, &frames, error);
      if (sv < 0)
        return FALSE;
      g_autofree char *name =
          g_strdup_printf ("Send %zu B x%d in flight", sizes[i], BENCH_SEND_IN_FLIGHT);
      g_autofree char *fps = g_strdup_printf ("%s frames/s", name);
      g_autofree char *mbs = g_strdup_printf ("%s MB/s", name);
      g_autofree char *note = g_strdup_printf ("%u frames", frames);
      bench_report_with_relay ("throughput", fps, frames / sv, n / sd, n / sr, "frames/s", note);
      bench_report_with_relay ("throughput", mbs, frames * (double) sizes[i] / sv / 1e6,
                               n * (double) sizes[i] / sd / 1e6, n * (double) sizes[i] / sr / 1e6,
                               "MB/s", NULL);
    }
  /* A stream of small frames, where a method call per frame costs most. */
  {
    guint nc = config->smoke ? 2000 : 200000;
    double sd = send_direct (direct, 64, nc, error);
    double sr = sd < 0 || !via_relay ? NAN : send_direct (via_relay, 64, nc, error);
    double sc = sd < 0 || sr < 0 ? -1 : send_channel (d->link, 64, nc, max_s, error);
    g_autofree char *note = g_strdup_printf ("%u frames, %d in flight", nc, BENCH_CHANNEL_IN_FLIGHT);

    if (sc < 0)
      return FALSE;
    bench_report_with_relay ("throughput", "send channel 64 B frames/s", nc / sc, nc / sd, nc / sr,
                             "frames/s", note);
  }
  return TRUE;
}

gboolean
bench_throughput (const BenchConfig *config, GError **error)
{
  /* One stm32d at a time: the sends' board and daemon are gone before the
   * bulk transfer starts its own. */
  return measure_sends (config, error) && bench_stream_bulk (config, error);
}
