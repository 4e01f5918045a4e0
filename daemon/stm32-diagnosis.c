/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-diagnosis.h"

#include <unistd.h>

#include "stm32-deadline.h"
#include "stm32-doctor.h"
#include "stm32-probe.h"
#include "stm32-sock-census.h"

typedef struct
{
  Stm32Link *link;
  gboolean probe;
  guint probe_max;
  guint held_by_link;
  Stm32Deadline resolving; /* the lookup's: the caller's cancellation or ConnectTimeout */
  GList *addresses;        /* GInetAddress */
  char *resolve_error;
  GPtrArray *census;
  char *census_error;
  Stm32ProbeResult *probe_result;
} Diagnosis;

static void
diagnosis_free (Diagnosis *diagnosis)
{
  stm32_deadline_stop (&diagnosis->resolving);
  g_clear_object (&diagnosis->link);
  g_list_free_full (diagnosis->addresses, g_object_unref);
  g_free (diagnosis->resolve_error);
  g_clear_pointer (&diagnosis->census, g_ptr_array_unref);
  g_free (diagnosis->census_error);
  g_clear_pointer (&diagnosis->probe_result, stm32_probe_result_free);
  g_free (diagnosis);
}

static void
diagnosis_report (GTask *task)
{
  Diagnosis *diagnosis = g_task_get_task_data (task);
  g_autoptr (GPtrArray) history = stm32_link_dup_history (diagnosis->link);
  g_autofree char *local = NULL;
  Stm32DoctorInput input = {
    .config = stm32_link_get_config (diagnosis->link),
    .history = history,
    .census = diagnosis->census,
    .census_error = diagnosis->census_error,
    .probe = diagnosis->probe_result,
    .self_pid = (int) getpid (),
  };

  g_object_get (diagnosis->link, "local-address", &local, NULL);
  input.link_local_address = local;
  if (!g_task_return_error_if_cancelled (task))
    g_task_return_pointer (task, stm32_doctor_report (&input), (GDestroyNotify) g_variant_unref);
  g_object_unref (task);
}

static void
on_probed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Diagnosis *diagnosis = g_task_get_task_data (task);

  diagnosis->probe_result = stm32_probe_finish (result, NULL);
  diagnosis_report (task);
}

static void
diagnosis_probe (GTask *task)
{
  Diagnosis *diagnosis = g_task_get_task_data (task);
  const Stm32LinkConfig *config = stm32_link_get_config (diagnosis->link);
  g_autoptr (GSocketAddress) address = NULL;

  if (!diagnosis->probe || g_cancellable_is_cancelled (g_task_get_cancellable (task)))
    {
      diagnosis_report (task);
      return;
    }
  if (diagnosis->addresses == NULL)
    {
      /* Nothing to probe; the report says why. */
      diagnosis->probe_result =
          stm32_probe_result_new (diagnosis->probe_max, diagnosis->held_by_link);
      diagnosis->probe_result->error = g_strdup (diagnosis->resolve_error);
      diagnosis_report (task);
      return;
    }
  address = g_inet_socket_address_new (diagnosis->addresses->data, config->port);
  stm32_probe_async (address, config, diagnosis->probe_max, diagnosis->held_by_link,
                     g_task_get_cancellable (task), on_probed, task);
}

static void
on_census (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Diagnosis *diagnosis = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;

  diagnosis->census = stm32_sock_census_finish (result, &error);
  if (diagnosis->census == NULL)
    {
      diagnosis->census_error = g_strdup (error->message);
      g_message ("%s: socket census failed: %s", stm32_link_get_name (diagnosis->link),
                 error->message);
    }
  diagnosis_probe (task);
}

/* The census comes first: it shows the board's sockets as they were, before a probe. */
static void
diagnosis_census (GTask *task)
{
  Diagnosis *diagnosis = g_task_get_task_data (task);
  g_autoptr (GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);

  if (diagnosis->addresses == NULL)
    {
      diagnosis->census_error = g_strdup (diagnosis->resolve_error);
      diagnosis_probe (task);
      return;
    }
  for (GList *l = diagnosis->addresses; l != NULL; l = l->next)
    g_ptr_array_add (strings, g_inet_address_to_string (l->data));
  g_ptr_array_add (strings, NULL);
  stm32_sock_census_async ((const char *const *) strings->pdata,
                           stm32_link_get_config (diagnosis->link)->port,
                           g_task_get_cancellable (task), on_census, task);
}

static void
on_resolved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Diagnosis *diagnosis = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;

  diagnosis->addresses = g_resolver_lookup_by_name_finish (G_RESOLVER (source), result, &error);
  stm32_deadline_stop (&diagnosis->resolving);
  if (diagnosis->addresses == NULL)
    diagnosis->resolve_error = g_strdup_printf (
        "Cannot resolve %s: %s", stm32_link_get_config (diagnosis->link)->host, error->message);
  diagnosis_census (task);
}

void
stm32_diagnosis_run_async (Stm32Link *link, gboolean probe, guint probe_max,
                           GCancellable *cancellable, GAsyncReadyCallback callback,
                           gpointer user_data)
{
  GTask *task = g_task_new (link, cancellable, callback, user_data);
  Diagnosis *diagnosis = g_new0 (Diagnosis, 1);
  const Stm32LinkConfig *config = stm32_link_get_config (link);
  Stm32LinkState state = stm32_link_get_state (link);
  g_autoptr (GResolver) resolver = g_resolver_get_default ();

  g_task_set_source_tag (task, stm32_diagnosis_run_async);
  diagnosis->link = g_object_ref (link);
  diagnosis->probe = probe;
  diagnosis->probe_max = probe_max;
  diagnosis->held_by_link =
      state == STM32_LINK_STATE_CONNECTED || state == STM32_LINK_STATE_CLOSING ? 1 : 0;
  g_task_set_task_data (task, diagnosis, (GDestroyNotify) diagnosis_free);
  /* A name server that does not answer must not hold the report up longer
   * than a connect would. */
  stm32_deadline_start (&diagnosis->resolving, cancellable, config->connect_timeout);
  g_resolver_lookup_by_name_async (resolver, config->host, diagnosis->resolving.cancellable,
                                   on_resolved, task);
}

GVariant *
stm32_diagnosis_run_finish (Stm32Link *link, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, link), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
