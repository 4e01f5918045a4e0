/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bounded send queue and its acknowledgement tracking (stm32-send-queue.h). */
#include "stm32-send-queue.h"

#include "stm32-defaults.h"

struct _Stm32SendRequest
{
  GBytes *wire;
  GTask *task; /* NULL once answered, or when no one waits */
  Stm32SendPhase phase;
  gboolean raw;     /* a raw stream's bytes: counted as bytes, not frames */
  gboolean counted; /* its bytes are in Stm32SendQueue.reserved */
  guint64 end;      /* once written: the connection's byte count at its last byte */
  gint64 started;   /* monotonic µs it started being written; 0 before */
};

struct _Stm32SendQueue
{
  gsize max_bytes;
  gsize reserved;
  GQueue waiting;     /* QUEUED, the head possibly WRITING; one reference each */
  GQueue unconfirmed; /* WRITTEN, awaiting the board's acknowledgement */
  Stm32AcknowledgedFunc acknowledged;
  Stm32ConfirmedFunc confirmed;
  gpointer user_data;
  guint awaited; /* requests in unconfirmed whose caller waits for their ACK */
  guint poll_timer;
  guint poll_interval; /* of poll_timer, while it is armed */
};

Stm32SendRequest *
stm32_send_request_ref (Stm32SendRequest *request)
{
  return g_rc_box_acquire (request);
}

static void
send_request_clear (Stm32SendRequest *request)
{
  g_bytes_unref (request->wire);
  g_clear_object (&request->task);
}

void
stm32_send_request_unref (Stm32SendRequest *request)
{
  g_rc_box_release_full (request, (GDestroyNotify) send_request_clear);
}

Stm32SendPhase
stm32_send_request_get_phase (const Stm32SendRequest *request)
{
  return request->phase;
}

gint64
stm32_send_request_get_started (const Stm32SendRequest *request)
{
  return request->started;
}

Stm32SendQueue *
stm32_send_queue_new (gsize max_bytes, Stm32AcknowledgedFunc acknowledged,
                      Stm32ConfirmedFunc confirmed, gpointer user_data)
{
  Stm32SendQueue *self = g_new0 (Stm32SendQueue, 1);

  self->max_bytes = max_bytes;
  self->acknowledged = acknowledged;
  self->confirmed = confirmed;
  self->user_data = user_data;
  g_queue_init (&self->waiting);
  g_queue_init (&self->unconfirmed);
  return self;
}

void
stm32_send_queue_free (Stm32SendQueue *self)
{
  g_clear_handle_id (&self->poll_timer, g_source_remove);
  g_queue_clear_full (&self->waiting, (GDestroyNotify) stm32_send_request_unref);
  g_queue_clear_full (&self->unconfirmed, (GDestroyNotify) stm32_send_request_unref);
  g_free (self);
}

gsize
stm32_send_queue_get_reserved (Stm32SendQueue *self)
{
  return self->reserved;
}

gboolean
stm32_send_queue_has_room (Stm32SendQueue *self, gsize size)
{
  return self->reserved + size <= self->max_bytes;
}

/* Its bytes no longer wait to be written: they free room in the queue. */
static void
send_queue_release (Stm32SendQueue *self, Stm32SendRequest *request)
{
  if (!request->counted)
    return;
  request->counted = FALSE;
  self->reserved -= g_bytes_get_size (request->wire);
}

Stm32SendRequest *
stm32_send_queue_reserve (Stm32SendQueue *self, GBytes *wire, GTask *task, gboolean raw)
{
  Stm32SendRequest *request = g_rc_box_new0 (Stm32SendRequest);

  request->wire = g_bytes_ref (wire);
  request->task = task ? g_object_ref (task) : NULL;
  request->raw = raw;
  request->phase = STM32_SEND_RESERVED;
  request->counted = TRUE;
  self->reserved += g_bytes_get_size (wire);
  return request;
}

