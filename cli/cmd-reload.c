/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

int
stm32ctl_cmd_reload (Stm32Ctl *ctl, int argc, char **argv)
{
  g_autoptr (GAsyncResult) result = NULL;
  Stm32Client *client;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("reload", NULL,
                       "Make stm32d re-read its configuration file. Links that did not change "
                       "keep their connection; a bad file is refused and changes nothing.",
                       NULL, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("reload", "unexpected argument “%s”", argv[1]);
  client = stm32ctl_client (ctl, &error);
  if (client == NULL)
    return stm32ctl_fail (error);
  stm32_client_reload (client, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  if (!stm32_client_reload_finish (client, result, &error))
    return stm32ctl_fail (error);
  g_print ("Configuration reloaded\n");
  return STM32CTL_EXIT_OK;
}
