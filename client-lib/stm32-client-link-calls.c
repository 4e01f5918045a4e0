/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The methods of Stm32ClientLink: each org.stm32d.Link1 method as an async and
 * a _sync function over the generated stm32_dbus_link1_call_*(), failing at
 * once on a link the daemon dropped, with errors as the library reports them. */
#include "stm32-client-link.h"

#include <gio/gunixfdlist.h>
#include <glib/gstdio.h>

#include "stm32-client-private.h"
#include "stm32-client.h"
#include "stm32-error.h"
#include "stm32-names.h"

/* Passes on @ok, what a _sync call returned, with the error it set as callers see it. */
static gboolean
link_sync_done (Stm32ClientLink *self, gboolean ok, GError **error)
{
  if (!ok && error != NULL)
    *error = stm32_client_link_call_error (self, *error, stm32_client_link_get_call_timeout (self));
  return ok;
}

/* A task for @source_tag, or NULL once it has failed because the link is gone. */
static GTask *
link_task_start (Stm32ClientLink *self, gpointer source_tag, GCancellable *cancellable,
                 GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, source_tag);
  if (stm32_client_link_may_call (self, &error))
    return g_steal_pointer (&task);
  g_task_return_error (task, error);
  return NULL;
}

/* Ends @task with the error (taken) of its call, as callers see it. */
static void
link_task_return_error (GTask *task, GError *error)
{
  Stm32ClientLink *self = g_task_get_source_object (task);

  g_task_return_error (
      task, stm32_client_link_call_error (self, error, stm32_client_link_get_call_timeout (self)));
}

/* Ends @task with @ok, what its call's _finish returned, or with @error (taken). */
static void
link_task_return_boolean (GTask *task, gboolean ok, GError *error)
{
  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    link_task_return_error (task, error);
}

static gboolean
link_task_finish_boolean (Stm32ClientLink *self, GAsyncResult *result, gpointer source_tag,
                          GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gpointer
link_task_finish_pointer (Stm32ClientLink *self, GAsyncResult *result, gpointer source_tag,
                          GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static GVariant *
frame_variant (GBytes *frame)
{
  return g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, frame, TRUE);
}

/* ---- Autoconnect ------------------------------------------------------------------ */

/* The generated code has no Properties.Set that reports the daemon's answer
 * (setting the proxy's property logs a refusal), so this one call is by name. */
#define PROPERTIES_SET "org.freedesktop.DBus.Properties.Set"

static GVariant *
autoconnect_args (gboolean autoconnect)
{
  return g_variant_new ("(ssv)", STM32_DBUS_LINK_INTERFACE, "Autoconnect",
                        g_variant_new_boolean (autoconnect));
}

static void
on_autoconnect_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  g_autoptr (GVariant) reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);

  link_task_return_boolean (task, reply != NULL, error);
}

/**
 * stm32_client_link_set_autoconnect:
 * @self: a link
 * @autoconnect: whether stm32d should keep the link up on its own
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the daemon has answered
 * @user_data: (closure): data for @callback
 *
 * Sets the link's Autoconnect on the daemon (org.freedesktop.DBus.Properties.Set,
 * so a refusal comes back as an error). #Stm32ClientLink:autoconnect follows
 * when the daemon announces the change.
 */
void
stm32_client_link_set_autoconnect (Stm32ClientLink *self, gboolean autoconnect,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task =
      link_task_start (self, stm32_client_link_set_autoconnect, cancellable, callback, user_data);
  if (task != NULL)
    g_dbus_proxy_call (G_DBUS_PROXY (stm32_client_link_get_proxy (self)), PROPERTIES_SET,
                       autoconnect_args (autoconnect), G_DBUS_CALL_FLAGS_NONE, -1, cancellable,
                       on_autoconnect_set, task);
}

/**
 * stm32_client_link_set_autoconnect_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: whether the daemon took the new value
 */
gboolean
stm32_client_link_set_autoconnect_finish (Stm32ClientLink *self, GAsyncResult *result,
                                          GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_set_autoconnect, error);
}

