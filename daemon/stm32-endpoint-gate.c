/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-endpoint-gate.h"

#include <unistd.h>

#include "stm32-sock-census.h"

/* How often the census looks again while another stm32d holds the board: its
 * close ends with a RST at most CloseTimeout after it began. */
#define GATE_POLL_MS 100

#define GATE_LOG(link, level, fmt, ...)                                                            \
  g_log_structured (G_LOG_DOMAIN, level, "STM32D_LINK", stm32_link_get_name (link), "MESSAGE",     \
                    "%s: " fmt, stm32_link_get_name (link), ##__VA_ARGS__)

struct _Stm32EndpointGate
{
  GObject parent_instance;

  GPtrArray *retiring; /* Stm32Link, closing until their fd is gone */
  GPtrArray *waits;    /* GateWait, links held until their endpoint is free */
  GPtrArray *drains;   /* GTask, finished when nothing is retiring */
  char *command;       /* our /proc/self/comm: how another stm32d is known */
  /* Waits that want the census. Links admitted together (all of them at
   * start, every changed one at a reload) share one: each census reads every
   * process's fds, so one per link would cost links² at start-up. */
  GPtrArray *census_queue; /* GateWait */
  guint census_idle;
  gboolean census_running;
  GCancellable *cancellable; /* the census under way; cancelled in dispose */
};

G_DEFINE_FINAL_TYPE (Stm32EndpointGate, stm32_endpoint_gate, G_TYPE_OBJECT)

/* One held link. Resolving and the census call back after the wait may have
 * ended (GIO always calls back), so each holds a reference; @gate is NULL
 * once the wait ended. */
typedef struct
{
  Stm32EndpointGate *gate;
  Stm32Link *link;
  guint bound_ms;
  gint64 started; /* monotonic µs */
  GCancellable *cancellable;
  guint deadline_timer;
  guint poll_timer;
  gboolean busy;     /* resolving or counting */
  gboolean resolved; /* @addresses is what the name gave, NULL if nothing */
  GStrv addresses;
  GStrv endpoints; /* @addresses with the port, as the census writes them */
  char *holder;    /* what held the board at the last look, for the log */
} GateWait;

static GateWait *
gate_wait_ref (GateWait *wait)
{
  return g_atomic_rc_box_acquire (wait);
}

static void
gate_wait_clear (GateWait *wait)
{
  g_clear_object (&wait->link);
  g_clear_object (&wait->cancellable);
  g_strfreev (wait->addresses);
  g_strfreev (wait->endpoints);
  g_free (wait->holder);
}

static void
gate_wait_unref (GateWait *wait)
{
  g_atomic_rc_box_release_full (wait, (GDestroyNotify) gate_wait_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GateWait, gate_wait_unref)

static void gate_wait_check (GateWait *wait);

/* The wait ends: the link may connect, if @release (not when the gate, and
 * with it the daemon, goes away). */
static void
gate_wait_end (GateWait *wait, gboolean release)
{
  Stm32EndpointGate *gate = wait->gate;

  if (gate == NULL)
    return;
  wait->gate = NULL;
  g_cancellable_cancel (wait->cancellable);
  g_clear_handle_id (&wait->deadline_timer, g_source_remove);
  g_clear_handle_id (&wait->poll_timer, g_source_remove);
  if (release)
    stm32_link_release (wait->link);
  /* Last: it may drop the array's reference on @wait. */
  g_ptr_array_remove (gate->waits, wait);
}

static void
gate_wait_done (GateWait *wait)
{
  if (wait->holder != NULL)
    GATE_LOG (wait->link, G_LOG_LEVEL_MESSAGE,
              "%s let go of the board after %" G_GINT64_FORMAT " ms: connecting", wait->holder,
              (g_get_monotonic_time () - wait->started) / 1000);
  gate_wait_end (wait, TRUE);
}

/* The wait ran out: better a second socket than a link that never comes up. */
static gboolean
on_deadline (gpointer user_data)
{
  GateWait *wait = user_data;

  wait->deadline_timer = 0;
  if (wait->holder != NULL)
    GATE_LOG (wait->link, G_LOG_LEVEL_WARNING,
              "%s still holds a socket to %s:%u after %u ms (the longest CloseTimeout and a "
              "grace): connecting anyway",
              wait->holder, stm32_link_get_config (wait->link)->host,
              stm32_link_get_config (wait->link)->port, wait->bound_ms);
  else
    GATE_LOG (wait->link, G_LOG_LEVEL_WARNING,
              "could not tell within %u ms whether another stm32d holds %s:%u (the name did not "
              "resolve, or the socket census did not answer): connecting anyway",
              wait->bound_ms, stm32_link_get_config (wait->link)->host,
              stm32_link_get_config (wait->link)->port);
  gate_wait_end (wait, TRUE);
  return G_SOURCE_REMOVE;
}

static void
gate_wait_set_holder (GateWait *wait, char *holder)
{
  if (g_strcmp0 (wait->holder, holder) != 0)
    GATE_LOG (wait->link, G_LOG_LEVEL_MESSAGE,
              "%s still holds a socket to %s:%u: waiting for it to close before connecting", holder,
              stm32_link_get_config (wait->link)->host, stm32_link_get_config (wait->link)->port);
  g_free (wait->holder);
  wait->holder = holder;
}

/* ---- this daemon's own links ---------------------------------------------------- */

static Stm32Link *
gate_find_retiring (Stm32EndpointGate *self, Stm32Link *link)
{
  for (guint i = 0; i < self->retiring->len; i++)
    {
      Stm32Link *old = self->retiring->pdata[i];

      if (stm32_link_config_same_endpoint (stm32_link_get_config (old),
                                           stm32_link_get_config (link)))
        return old;
    }
  return NULL;
}

/* ---- other stm32d processes: the census ----------------------------------------- */

/* The census's sockets of other stm32d processes, by the board endpoint
 * each is to: remote address → 1 + its index in @entries (the first such
 * socket). Ours are left out: our own links are known without the census.
 * Made once per census, so each wait it serves looks up its own endpoints
 * rather than walking every socket: at start one census serves every link,
 * and after a restart each board still has our old socket in TIME_WAIT,
 * which made the walk links × sockets. */
static GHashTable *
gate_index_other_daemons (Stm32EndpointGate *self, GPtrArray *entries)
{
  GHashTable *others = g_hash_table_new (g_str_hash, g_str_equal);
  int pid = (int) getpid ();

  for (guint i = 0; i < entries->len; i++)
    {
      const Stm32SockEntry *entry = entries->pdata[i];

      if (entry->pid != 0 && entry->pid != pid && self->command != NULL &&
          g_strcmp0 (entry->command, self->command) == 0 &&
          !g_hash_table_contains (others, entry->remote_address))
        g_hash_table_insert (others, entry->remote_address, GUINT_TO_POINTER (i + 1));
    }
  return others;
}

/* Another stm32d's socket to the board, as text for the log; NULL if none.
 * The first such in the census, as @others (gate_index_other_daemons) has it. */
static char *
gate_find_other_daemon (GateWait *wait, GPtrArray *entries, GHashTable *others)
{
  guint first = 0;
  const Stm32SockEntry *entry;

  for (guint i = 0; others != NULL && wait->endpoints[i] != NULL; i++)
    {
      guint index = GPOINTER_TO_UINT (g_hash_table_lookup (others, wait->endpoints[i]));

      if (index != 0 && (first == 0 || index < first))
        first = index;
    }
  if (first == 0)
    return NULL;
  entry = entries->pdata[first - 1];
  return g_strdup_printf ("%s (pid %d, %s)", entry->command, entry->pid,
                          stm32_sock_state_name (entry->state));
}

static gboolean
on_poll (gpointer user_data)
{
  GateWait *wait = user_data;

  wait->poll_timer = 0;
  gate_wait_check (wait);
  return G_SOURCE_REMOVE;
}

/* One census's answer, for one of the waits it served; @others as
 * gate_index_other_daemons() made it from @entries. */
static void
gate_wait_census_done (GateWait *wait, GPtrArray *entries, GHashTable *others, const GError *error)
{
  char *holder;

  wait->busy = FALSE;
  if (wait->gate == NULL)
    return;
  if (entries == NULL)
    {
      /* Nothing to wait for that we could see (no sock_diag here). */
      GATE_LOG (wait->link, G_LOG_LEVEL_MESSAGE,
                "cannot see whether another stm32d holds the board: %s", error->message);
      gate_wait_done (wait);
      return;
    }
  holder = gate_find_other_daemon (wait, entries, others);
  if (holder == NULL)
    {
      gate_wait_done (wait);
      return;
    }
  gate_wait_set_holder (wait, holder);
  wait->poll_timer = g_timeout_add (GATE_POLL_MS, on_poll, wait);
}

static void gate_census_schedule (Stm32EndpointGate *self);

/* The waits one census serves, and the gate, which may be gone by the time
 * it answers (GIO always calls back). */
typedef struct
{
  GWeakRef gate;
  GPtrArray *waits; /* GateWait */
} CensusBatch;

static void
census_batch_free (CensusBatch *batch)
{
  g_weak_ref_clear (&batch->gate);
  g_ptr_array_unref (batch->waits);
  g_free (batch);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CensusBatch, census_batch_free)

static void
on_census (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CensusBatch) batch = user_data;
  g_autoptr (Stm32EndpointGate) gate = g_weak_ref_get (&batch->gate);
  g_autoptr (GPtrArray) entries = NULL;
  g_autoptr (GHashTable) others = NULL;
  g_autoptr (GError) error = NULL;

  entries = stm32_sock_census_finish (result, &error);
  if (gate != NULL)
    gate->census_running = FALSE;
  if (gate != NULL && entries != NULL)
    others = gate_index_other_daemons (gate, entries);
  for (guint i = 0; i < batch->waits->len; i++)
    gate_wait_census_done (batch->waits->pdata[i], entries, others, error);
  /* Waits that asked while this census ran get the next one. */
  if (gate != NULL)
    gate_census_schedule (gate);
}

/* Every waiting link's endpoints in one census. */
static gboolean
on_census_idle (gpointer user_data)
{
  Stm32EndpointGate *self = user_data;
  g_autoptr (GHashTable) addresses = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GArray) ports = g_array_new (FALSE, FALSE, sizeof (guint16));
  g_autoptr (GHashTable) seen_ports = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_autofree const char **address_list = NULL;
  CensusBatch *batch;

  self->census_idle = 0;
  batch = g_new0 (CensusBatch, 1);
  g_weak_ref_init (&batch->gate, self);
  batch->waits = g_steal_pointer (&self->census_queue);
  self->census_queue = g_ptr_array_new_with_free_func ((GDestroyNotify) gate_wait_unref);
  for (guint i = 0; i < batch->waits->len; i++)
    {
      GateWait *wait = batch->waits->pdata[i];
      guint16 port = stm32_link_get_config (wait->link)->port;

      for (guint j = 0; wait->addresses[j] != NULL; j++)
        g_hash_table_add (addresses, wait->addresses[j]);
      if (g_hash_table_add (seen_ports, GUINT_TO_POINTER (port)))
        g_array_append_val (ports, port);
    }
  address_list = (const char **) g_hash_table_get_keys_as_array (addresses, NULL);
  self->census_running = TRUE;
  stm32_sock_census_ports_async (address_list, (const guint16 *) ports->data, ports->len,
                                 self->cancellable, on_census, batch);
  return G_SOURCE_REMOVE;
}

