/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/*
 * Metrics as text that both OpenMetrics and Prometheus' own text format
 * (version 0.0.4, what node_exporter's textfile collector and promtool
 * parse) read the same: "# HELP" and "# TYPE" name the samples of a counter
 * with their "_total" (0.0.4 takes a family named without it for another,
 * untyped metric), "# UNIT" and "# EOF" are comments to 0.0.4 parsers.
 * A family's samples must follow its header, before the next family.
 */

/* "# HELP", "# TYPE" and, for a non-empty @unit (which @name ends with), "# UNIT". */
void stm32ctl_metrics_family (GString *out, const char *name, const char *type, const char *unit,
                              const char *help);
/* "@name{label="value",…} @value"; @labels are name, value pairs ending in
 * NULL; values are escaped (backslash, double quote, line feed). */
void stm32ctl_metrics_sample (GString *out, const char *name, const char *const *labels,
                              const char *value);
void stm32ctl_metrics_sample_uint (GString *out, const char *name, const char *const *labels,
                                   guint64 value);
/* µs as seconds in decimal, exact and whatever the locale: 2500 → "0.0025". */
char *stm32ctl_metrics_seconds (guint64 us);
/* The end marker OpenMetrics requires. */
void stm32ctl_metrics_end (GString *out);

G_END_DECLS
