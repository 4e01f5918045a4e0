/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-defaults.h"
#include "stm32-link-config.h"

G_BEGIN_DECLS

/* Why the capacity count stopped. The nicks (glib-mkenums,
 * STM32_TYPE_PROBE_LIMIT) are what the doctor's report says. */
typedef enum
{
  /* no count: the cycles never got in */
  STM32_PROBE_LIMIT_NONE, /*< nick=none >*/
  /* accepted, then closed or reset: table full */
  STM32_PROBE_LIMIT_REJECTED, /*< nick=rejected >*/
  /* SYN unanswered: PCB pool empty */
  STM32_PROBE_LIMIT_TIMEOUT, /*< nick=timeout >*/
  STM32_PROBE_LIMIT_REFUSED, /*< nick=refused >*/
  STM32_PROBE_LIMIT_FAILED,  /*< nick=failed >*/
  /* it took every one: capacity is at least that */
  STM32_PROBE_LIMIT_MAX, /*< nick=max >*/
} Stm32ProbeLimit;

typedef struct
{
  guint cycles;          /* connect/close cycles run */
  guint cycles_accepted; /* stayed up through BusyWindow */
  guint cycles_busy;     /* accepted, then closed or reset within BusyWindow */
  guint cycles_refused;
  guint cycles_timeout;
  guint cycles_failed;
  guint64 connect_us_min; /* accept latency of the cycles that got in */
  guint64 connect_us_median;
  guint64 connect_us_max;
  guint closes_graceful; /* the board answered our FIN within CloseTimeout */
  guint closes_reset;    /* it did not: we ended with RST */
  guint held_by_link;    /* connections the link itself held (0 or 1) */
  guint extra;           /* extra connections the board accepted and kept */
  guint max;             /* how many extra ones the count would open at most */
  Stm32ProbeLimit limit;
  gboolean released; /* afterwards, a new connection got in and stayed */
  guint64 duration_us;
  char *error; /* the first unexpected error, for people; NULL if none */
} Stm32ProbeResult;

/* A result with nothing counted yet, for @max extra connections while the
 * link holds @held_by_link: how the probe starts, and what the diagnosis
 * reports when there is nothing to probe. @max is taken as given. */
Stm32ProbeResult *stm32_probe_result_new (guint max, guint held_by_link);
void stm32_probe_result_free (Stm32ProbeResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32ProbeResult, stm32_probe_result_free)

/*
 * Probes @address like a careful client: STM32_PROBE_CYCLES connect/close
 * cycles (accept latency, accepted-then-closed), then extra connections one
 * at a time, up to @max, until the board turns one away; then closes them
 * all the way the link does (FIN, wait for the board's EOF at most
 * CloseTimeout, else RST) and checks that a new connection gets in again.
 * @held_by_link is how many connections the link holds meanwhile.
 *
 * Every wait is bounded by @config (ConnectTimeout, BusyWindow,
 * CloseTimeout). Cancelling resets every connection it holds at once and
 * finishes with G_IO_ERROR_CANCELLED; no slot it opened stays taken.
 */
void stm32_probe_async (GSocketAddress *address, const Stm32LinkConfig *config, guint max,
                        guint held_by_link, GCancellable *cancellable, GAsyncReadyCallback callback,
                        gpointer user_data);
Stm32ProbeResult *stm32_probe_finish (GAsyncResult *result, GError **error);

G_END_DECLS
