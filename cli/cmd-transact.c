/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

int
stm32ctl_cmd_transact (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean hex = FALSE;
  int timeout_ms = 2000;
  g_autofree char *file = NULL;
  const GOptionEntry entries[] = {
    { "hex", 'x', 0, G_OPTION_ARG_NONE, &hex, "Request and reply are hex digits", NULL },
    { "file", 'f', 0, G_OPTION_ARG_FILENAME, &file, "Send the contents of FILE", "FILE" },
    { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout_ms, "Wait at most MS for the reply (2000)",
      "MS" },
    { NULL }
  };
  g_autoptr (GBytes) request = NULL;
  g_autoptr (GBytes) reply = NULL;
  g_autofree char *text = NULL;
  Stm32ClientLink *link;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("transact", "[TEXT…]",
                       "Send a frame and print the next frame the board sends back.", entries,
                       &argc, &argv, &status))
    return status;
  if (timeout_ms < 1)
    return stm32ctl_usage ("transact", "--timeout must be at least 1 ms");
  request = stm32ctl_read_frame (argc, argv, hex, file, &error);
  if (request == NULL)
    return stm32ctl_fail_command ("transact", error);
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  reply = stm32_client_link_transact_sync (link, request, (guint) timeout_ms, NULL, &error);
  if (reply == NULL)
    return stm32ctl_fail (error);
  text = stm32ctl_format_frame (reply, hex);
  g_print ("%s\n", text);
  return STM32CTL_EXIT_OK;
}
