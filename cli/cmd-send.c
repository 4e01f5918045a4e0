/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

int
stm32ctl_cmd_send (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean hex = FALSE;
  g_autofree char *file = NULL;
  const GOptionEntry entries[] = {
    { "hex", 'x', 0, G_OPTION_ARG_NONE, &hex, "The frame is hex digits (spaces allowed)", NULL },
    { "file", 'f', 0, G_OPTION_ARG_FILENAME, &file, "Send the contents of FILE", "FILE" },
    { NULL }
  };
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) frame = NULL;
  Stm32ClientLink *link;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("send", "[TEXT…]",
                       "Send one frame, without framing bytes (stm32d adds them): the arguments, "
                       "--file, or standard input.",
                       entries, &argc, &argv, &status))
    return status;
  frame = stm32ctl_read_frame (argc, argv, hex, file, &error);
  if (frame == NULL)
    return stm32ctl_fail_command ("send", error);
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  stm32_client_link_send (link, frame, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  if (!stm32_client_link_send_finish (link, result, &error))
    return stm32ctl_fail (error);
  return STM32CTL_EXIT_OK;
}
