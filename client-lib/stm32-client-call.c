/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How the library's calls to stm32d go: bounded by the client's call-timeout
 * (an alarm bounds the _sync construction, whose calls GDBus makes with its
 * own timeout), and failing with the errors callers see (the daemon's code
 * without the remote prefix, no answer, or why the daemon is not there). */
#include "stm32-client.h"

#include "stm32-client-private.h"

void
stm32_client_set_not_running_error (GError **error)
{
  g_set_error_literal (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING,
                       "stm32d is not running; start it with “systemctl start stm32d”");
}

static gboolean
is_no_owner_error (const GError *error)
{
  /* Calls on a daemon's objects go to its unique name, which is gone for good
   * once that daemon exits, even if another one takes org.stm32d. */
  return g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
         g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER);
}

GError *
stm32_client_no_answer_error (guint timeout_ms)
{
  return g_error_new (STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_ANSWER,
                      "stm32d did not answer within %u ms", timeout_ms);
}

void
stm32_client_proxy_set_call_timeout (GDBusProxy *proxy, guint timeout_ms)
{
  g_dbus_proxy_set_default_timeout (proxy, (int) MIN (timeout_ms, (guint) G_MAXINT));
}

guint
stm32_client_call_timeout_plus (guint call_timeout, guint extra_ms)
{
  return (guint) MIN ((guint64) call_timeout + extra_ms, (guint64) G_MAXINT);
}

GError *
stm32_client_call_error (GError *error, guint timeout_ms, Stm32ClientGoneFunc set_gone_error,
                         gpointer user_data)
{
  GError *gone = NULL;

  /* GDBus's own timeout: the daemon's errors are STM32_ERROR codes. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    {
      g_error_free (error);
      return stm32_client_no_answer_error (timeout_ms);
    }
  if (!is_no_owner_error (error))
    {
      g_dbus_error_strip_remote_error (error);
      return error;
    }
  g_error_free (error);
  set_gone_error (user_data, &gone);
  return gone;
}

/* ---- the alarm ------------------------------------------------------------------------ */

struct _Stm32ClientAlarm
{
  GMutex lock;
  GCond stopped_cond;
  gboolean stopped;
  gboolean fired;
  gint64 deadline; /* monotonic, µs */
  GCancellable *cancellable;
  GThread *thread;
};

static gpointer
alarm_run (gpointer user_data)
{
  Stm32ClientAlarm *alarm = user_data;

  g_mutex_lock (&alarm->lock);
  while (!alarm->stopped && g_cond_wait_until (&alarm->stopped_cond, &alarm->lock, alarm->deadline))
    ;
  alarm->fired = !alarm->stopped;
  g_mutex_unlock (&alarm->lock);
  if (alarm->fired)
    g_cancellable_cancel (alarm->cancellable);
  return NULL;
}

Stm32ClientAlarm *
stm32_client_alarm_start (GCancellable *cancellable, guint timeout_ms)
{
  Stm32ClientAlarm *alarm = g_new0 (Stm32ClientAlarm, 1);

  g_mutex_init (&alarm->lock);
  g_cond_init (&alarm->stopped_cond);
  alarm->deadline = g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
  alarm->cancellable = g_object_ref (cancellable);
  alarm->thread = g_thread_new ("stm32-client-alarm", alarm_run, alarm);
  return alarm;
}

gboolean
stm32_client_alarm_stop (Stm32ClientAlarm *alarm)
{
  gboolean fired;

  g_mutex_lock (&alarm->lock);
  alarm->stopped = TRUE;
  g_cond_signal (&alarm->stopped_cond);
  g_mutex_unlock (&alarm->lock);
  g_thread_join (alarm->thread);
  fired = alarm->fired;
  g_object_unref (alarm->cancellable);
  g_cond_clear (&alarm->stopped_cond);
  g_mutex_clear (&alarm->lock);
  g_free (alarm);
  return fired;
}