/**
 * stm32_client_link_set_autoconnect_sync:
 * @self: a link
 * @autoconnect: whether stm32d should keep the link up on its own
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_set_autoconnect().
 *
 * Returns: whether the daemon took the new value
 */
gboolean
stm32_client_link_set_autoconnect_sync (Stm32ClientLink *self, gboolean autoconnect,
                                        GCancellable *cancellable, GError **error)
{
  g_autoptr (GVariant) reply = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  if (!stm32_client_link_may_call (self, error))
    return FALSE;
  reply = g_dbus_proxy_call_sync (G_DBUS_PROXY (stm32_client_link_get_proxy (self)), PROPERTIES_SET,
                                  autoconnect_args (autoconnect), G_DBUS_CALL_FLAGS_NONE, -1,
                                  cancellable, error);
  return link_sync_done (self, reply != NULL, error);
}

/* ---- Connect, Disconnect, Send ---------------------------------------------------- */

static void
on_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  gboolean ok = stm32_dbus_link1_call_connect_finish (STM32_DBUS_LINK1 (source), result, &error);

  link_task_return_boolean (task, ok, error);
}

/**
 * stm32_client_link_connect:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once connected, or with the attempt's error
 * @user_data: (closure): data for @callback
 *
 * Connects now, or joins the attempt under way (org.stm32d.Link1.Connect).
 * The link stays wanted: after a failure stm32d keeps retrying with backoff
 * until stm32_client_link_disconnect().
 */
void
stm32_client_link_connect (Stm32ClientLink *self, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_connect, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_connect (stm32_client_link_get_proxy (self), cancellable, on_connected,
                                   task);
}

/**
 * stm32_client_link_connect_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (a #STM32_ERROR code)
 *
 * Returns: whether the link is connected
 */
gboolean
stm32_client_link_connect_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_connect, error);
}

/**
 * stm32_client_link_connect_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error (a #STM32_ERROR code)
 *
 * Blocks the calling thread; see stm32_client_link_connect().
 *
 * Returns: whether the link is connected
 */
gboolean
stm32_client_link_connect_sync (Stm32ClientLink *self, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  return stm32_client_link_may_call (self, error) &&
         link_sync_done (self,
                         stm32_dbus_link1_call_connect_sync (stm32_client_link_get_proxy (self),
                                                             cancellable, error),
                         error);
}

static void
on_disconnected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  gboolean ok = stm32_dbus_link1_call_disconnect_finish (STM32_DBUS_LINK1 (source), result, &error);

  link_task_return_boolean (task, ok, error);
}

/**
 * stm32_client_link_disconnect:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the socket is closed
 * @user_data: (closure): data for @callback
 *
 * Closes gracefully, queued frames first (org.stm32d.Link1.Disconnect). The
 * link then stays down until connected again or Autoconnect is set.
 */
void
stm32_client_link_disconnect (Stm32ClientLink *self, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_disconnect, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_disconnect (stm32_client_link_get_proxy (self), cancellable,
                                      on_disconnected, task);
}

/**
 * stm32_client_link_disconnect_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: whether the link is closed
 */
gboolean
stm32_client_link_disconnect_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_disconnect, error);
}

/**
 * stm32_client_link_disconnect_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_disconnect().
 *
 * Returns: whether the link is closed
 */
gboolean
stm32_client_link_disconnect_sync (Stm32ClientLink *self, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  return stm32_client_link_may_call (self, error) &&
         link_sync_done (self,
                         stm32_dbus_link1_call_disconnect_sync (stm32_client_link_get_proxy (self),
                                                                cancellable, error),
                         error);
}

static void
on_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  gboolean ok = stm32_dbus_link1_call_send_finish (STM32_DBUS_LINK1 (source), result, &error);

  link_task_return_boolean (task, ok, error);
}

/**
 * stm32_client_link_send:
 * @self: a link
 * @frame: one frame, without framing bytes (stm32d adds them)
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called once the board's TCP stack acknowledged the
 *   whole frame, or with why not
 * @user_data: (closure): data for @callback
 *
 * Sends one frame to the board (org.stm32d.Link1.Send).
 */
