/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "stm32-link-config.h"
#include "stm32-probe.h"

G_BEGIN_DECLS

/*
 * The doctor: what a link's history, the PC's sockets towards the board and
 * an optional probe say is wrong, and what to change, on which side. Pure
 * analysis, no I/O: everything it knows comes in Stm32DoctorInput.
 *
 * A healthy board gets no finding at all; "healthy" is false as soon as one
 * finding is a warning or an error.
 */
typedef struct
{
  const Stm32LinkConfig *config;
  GPtrArray *history; /* Stm32HistoryEntry, oldest first */
  GPtrArray *census;  /* Stm32SockEntry; NULL if it could not be taken */
  const char *census_error;
  const Stm32ProbeResult *probe;  /* NULL unless probed */
  const char *link_local_address; /* the link's connection now, or NULL */
  int self_pid;                   /* sockets of this process are the daemon's own */
} Stm32DoctorInput;

/* A report as Link1.Diagnose returns it (a{sv}, see dbus/org.stm32d.Link1.xml):
 * "healthy", "endpoint", "findings", "census" (or "census-error"),
 * "history-summary" and, if probed, "probe". Never floating. */
GVariant *stm32_doctor_report (const Stm32DoctorInput *input);

G_END_DECLS