/* The census starts once this main-loop turn has admitted every link it
 * will, and never two at once. */
static void
gate_census_schedule (Stm32EndpointGate *self)
{
  if (self->census_queue->len == 0 || self->census_running || self->census_idle != 0)
    return;
  self->census_idle = g_idle_add (on_census_idle, self);
}

static void
gate_census_request (Stm32EndpointGate *self, GateWait *wait)
{
  if (wait->endpoints == NULL)
    {
      guint16 port = stm32_link_get_config (wait->link)->port;
      g_autoptr (GPtrArray) endpoints = g_ptr_array_new ();

      for (guint i = 0; wait->addresses[i] != NULL; i++)
        {
          g_autoptr (GInetAddress) address = g_inet_address_new_from_string (wait->addresses[i]);

          g_ptr_array_add (endpoints, stm32_sock_format_address (address, port));
        }
      g_ptr_array_add (endpoints, NULL);
      wait->endpoints = (GStrv) g_ptr_array_free (g_steal_pointer (&endpoints), FALSE);
    }
  g_ptr_array_add (self->census_queue, gate_wait_ref (wait));
  gate_census_schedule (self);
}

static void
on_resolved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GateWait) wait = user_data;
  g_autoptr (GError) error = NULL;
  GList *addresses = g_resolver_lookup_by_name_finish (G_RESOLVER (source), result, &error);
  g_autoptr (GPtrArray) strings = g_ptr_array_new ();

  wait->busy = FALSE;
  for (GList *l = addresses; l != NULL; l = l->next)
    g_ptr_array_add (strings, g_inet_address_to_string (l->data));
  g_ptr_array_add (strings, NULL);
  g_resolver_free_addresses (addresses);
  wait->addresses = (GStrv) g_ptr_array_free (g_steal_pointer (&strings), FALSE);
  wait->resolved = TRUE;
  if (wait->gate == NULL)
    return;
  /* The connect will say why the name does not resolve. */
  if (wait->addresses[0] == NULL)
    {
      gate_wait_done (wait);
      return;
    }
  gate_wait_check (wait);
}