void
stm32_client_link_send (Stm32ClientLink *self, GBytes *frame, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  g_return_if_fail (frame != NULL);
  task = link_task_start (self, stm32_client_link_send, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_send (stm32_client_link_get_proxy (self), frame_variant (frame),
                                cancellable, on_sent, task);
}

/**
 * stm32_client_link_send_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (a #STM32_ERROR code such as
 *   %STM32_ERROR_NOT_CONNECTED or %STM32_ERROR_QUEUE_FULL)
 *
 * Returns: whether the board's TCP stack acknowledged the whole frame
 */
gboolean
stm32_client_link_send_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_boolean (self, result, stm32_client_link_send, error);
}

/**
 * stm32_client_link_send_sync:
 * @self: a link
 * @frame: one frame, without framing bytes
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error (a #STM32_ERROR code)
 *
 * Blocks the calling thread; see stm32_client_link_send().
 *
 * Returns: whether the board's TCP stack acknowledged the whole frame
 */
gboolean
stm32_client_link_send_sync (Stm32ClientLink *self, GBytes *frame, GCancellable *cancellable,
                             GError **error)
{
  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), FALSE);
  g_return_val_if_fail (frame != NULL, FALSE);
  return stm32_client_link_may_call (self, error) &&
         link_sync_done (self,
                         stm32_dbus_link1_call_send_sync (stm32_client_link_get_proxy (self),
                                                          frame_variant (frame), cancellable,
                                                          error),
                         error);
}

/* ---- Transact, GetHistory, Diagnose ----------------------------------------------- */

/* A transaction waits for stm32d as long as any call, after the board had
 * its @timeout_ms to reply. */
static guint
transact_call_timeout (Stm32ClientLink *self, guint timeout_ms)
{
  return stm32_client_call_timeout_plus (stm32_client_link_get_call_timeout (self), timeout_ms);
}

static GVariant *
transact_args (GBytes *request, guint timeout_ms)
{
  return g_variant_new ("(@ayu)", frame_variant (request), timeout_ms);
}

static void
on_transacted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32ClientLink *self = g_task_get_source_object (task);
  g_autoptr (GVariant) reply = NULL;
  GError *error = NULL;

  if (stm32_dbus_link1_call_transact_finish (STM32_DBUS_LINK1 (source), &reply, result, &error))
    g_task_return_pointer (task, g_variant_get_data_as_bytes (reply),
                           (GDestroyNotify) g_bytes_unref);
  else
    g_task_return_error (task, stm32_client_link_call_error (
                                   self, error, GPOINTER_TO_UINT (g_task_get_task_data (task))));
}

/**
 * stm32_client_link_transact:
 * @self: a link
 * @request: the frame to send
 * @timeout_ms: how long stm32d waits for the board's reply, including the
 *   wait for earlier transactions; at least 1. The call itself waits that plus
 *   #Stm32Client:call-timeout for stm32d's answer.
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the reply or an error
 * @user_data: (closure): data for @callback
 *
 * Sends @request and returns the next frame the board sends
 * (org.stm32d.Link1.Transact). Transactions run one at a time, in order.
 * Each is a D-Bus round trip; for many requests, see
 * stm32_client_link_open_transact_channel().
 */
void
stm32_client_link_transact (Stm32ClientLink *self, GBytes *request, guint timeout_ms,
                            GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  GTask *task;
  guint call_timeout;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  g_return_if_fail (request != NULL);
  task = link_task_start (self, stm32_client_link_transact, cancellable, callback, user_data);
  if (task == NULL)
    return;
  call_timeout = transact_call_timeout (self, timeout_ms);
  g_task_set_task_data (task, GUINT_TO_POINTER (call_timeout), NULL);
  /* By name: the generated call has no timeout of its own. */
  g_dbus_proxy_call (G_DBUS_PROXY (stm32_client_link_get_proxy (self)), "Transact",
                     transact_args (request, timeout_ms), G_DBUS_CALL_FLAGS_NONE,
                     (int) call_timeout, cancellable, on_transacted, task);
}

/**
 * stm32_client_link_transact_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_TIMEOUT when no frame
 *   came in time)
 *
 * Returns: (transfer full): the reply, without framing bytes, or %NULL
 */
