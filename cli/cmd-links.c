/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

int
stm32ctl_cmd_links (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
                                   { NULL } };
  g_autoptr (Stm32CtlOutput) output = NULL;
  g_autoptr (GList) links = NULL;
  Stm32Client *client;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("links", NULL, "List the boards stm32d manages.", entries, &argc, &argv,
                       &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("links", "unexpected argument “%s”", argv[1]);
  client = stm32ctl_client (ctl, &error);
  if (client == NULL)
    return stm32ctl_fail (error);
  if (!stm32_client_is_running (client))
    return stm32ctl_fail (g_error_new_literal (STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING,
                                               "stm32d is not running"));

  output = stm32ctl_output_new (json);
  links = stm32_client_get_links (client);
  for (GList *l = links; l != NULL; l = l->next)
    {
      Stm32ClientLink *link = l->data;
      g_autofree char *endpoint = stm32ctl_link_endpoint (link);

      stm32ctl_output_record (output);
      stm32ctl_output_string (output, "name", "Name", stm32_client_link_get_name (link));
      stm32ctl_output_string (output, "state", "State", stm32_client_link_get_state (link));
      stm32ctl_output_string (output, "endpoint", "Endpoint", endpoint);
      stm32ctl_output_string (output, "framing", "Framing", stm32_client_link_get_framing (link));
      stm32ctl_output_bool (output, "autoconnect", "Autoconnect",
                            stm32_client_link_get_autoconnect (link));
      stm32ctl_output_string (output, "last_error", "Last error",
                              stm32_client_link_get_last_error (link));
    }
  stm32ctl_output_print (output, TRUE);
  return STM32CTL_EXIT_OK;
}