void
stm32_send_queue_push (Stm32SendQueue *self, Stm32SendRequest *request)
{
  g_return_if_fail (request->phase == STM32_SEND_RESERVED);
  request->phase = STM32_SEND_QUEUED;
  g_queue_push_tail (&self->waiting, stm32_send_request_ref (request));
}

/* Sent: its caller, if one waits, is told so. g_task_return_*() takes no
 * reference, so the request's own goes with the task. */
static void
send_request_answer (Stm32SendRequest *request)
{
  g_autoptr (GTask) task = g_steal_pointer (&request->task);

  if (task)
    g_task_return_boolean (task, TRUE);
}

/* Leaves the queue without its last byte ever reaching the kernel. */
static void
send_queue_drop (Stm32SendQueue *self, Stm32SendRequest *request, GError *error)
{
  g_autoptr (GTask) task = g_steal_pointer (&request->task);

  send_queue_release (self, request);
  request->phase = STM32_SEND_UNSENT;
  if (task && error)
    g_task_return_error (task, error);
  else
    g_clear_error (&error);
}

void
stm32_send_queue_withdraw (Stm32SendQueue *self, Stm32SendRequest *request)
{
  if (request->phase == STM32_SEND_RESERVED)
    send_queue_drop (self, request, NULL);
  else if (request->phase == STM32_SEND_QUEUED && g_queue_remove (&self->waiting, request))
    {
      send_queue_drop (self, request, NULL);
      stm32_send_request_unref (request);
    }
}

gboolean
stm32_send_queue_is_writing (Stm32SendQueue *self)
{
  Stm32SendRequest *head = g_queue_peek_head (&self->waiting);

  return head != NULL && head->phase == STM32_SEND_WRITING;
}

gboolean
stm32_send_queue_is_empty (Stm32SendQueue *self)
{
  return g_queue_is_empty (&self->waiting);
}

static gboolean
send_request_cancelled (const Stm32SendRequest *request)
{
  return request->task != NULL &&
         g_cancellable_is_cancelled (g_task_get_cancellable (request->task));
}

void
stm32_send_queue_drop_cancelled (Stm32SendQueue *self)
{
  Stm32SendRequest *head;

  /* A frame cancelled before it started is dropped; one being written is finished. */
  while ((head = g_queue_peek_head (&self->waiting)) != NULL && head->phase == STM32_SEND_QUEUED &&
         send_request_cancelled (head))
    {
      g_autoptr (Stm32SendRequest) request = g_queue_pop_head (&self->waiting);
      g_autoptr (GTask) task = g_steal_pointer (&request->task);

      send_queue_drop (self, request, NULL);
      g_task_return_error_if_cancelled (task);
    }
}

GBytes *
stm32_send_queue_start_next (Stm32SendQueue *self)
{
  GOutputVector vector;

  if (stm32_send_queue_start_batch (self, &vector, 1, 0) == 0)
    return NULL;
  return ((Stm32SendRequest *) g_queue_peek_head (&self->waiting))->wire;
}

guint
stm32_send_queue_start_batch (Stm32SendQueue *self, GOutputVector *vectors, guint max_vectors,
                              gsize max_bytes)
{
  gint64 now = 0;
  gsize bytes = 0;
  guint n = 0;

  for (GList *l = self->waiting.head; l != NULL && n < max_vectors; l = l->next)
    {
      Stm32SendRequest *request = l->data;
      gsize size = g_bytes_get_size (request->wire);

      /* The head cancelled was dropped by our caller; one further back is
       * dropped once it reaches the head. */
      if (request->phase != STM32_SEND_QUEUED || (n > 0 && send_request_cancelled (request)) ||
          (n > 0 && bytes + size > max_bytes))
        break;
      if (now == 0)
        now = g_get_monotonic_time ();
      request->phase = STM32_SEND_WRITING;
      request->started = now;
      vectors[n].buffer = g_bytes_get_data (request->wire, NULL);
      vectors[n].size = size;
      bytes += size;
      n++;
    }
  return n;
}

