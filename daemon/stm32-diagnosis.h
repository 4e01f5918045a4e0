/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

#include "stm32-link.h"

G_BEGIN_DECLS

/*
 * One diagnosis of a link (Link1.Diagnose): resolves the board's address,
 * takes the census of the PC's sockets towards it, probes it if asked
 * (stm32-probe.h), and hands it all with the link's history to the doctor
 * (stm32-doctor.h). Nothing here blocks: resolution and the probe are
 * asynchronous and bounded by the link's ConnectTimeout, CloseTimeout and
 * BusyWindow; the census runs in a worker thread.
 *
 * A census or probe that cannot run does not fail the diagnosis: the report
 * says why ("census-error", the probe's "error"). Only cancellation fails it.
 */
void stm32_diagnosis_run_async (Stm32Link *link, gboolean probe, guint probe_max,
                                GCancellable *cancellable, GAsyncReadyCallback callback,
                                gpointer user_data);
/* The report (a{sv}, see stm32_doctor_report()). */
GVariant *stm32_diagnosis_run_finish (Stm32Link *link, GAsyncResult *result, GError **error);

G_END_DECLS