GBytes *
stm32_client_link_transact_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_pointer (self, result, stm32_client_link_transact, error);
}

/**
 * stm32_client_link_transact_sync:
 * @self: a link
 * @request: the frame to send
 * @timeout_ms: how long stm32d waits for the board's reply; at least 1 (the
 *   call waits that plus #Stm32Client:call-timeout)
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_transact().
 *
 * Returns: (transfer full): the reply, without framing bytes, or %NULL
 */
GBytes *
stm32_client_link_transact_sync (Stm32ClientLink *self, GBytes *request, guint timeout_ms,
                                 GCancellable *cancellable, GError **error)
{
  g_autoptr (GVariant) result = NULL;
  g_autoptr (GVariant) reply = NULL;
  GError *local_error = NULL;
  guint call_timeout;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  g_return_val_if_fail (request != NULL, NULL);
  if (!stm32_client_link_may_call (self, error))
    return NULL;
  call_timeout = transact_call_timeout (self, timeout_ms);
  result = g_dbus_proxy_call_sync (G_DBUS_PROXY (stm32_client_link_get_proxy (self)), "Transact",
                                   transact_args (request, timeout_ms), G_DBUS_CALL_FLAGS_NONE,
                                   (int) call_timeout, cancellable, &local_error);
  if (result == NULL)
    {
      g_propagate_error (error, stm32_client_link_call_error (self, local_error, call_timeout));
      return NULL;
    }
  g_variant_get (result, "(@ay)", &reply);
  return g_variant_get_data_as_bytes (reply);
}

static void
on_history (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GVariant) attempts = NULL;
  GError *error = NULL;

  if (stm32_dbus_link1_call_get_history_finish (STM32_DBUS_LINK1 (source), &attempts, result,
                                                &error))
    g_task_return_pointer (task, g_steal_pointer (&attempts), (GDestroyNotify) g_variant_unref);
  else
    link_task_return_error (task, error);
}

/**
 * stm32_client_link_get_history:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the history
 * @user_data: (closure): data for @callback
 *
 * Asks for the recent connection attempts (org.stm32d.Link1.GetHistory).
 */
void
stm32_client_link_get_history (Stm32ClientLink *self, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_get_history, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_get_history (stm32_client_link_get_proxy (self), cancellable, on_history,
                                       task);
}

/**
 * stm32_client_link_get_history_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: (transfer full): the attempts, oldest first, as a #GVariant of type
 *   aa{sv} (keys as in org.stm32d.Link1.GetHistory), or %NULL
 */
GVariant *
stm32_client_link_get_history_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_pointer (self, result, stm32_client_link_get_history, error);
}

/**
 * stm32_client_link_get_history_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_get_history().
 *
 * Returns: (transfer full): the attempts as a #GVariant of type aa{sv}, or %NULL
 */
GVariant *
stm32_client_link_get_history_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                    GError **error)
{
  g_autoptr (GVariant) attempts = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  if (!stm32_client_link_may_call (self, error) ||
      !link_sync_done (self,
                       stm32_dbus_link1_call_get_history_sync (stm32_client_link_get_proxy (self),
                                                               &attempts, cancellable, error),
                       error))
    return NULL;
  return g_steal_pointer (&attempts);
}

/* @options, its floating reference sunk, or an empty a{sv} for NULL. */
static GVariant *
diagnose_options (GVariant *options)
{
  if (options == NULL)
    return g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0));
  return g_variant_ref_sink (options);
}

static void
on_diagnosed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GVariant) report = NULL;
  GError *error = NULL;

  if (stm32_dbus_link1_call_diagnose_finish (STM32_DBUS_LINK1 (source), &report, result, &error))
    g_task_return_pointer (task, g_steal_pointer (&report), (GDestroyNotify) g_variant_unref);
  else
    link_task_return_error (task, error);
}