/* Looks again, unless a look is under way: the links this daemon is closing
 * first (their end is an event), then the census. */
static void
gate_wait_check (GateWait *wait)
{
  const Stm32LinkConfig *config = stm32_link_get_config (wait->link);
  Stm32Link *old;

  if (wait->gate == NULL || wait->busy || wait->poll_timer != 0)
    return;
  old = gate_find_retiring (wait->gate, wait->link);
  if (old != NULL)
    {
      g_autofree char *holder = g_strdup_printf ("link %s", stm32_link_get_name (old));

      gate_wait_set_holder (wait, g_steal_pointer (&holder));
      return;
    }
  wait->busy = TRUE;
  if (!wait->resolved)
    {
      g_autoptr (GResolver) resolver = g_resolver_get_default ();

      g_resolver_lookup_by_name_async (resolver, config->host, wait->cancellable, on_resolved,
                                       gate_wait_ref (wait));
      return;
    }
  gate_census_request (wait->gate, wait);
}

void
stm32_endpoint_gate_admit (Stm32EndpointGate *self, Stm32Link *link, guint bound_ms)
{
  GateWait *wait;

  g_return_if_fail (STM32_IS_ENDPOINT_GATE (self));
  g_return_if_fail (STM32_IS_LINK (link));

  wait = g_atomic_rc_box_new0 (GateWait);
  wait->gate = self;
  wait->link = g_object_ref (link);
  wait->bound_ms = bound_ms;
  wait->started = g_get_monotonic_time ();
  wait->cancellable = g_cancellable_new ();
  wait->deadline_timer = g_timeout_add (bound_ms, on_deadline, wait);
  stm32_link_hold (link);
  g_ptr_array_add (self->waits, wait);
  gate_wait_check (wait);
}

