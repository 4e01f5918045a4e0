/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

int
stm32ctl_cmd_autoconnect (Stm32Ctl *ctl, int argc, char **argv)
{
  g_autoptr (GAsyncResult) result = NULL;
  Stm32ClientLink *link;
  GError *error = NULL;
  gboolean on;
  int status;

  if (!stm32ctl_parse ("autoconnect", "on|off",
                       "Turn keeping the link up on or off. On brings it up now; off leaves a "
                       "live connection alone (see “stm32ctl disconnect”).",
                       NULL, &argc, &argv, &status))
    return status;
  if (argc != 2 || !(g_str_equal (argv[1], "on") || g_str_equal (argv[1], "off")))
    return stm32ctl_usage ("autoconnect", "say “on” or “off”");
  on = g_str_equal (argv[1], "on");
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  stm32_client_link_set_autoconnect (link, on, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  if (!stm32_client_link_set_autoconnect_finish (link, result, &error))
    return stm32ctl_fail (error);
  g_print ("Autoconnect %s for %s\n", on ? "on" : "off", stm32_client_link_get_name (link));
  return STM32CTL_EXIT_OK;
}