/**
 * stm32_client_link_diagnose:
 * @self: a link
 * @options: (nullable): a #GVariant of type a{sv}: "probe" (b) and "probe-max"
 *   (u); %NULL for a passive diagnosis. A floating reference is consumed.
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the report
 * @user_data: (closure): data for @callback
 *
 * Asks stm32d what is wrong with the board's connection
 * (org.stm32d.Link1.Diagnose). With "probe" it opens connections to the
 * board for a few seconds; cancelling ends the probe.
 */
void
stm32_client_link_diagnose (Stm32ClientLink *self, GVariant *options, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GVariant) args = NULL;
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  g_return_if_fail (options == NULL || g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT));
  args = diagnose_options (options);
  task = link_task_start (self, stm32_client_link_diagnose, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_diagnose (stm32_client_link_get_proxy (self), args, cancellable,
                                    on_diagnosed, task);
}

/**
 * stm32_client_link_diagnose_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error
 *
 * Returns: (transfer full): the report, a #GVariant of type a{sv} ("healthy",
 *   "findings", "census", "history-summary", "probe", ... as in
 *   org.stm32d.Link1.Diagnose), or %NULL
 */
GVariant *
stm32_client_link_diagnose_finish (Stm32ClientLink *self, GAsyncResult *result, GError **error)
{
  return link_task_finish_pointer (self, result, stm32_client_link_diagnose, error);
}

/**
 * stm32_client_link_diagnose_sync:
 * @self: a link
 * @options: (nullable): a #GVariant of type a{sv}, as for stm32_client_link_diagnose()
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_diagnose().
 *
 * Returns: (transfer full): the report as a #GVariant of type a{sv}, or %NULL
 */
GVariant *
stm32_client_link_diagnose_sync (Stm32ClientLink *self, GVariant *options,
                                 GCancellable *cancellable, GError **error)
{
  g_autoptr (GVariant) args = NULL;
  g_autoptr (GVariant) report = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  g_return_val_if_fail (options == NULL || g_variant_is_of_type (options, G_VARIANT_TYPE_VARDICT),
                        NULL);
  args = diagnose_options (options);
  if (!stm32_client_link_may_call (self, error) ||
      !link_sync_done (self,
                       stm32_dbus_link1_call_diagnose_sync (stm32_client_link_get_proxy (self),
                                                            args, &report, cancellable, error),
                       error))
    return NULL;
  return g_steal_pointer (&report);
}

/* ---- AcquireStream ---------------------------------------------------------------- */

static GSocket *
socket_from_reply (const char *method, GVariant *handle, GUnixFDList *fds, GError **error)
{
  int index = g_variant_get_handle (handle);
  GSocket *socket;
  int fd;

  /* Checked here: g_unix_fd_list_get() treats a bad index as a programming error. */
  if (fds == NULL || index < 0 || index >= g_unix_fd_list_get_length (fds))
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_FAILED,
                   "stm32d answered %s without a file descriptor", method);
      return NULL;
    }
  fd = g_unix_fd_list_get (fds, index, error);
  if (fd < 0)
    return NULL;
  socket = g_socket_new_from_fd (fd, error);
  if (socket == NULL)
    g_close (fd, NULL);
  return socket;
}

static void
on_stream_acquired (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32ClientLink *self = g_task_get_source_object (task);
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  GError *error = NULL;
  GSocket *socket = NULL;

  if (stm32_dbus_link1_call_acquire_stream_finish (STM32_DBUS_LINK1 (source), &handle, &fds, result,
                                                   &error))
    socket = socket_from_reply ("AcquireStream", handle, fds, &error);
  else
    error = stm32_client_link_call_error (self, error, stm32_client_link_get_call_timeout (self));
  if (socket == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, socket, g_object_unref);
}

/**
 * stm32_client_link_acquire_stream:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the socket or an error
 * @user_data: (closure): data for @callback
 *
 * Takes the link for bulk data (org.stm32d.Link1.AcquireStream): bytes written
 * to the socket go to the board as they are, the board's bytes are readable
 * from it, without framing. One holder at a time; while it is held, sends and
 * transactions fail with %STM32_ERROR_BUSY. The socket gets EOF when the
 * connection drops; closing it releases the link.
 */
