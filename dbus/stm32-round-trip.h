/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* Link1.RoundTrips' bucket bounds in µs, part of the D-Bus API (see the
 * XML): defined once for the daemon that fills the buckets and the clients
 * that label them. A last bucket, without a bound, counts every round trip. */
static const guint64 stm32_round_trip_bounds_us[] = {
  100,    250,    500,     1000,    2500,    5000,    10000,   25000,
  50000,  100000, 250000,  500000,  1000000, 2500000, 5000000, 10000000,
};

#define STM32_ROUND_TRIP_N_BUCKETS (G_N_ELEMENTS (stm32_round_trip_bounds_us) + 1)
