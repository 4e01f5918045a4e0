/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

int
stm32ctl_cmd_disconnect (Stm32Ctl *ctl, int argc, char **argv)
{
  g_autoptr (GAsyncResult) result = NULL;
  Stm32ClientLink *link;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("disconnect", NULL,
                       "Close a link gracefully; it stays down until “stm32ctl connect”.", NULL,
                       &argc, &argv, &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("disconnect", "unexpected argument “%s”; use -l NAME to choose a link",
                           argv[1]);
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  stm32_client_link_disconnect (link, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  if (!stm32_client_link_disconnect_finish (link, result, &error))
    return stm32ctl_fail (error);
  g_print ("Disconnected %s\n", stm32_client_link_get_name (link));
  return STM32CTL_EXIT_OK;
}