void
stm32_client_link_acquire_stream (Stm32ClientLink *self, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_acquire_stream, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_acquire_stream (stm32_client_link_get_proxy (self), NULL, cancellable,
                                          on_stream_acquired, task);
}

/**
 * stm32_client_link_acquire_stream_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_BUSY if someone else holds it)
 *
 * Returns: (transfer full): a connected stream socket bridged to the board, or %NULL
 */
GSocket *
stm32_client_link_acquire_stream_finish (Stm32ClientLink *self, GAsyncResult *result,
                                         GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == stm32_client_link_acquire_stream,
                        NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * stm32_client_link_acquire_stream_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_acquire_stream().
 *
 * Returns: (transfer full): a connected stream socket bridged to the board, or %NULL
 */
GSocket *
stm32_client_link_acquire_stream_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                       GError **error)
{
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  if (!stm32_client_link_may_call (self, error) ||
      !link_sync_done (
          self,
          stm32_dbus_link1_call_acquire_stream_sync (stm32_client_link_get_proxy (self), NULL,
                                                     &handle, &fds, cancellable, error),
          error))
    return NULL;
  return socket_from_reply ("AcquireStream", handle, fds, error);
}

/* ---- OpenTransactChannel ---------------------------------------------------------- */

static Stm32ClientChannel *
channel_from_reply (GVariant *handle, GUnixFDList *fds, GError **error)
{
  g_autoptr (GSocket) socket = socket_from_reply ("OpenTransactChannel", handle, fds, error);

  if (socket == NULL)
    return NULL;
  /* Packet boundaries are the protocol: a stream would silently merge them. */
  if (g_socket_get_socket_type (socket) != G_SOCKET_TYPE_SEQPACKET)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_FAILED,
                           "stm32d answered OpenTransactChannel with a socket that is not "
                           "SOCK_SEQPACKET");
      return NULL;
    }
  return stm32_client_channel_new (g_steal_pointer (&socket));
}

static void
on_channel_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32ClientLink *self = g_task_get_source_object (task);
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  GError *error = NULL;
  Stm32ClientChannel *channel = NULL;

  if (stm32_dbus_link1_call_open_transact_channel_finish (STM32_DBUS_LINK1 (source), &handle, &fds,
                                                          result, &error))
    channel = channel_from_reply (handle, fds, &error);
  else
    error = stm32_client_link_call_error (self, error, stm32_client_link_get_call_timeout (self));
  if (channel == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, channel, g_object_unref);
}

/**
 * stm32_client_link_open_transact_channel:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the channel or an error
 * @user_data: (closure): data for @callback
 *
 * Opens a transaction channel to the link (org.stm32d.Link1.OpenTransactChannel):
 * transactions like stm32_client_link_transact(), each one socket round trip
 * to stm32d instead of a D-Bus call, for clients that make many requests.
 * The channel outlives reconnects of the link; stm32d closes it when the link
 * is removed or the daemon stops. At most 64 are open per link
 * (%STM32_ERROR_BUSY beyond).
 */
void
stm32_client_link_open_transact_channel (Stm32ClientLink *self, GCancellable *cancellable,
                                         GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task = link_task_start (self, stm32_client_link_open_transact_channel, cancellable, callback,
                          user_data);
  if (task != NULL)
    stm32_dbus_link1_call_open_transact_channel (stm32_client_link_get_proxy (self), NULL,
                                                 cancellable, on_channel_opened, task);
}

/**
 * stm32_client_link_open_transact_channel_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_BUSY with 64 channels open)
 *
 * Returns: (transfer full): the channel, or %NULL
 */