/* Written whole: its room is given back, and it waits for the board's ACK. */
static void
send_queue_mark_written (Stm32SendQueue *self, guint64 written_total)
{
  g_autoptr (Stm32SendRequest) request = g_queue_pop_head (&self->waiting);

  g_return_if_fail (request != NULL && request->phase == STM32_SEND_WRITING);
  send_queue_release (self, request);
  request->phase = STM32_SEND_WRITTEN;
  request->end = written_total;
  /* A raw stream is a byte stream with a socket's semantics: written is done. */
  if (request->task && request->raw)
    send_request_answer (request);
  if (request->task != NULL)
    self->awaited++;
  g_queue_push_tail (&self->unconfirmed, g_steal_pointer (&request));
}

/* Leaves unconfirmed, to be answered by our caller. */
static Stm32SendRequest *
send_queue_pop_unconfirmed (Stm32SendQueue *self)
{
  Stm32SendRequest *request = g_queue_pop_head (&self->unconfirmed);

  if (request != NULL && request->task != NULL)
    self->awaited--;
  return request;
}

static gboolean on_poll_timer (gpointer user_data);
static gboolean send_queue_confirm (Stm32SendQueue *self);

/* Looks again within @interval ms if something still waits for the board's
 * ACK: sooner than a timer already armed, never later. */
static void
send_queue_poll (Stm32SendQueue *self, guint interval)
{
  if (g_queue_is_empty (&self->unconfirmed) ||
      (self->poll_timer != 0 && self->poll_interval <= interval))
    return;
  g_clear_handle_id (&self->poll_timer, g_source_remove);
  self->poll_interval = interval;
  self->poll_timer = g_timeout_add (interval, on_poll_timer, self);
}

static gboolean
on_poll_timer (gpointer user_data)
{
  Stm32SendQueue *self = user_data;
  guint interval = self->poll_interval;

  self->poll_timer = 0;
  /* Linux acknowledges at once or within its delayed-ACK time (40 ms),
   * lwIP within its 250 ms fast timer; a reply carries the ACK sooner and is
   * checked on arrival. Back off so a slow ACK costs few wake-ups, and
   * start again from 1 ms once one came. What no caller waits for (a
   * transaction's request) is only counted: the slowest pace does. */
  if (send_queue_confirm (self))
    interval = 1;
  send_queue_poll (self, self->awaited > 0 ? MIN (interval * 2, STM32_CONFIRM_POLL_MAX_MS)
                                           : STM32_CONFIRM_POLL_MAX_MS);
  return G_SOURCE_REMOVE;
}

void
stm32_send_queue_written (Stm32SendQueue *self, guint64 written_total)
{
  send_queue_mark_written (self, written_total);
  stm32_send_queue_confirm (self);
  send_queue_poll (self, 1);
}

GBytes *
stm32_send_queue_batch_taken (Stm32SendQueue *self, gsize taken, guint64 written_total,
                              gsize *offset)
{
  guint64 end = written_total - taken;
  Stm32SendRequest *partial = NULL;
  gboolean awaited = FALSE;
  guint whole = 0;

  /* Every phase is right before any caller hears of it (a raw request's is
   * answered when written). */
  for (GList *l = self->waiting.head; l != NULL; l = l->next)
    {
      Stm32SendRequest *request = l->data;
      gsize size = g_bytes_get_size (request->wire);

      if (request->phase != STM32_SEND_WRITING)
        break;
      if (partial != NULL)
        {
          /* After the one the kernel stopped in: not started after all. */
          request->phase = STM32_SEND_QUEUED;
          request->started = 0;
        }
      else if (taken >= size)
        {
          taken -= size;
          whole++;
        }
      else
        {
          partial = request;
          *offset = taken;
        }
    }
  for (guint i = 0; i < whole; i++)
    {
      Stm32SendRequest *head = g_queue_peek_head (&self->waiting);

      if (head == NULL || head == partial || head->phase != STM32_SEND_WRITING)
        break;
      end += g_bytes_get_size (head->wire);
      awaited |= head->task != NULL && !head->raw;
      send_queue_mark_written (self, end);
    }
  /* One look at the socket for the whole batch, if a caller waits for its
   * acknowledgement. A transaction's request, whose caller waits for the
   * reply instead, is only counted: by the next look for a Send, or by a
   * timer at the slowest pace, armed once for many transactions. Looking
   * when it was written and again when its reply came, with a 1 ms timer
   * armed and removed in between, cost each transaction two SIOCOUTQs and
   * a timer source. */
  if (whole > 0 && awaited)
    {
      send_queue_confirm (self);
      send_queue_poll (self, 1);
    }
  else if (whole > 0)
    send_queue_poll (self, STM32_CONFIRM_POLL_MAX_MS);
  return partial != NULL ? partial->wire : NULL;
}

