/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

#include <gio/gunixinputstream.h>
#include <stdio.h>
#include <unistd.h>

/* Each line of @in a request, each reply a line of output, in order; the
 * first failure ends the run with its exit status. One transaction channel
 * carries them all: a socket round trip each instead of a D-Bus call. */
/* One transaction, over @channel if there is one, else as a D-Bus call. */
static GBytes *
transact_one (Stm32Ctl *ctl, Stm32ClientLink *link, Stm32ClientChannel *channel, GBytes *request,
              guint timeout_ms, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  if (channel == NULL)
    {
      stm32_client_link_transact (link, request, timeout_ms, ctl->cancellable,
                                  stm32ctl_store_result, &result);
      stm32ctl_wait (ctl, &result);
      return stm32_client_link_transact_finish (link, result, error);
    }
  stm32_client_channel_transact (channel, request, timeout_ms, ctl->cancellable,
                                 stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  return stm32_client_channel_transact_finish (channel, result, error);
}

static int
transact_lines (Stm32Ctl *ctl, Stm32ClientLink *link, GInputStream *in, gboolean hex,
                guint timeout_ms)
{
  g_autoptr (GDataInputStream) lines = g_data_input_stream_new (in);
  g_autoptr (Stm32ClientChannel) channel = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  GError *error = NULL;

  stm32_client_link_open_transact_channel (link, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  channel = stm32_client_link_open_transact_channel_finish (link, result, &error);
  /* Every channel of the link taken: the bus still carries transactions. */
  if (channel == NULL && !g_error_matches (error, STM32_ERROR, STM32_ERROR_BUSY))
    return stm32ctl_fail (error);
  if (channel == NULL)
    g_printerr ("stm32ctl: %s; sending each request as a D-Bus call instead (slower)\n",
                error->message);
  g_clear_error (&error);
  for (guint number = 1;; number++)
    {
      gsize len;
      g_autofree char *line = g_data_input_stream_read_line (lines, &len, NULL, &error);
      g_autoptr (GBytes) request = NULL;
      g_autoptr (GBytes) reply = NULL;
      g_autofree char *text = NULL;

      if (line == NULL && error != NULL)
        return stm32ctl_fail (error);
      if (line == NULL)
        return STM32CTL_EXIT_OK;
      if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
      if (len == 0)
        continue;
      request = hex ? stm32ctl_parse_hex (line, &error) : g_bytes_new (line, len);
      if (request == NULL)
        {
          g_prefix_error (&error, "line %u: ", number);
          return stm32ctl_fail_command ("transact", error);
        }
      reply = transact_one (ctl, link, channel, request, timeout_ms, &error);
      if (reply == NULL)
        {
          g_prefix_error (&error, "line %u: ", number);
          return stm32ctl_fail (error);
        }
      text = stm32ctl_format_frame (reply, hex);
      g_print ("%s\n", text);
      /* A script reading replies as they come must not wait for a buffer to fill. */
      fflush (stdout);
    }
}

int
stm32ctl_cmd_transact (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean hex = FALSE;
  gboolean lines = FALSE;
  int timeout_ms = 2000;
  g_autofree char *file = NULL;
  const GOptionEntry entries[] = {
    { "hex", 'x', 0, G_OPTION_ARG_NONE, &hex, "Request and reply are hex digits", NULL },
    { "file", 'f', 0, G_OPTION_ARG_FILENAME, &file, "Send the contents of FILE", "FILE" },
    { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout_ms, "Wait at most MS for the reply (2000)",
      "MS" },
    { "lines", 0, 0, G_OPTION_ARG_NONE, &lines,
      "Each line of standard input (or FILE) is a request; print each reply on a line", NULL },
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
  if (lines)
    {
      g_autoptr (GInputStream) in = NULL;

      if (argc > 1)
        return stm32ctl_usage ("transact",
                               "with --lines the requests are lines of standard input or --file, "
                               "not arguments");
      if (file != NULL)
        {
          g_autoptr (GFile) source = g_file_new_for_commandline_arg (file);

          in = G_INPUT_STREAM (g_file_read (source, NULL, &error));
          if (in == NULL)
            return stm32ctl_fail_command ("transact", error);
        }
      else
        in = g_unix_input_stream_new (STDIN_FILENO, FALSE);
      link = stm32ctl_link (ctl, &error);
      if (link == NULL)
        return stm32ctl_fail (error);
      return transact_lines (ctl, link, in, hex, (guint) timeout_ms);
    }
  request = stm32ctl_read_frame (argc, argv, hex, file, &error);
  if (request == NULL)
    return stm32ctl_fail_command ("transact", error);
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  reply = transact_one (ctl, link, NULL, request, (guint) timeout_ms, &error);
  if (reply == NULL)
    return stm32ctl_fail (error);
  text = stm32ctl_format_frame (reply, hex);
  g_print ("%s\n", text);
  return STM32CTL_EXIT_OK;
}