/* ---- retiring -------------------------------------------------------------------- */

static void
gate_drains_maybe_finish (Stm32EndpointGate *self)
{
  g_autoptr (GPtrArray) drains = NULL;

  if (self->retiring->len > 0 || self->drains->len == 0)
    return;
  drains = g_steal_pointer (&self->drains);
  self->drains = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < drains->len; i++)
    g_task_return_boolean (drains->pdata[i], TRUE);
}

static void
on_retired (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (Stm32EndpointGate) self = user_data;
  Stm32Link *link = STM32_LINK (source);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) waits = NULL;

  if (!stm32_link_disconnect_finish (link, result, &error))
    g_warning ("Closing link %s: %s", stm32_link_get_name (link), error->message);
  GATE_LOG (link, G_LOG_LEVEL_DEBUG, "closed, gone");
  g_ptr_array_remove (self->retiring, link);
  /* A copy: a wait that ends leaves the array. */
  waits = g_ptr_array_new_with_free_func ((GDestroyNotify) gate_wait_unref);
  for (guint i = 0; i < self->waits->len; i++)
    g_ptr_array_add (waits, gate_wait_ref (self->waits->pdata[i]));
  for (guint i = 0; i < waits->len; i++)
    gate_wait_check (waits->pdata[i]);
  gate_drains_maybe_finish (self);
}