void
stm32_send_queue_unsent (Stm32SendQueue *self, GError *error)
{
  g_autoptr (Stm32SendRequest) request = g_queue_pop_head (&self->waiting);

  g_return_if_fail (request != NULL && request->phase == STM32_SEND_WRITING);
  send_queue_drop (self, request, error);
}

/* Whether something was confirmed. */
static gboolean
send_queue_confirm (Stm32SendQueue *self)
{
  GQueue confirmed = G_QUEUE_INIT;
  Stm32SendRequest *head;
  guint64 acknowledged, bytes = 0;
  guint frames = 0;

  if (g_queue_is_empty (&self->unconfirmed) || !self->acknowledged (self->user_data, &acknowledged))
    return FALSE;
  /* Taken out first: a caller answered below may send again, and a confirm
   * of its own must not count these twice. */
  while ((head = g_queue_peek_head (&self->unconfirmed)) != NULL && head->end <= acknowledged)
    {
      g_queue_push_tail (&confirmed, send_queue_pop_unconfirmed (self));
      bytes += g_bytes_get_size (head->wire);
      frames += head->raw ? 0 : 1;
    }
  /* All confirmed (a reply carried the ACK): no wake-up left to spend. */
  if (g_queue_is_empty (&self->unconfirmed))
    g_clear_handle_id (&self->poll_timer, g_source_remove);
  if (g_queue_is_empty (&confirmed))
    return FALSE;
  /* Counted once for the lot, before any of their callers hears. */
  self->confirmed (self->user_data, bytes, frames);
  while ((head = g_queue_pop_head (&confirmed)) != NULL)
    {
      send_request_answer (head);
      stm32_send_request_unref (head);
    }
  return TRUE;
}

void
stm32_send_queue_confirm (Stm32SendQueue *self)
{
  send_queue_confirm (self);
}

gboolean
stm32_send_queue_awaits_acknowledgement (Stm32SendQueue *self)
{
  return self->awaited > 0;
}

void
stm32_send_queue_fail_unconfirmed (Stm32SendQueue *self, const GError *end_error)
{
  stm32_send_queue_confirm (self);
  while (!g_queue_is_empty (&self->unconfirmed))
    {
      g_autoptr (Stm32SendRequest) request = send_queue_pop_unconfirmed (self);

      g_autoptr (GTask) task = g_steal_pointer (&request->task);

      if (task)
        g_task_return_new_error (task, end_error->domain, end_error->code,
                                 "Not delivered: the board did not acknowledge the frame before "
                                 "the connection ended: %s",
                                 end_error->message);
    }
  g_clear_handle_id (&self->poll_timer, g_source_remove);
}

void
stm32_send_queue_fail_queued (Stm32SendQueue *self, const GError *error, gboolean including_writing)
{
  GQueue requests = self->waiting;
  Stm32SendRequest *head = g_queue_peek_head (&requests);

  g_queue_init (&self->waiting);
  /* The frame being written is answered by its write: the kernel may have
   * taken all of it before we learnt that the connection ended. */
  if (!including_writing && head != NULL && head->phase == STM32_SEND_WRITING)
    g_queue_push_tail (&self->waiting, g_queue_pop_head (&requests));
  while (!g_queue_is_empty (&requests))
    {
      g_autoptr (Stm32SendRequest) request = g_queue_pop_head (&requests);

      send_queue_drop (self, request, g_error_copy (error));
    }
}