Stm32ClientChannel *
stm32_client_link_open_transact_channel_finish (Stm32ClientLink *self, GAsyncResult *result,
                                                GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (
      g_task_get_source_tag (G_TASK (result)) == stm32_client_link_open_transact_channel, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * stm32_client_link_open_transact_channel_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_open_transact_channel().
 *
 * Returns: (transfer full): the channel, or %NULL
 */
Stm32ClientChannel *
stm32_client_link_open_transact_channel_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                              GError **error)
{
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  if (!stm32_client_link_may_call (self, error) ||
      !link_sync_done (
          self,
          stm32_dbus_link1_call_open_transact_channel_sync (
              stm32_client_link_get_proxy (self), NULL, &handle, &fds, cancellable, error),
          error))
    return NULL;
  return channel_from_reply (handle, fds, error);
}

/* ---- OpenSendChannel -------------------------------------------------------------- */

static Stm32ClientSendChannel *
send_channel_from_reply (Stm32ClientLink *self, GVariant *handle, GUnixFDList *fds, GError **error)
{
  g_autoptr (GSocket) socket = socket_from_reply ("OpenSendChannel", handle, fds, error);

  if (socket == NULL)
    return NULL;
  /* Packet boundaries are the protocol: a stream would silently merge them. */
  if (g_socket_get_socket_type (socket) != G_SOCKET_TYPE_SEQPACKET)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_FAILED,
                           "stm32d answered OpenSendChannel with a socket that is not "
                           "SOCK_SEQPACKET");
      return NULL;
    }
  return stm32_client_send_channel_new (g_steal_pointer (&socket),
                                        stm32_client_link_get_call_timeout (self));
}

static void
on_send_channel_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Stm32ClientLink *self = g_task_get_source_object (task);
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;
  GError *error = NULL;
  Stm32ClientSendChannel *channel = NULL;

  if (stm32_dbus_link1_call_open_send_channel_finish (STM32_DBUS_LINK1 (source), &handle, &fds,
                                                      result, &error))
    channel = send_channel_from_reply (self, handle, fds, &error);
  else
    error = stm32_client_link_call_error (self, error, stm32_client_link_get_call_timeout (self));
  if (channel == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, channel, g_object_unref);
}

/**
 * stm32_client_link_open_send_channel:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called with the channel or an error
 * @user_data: (closure): data for @callback
 *
 * Opens a send channel to the link (org.stm32d.Link1.OpenSendChannel): sends
 * like stm32_client_link_send(), batched over one socket to stm32d instead of
 * a D-Bus call each, for clients that send streams of frames. The channel
 * outlives reconnects of the link; stm32d closes it when the link is removed
 * or the daemon stops. At most 64 are open per link (%STM32_ERROR_BUSY
 * beyond).
 */
void
stm32_client_link_open_send_channel (Stm32ClientLink *self, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;

  g_return_if_fail (STM32_IS_CLIENT_LINK (self));
  task =
      link_task_start (self, stm32_client_link_open_send_channel, cancellable, callback, user_data);
  if (task != NULL)
    stm32_dbus_link1_call_open_send_channel (stm32_client_link_get_proxy (self), NULL, cancellable,
                                             on_send_channel_opened, task);
}

/**
 * stm32_client_link_open_send_channel_finish:
 * @self: a link
 * @result: the result passed to the callback
 * @error: return location for an error (%STM32_ERROR_BUSY with 64 channels open)
 *
 * Returns: (transfer full): the send channel, or %NULL
 */
Stm32ClientSendChannel *
stm32_client_link_open_send_channel_finish (Stm32ClientLink *self, GAsyncResult *result,
                                            GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (
      g_task_get_source_tag (G_TASK (result)) == stm32_client_link_open_send_channel, NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * stm32_client_link_open_send_channel_sync:
 * @self: a link
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Blocks the calling thread; see stm32_client_link_open_send_channel().
 *
 * Returns: (transfer full): the send channel, or %NULL
 */
Stm32ClientSendChannel *
stm32_client_link_open_send_channel_sync (Stm32ClientLink *self, GCancellable *cancellable,
                                          GError **error)
{
  g_autoptr (GVariant) handle = NULL;
  g_autoptr (GUnixFDList) fds = NULL;

  g_return_val_if_fail (STM32_IS_CLIENT_LINK (self), NULL);
  if (!stm32_client_link_may_call (self, error) ||
      !link_sync_done (self,
                       stm32_dbus_link1_call_open_send_channel_sync (
                           stm32_client_link_get_proxy (self), NULL, &handle, &fds, cancellable,
                           error),
                       error))
    return NULL;
  return send_channel_from_reply (self, handle, fds, error);
}
