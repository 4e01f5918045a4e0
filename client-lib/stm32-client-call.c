/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How the library's calls to stm32d go: without GDBus's timeout, and failing
 * with the errors callers see (the daemon's code without the remote prefix, or
 * why the daemon is not there). */
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

void
stm32_client_proxy_disable_timeout (GDBusProxy *proxy)
{
  /* The daemon bounds every call itself (ConnectTimeout, CloseTimeout, the
   * transaction's timeout, the bounded send queue), and GDBus's default of
   * 25 s would cut a slow but legitimate one short with a misleading error. A
   * caller that wants to give up sooner cancels. */
  g_dbus_proxy_set_default_timeout (proxy, G_MAXINT);
}

GError *
stm32_client_call_error (GError *error, Stm32ClientGoneFunc set_gone_error, gpointer user_data)
{
  GError *gone = NULL;

  if (!is_no_owner_error (error))
    {
      g_dbus_error_strip_remote_error (error);
      return error;
    }
  g_error_free (error);
  set_gone_error (user_data, &gone);
  return gone;
}