void
stm32_endpoint_gate_retire (Stm32EndpointGate *self, Stm32Link *link)
{
  g_return_if_fail (STM32_IS_ENDPOINT_GATE (self));
  g_return_if_fail (STM32_IS_LINK (link));

  g_ptr_array_add (self->retiring, g_object_ref (link));
  stm32_link_disconnect_async (link, NULL, on_retired, g_object_ref (self));
  /* After the Disconnect, which gave a held start up: the release starts nothing. */
  for (guint i = 0; i < self->waits->len; i++)
    {
      GateWait *wait = self->waits->pdata[i];

      if (wait->link == link)
        {
          gate_wait_end (wait, TRUE);
          break;
        }
    }
}

guint
stm32_endpoint_gate_get_max_close_timeout (Stm32EndpointGate *self)
{
  guint longest = 0;

  g_return_val_if_fail (STM32_IS_ENDPOINT_GATE (self), 0);
  for (guint i = 0; i < self->retiring->len; i++)
    longest = MAX (longest, stm32_link_get_config (self->retiring->pdata[i])->close_timeout);
  return longest;
}

void
stm32_endpoint_gate_drain_async (Stm32EndpointGate *self, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_return_if_fail (STM32_IS_ENDPOINT_GATE (self));
  g_task_set_source_tag (task, stm32_endpoint_gate_drain_async);
  g_ptr_array_add (self->drains, g_steal_pointer (&task));
  gate_drains_maybe_finish (self);
}

gboolean
stm32_endpoint_gate_drain_finish (Stm32EndpointGate *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- object ---------------------------------------------------------------------- */

Stm32EndpointGate *
stm32_endpoint_gate_new (void)
{
  return g_object_new (STM32_TYPE_ENDPOINT_GATE, NULL);
}

static void
stm32_endpoint_gate_dispose (GObject *object)
{
  Stm32EndpointGate *self = STM32_ENDPOINT_GATE (object);

  while (self->waits != NULL && self->waits->len > 0)
    gate_wait_end (self->waits->pdata[0], FALSE);
  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->census_idle, g_source_remove);
  if (self->census_queue != NULL)
    g_ptr_array_set_size (self->census_queue, 0);
  G_OBJECT_CLASS (stm32_endpoint_gate_parent_class)->dispose (object);
}

static void
stm32_endpoint_gate_finalize (GObject *object)
{
  Stm32EndpointGate *self = STM32_ENDPOINT_GATE (object);

  g_clear_pointer (&self->waits, g_ptr_array_unref);
  g_clear_pointer (&self->retiring, g_ptr_array_unref);
  g_clear_pointer (&self->drains, g_ptr_array_unref);
  g_clear_pointer (&self->census_queue, g_ptr_array_unref);
  g_clear_object (&self->cancellable);
  g_free (self->command);
  G_OBJECT_CLASS (stm32_endpoint_gate_parent_class)->finalize (object);
}

static void
stm32_endpoint_gate_class_init (Stm32EndpointGateClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = stm32_endpoint_gate_dispose;
  G_OBJECT_CLASS (klass)->finalize = stm32_endpoint_gate_finalize;
}

static void
stm32_endpoint_gate_init (Stm32EndpointGate *self)
{
  g_autofree char *comm = NULL;

  self->retiring = g_ptr_array_new_with_free_func (g_object_unref);
  self->waits = g_ptr_array_new_with_free_func ((GDestroyNotify) gate_wait_unref);
  self->drains = g_ptr_array_new_with_free_func (g_object_unref);
  self->census_queue = g_ptr_array_new_with_free_func ((GDestroyNotify) gate_wait_unref);
  self->cancellable = g_cancellable_new ();
  /* The name the census reads for every process, ours included. */
  if (g_file_get_contents ("/proc/self/comm", &comm, NULL, NULL))
    self->command = g_strdup (g_strchomp (comm));
}
