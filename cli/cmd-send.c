/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

#include <gio/gunixinputstream.h>
#include <unistd.h>

/* Lines sent and not yet answered at most: the input is read no faster
 * than the board takes frames, and stm32ctl's memory stays bounded. */
#define SEND_WINDOW 4096

/* The answer to line @number's frame, once it comes. */
typedef struct
{
  guint number;
  GAsyncResult *result;
} LineSend;

static void
line_send_free (LineSend *line)
{
  g_clear_object (&line->result);
  g_free (line);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LineSend, line_send_free)

/* Waits for the oldest line's answer and takes it off @pending; FALSE with
 * @error (prefixed with its line) if it failed. */
static gboolean
finish_oldest (Stm32Ctl *ctl, Stm32ClientSendChannel *channel, GQueue *pending, GError **error)
{
  LineSend *line = g_queue_pop_head (pending);
  gboolean sent;

  stm32ctl_wait (ctl, &line->result);
  sent = stm32_client_send_channel_send_finish (channel, line->result, error);
  if (!sent)
    g_prefix_error (error, "line %u: ", line->number);
  line_send_free (line);
  return sent;
}

/* Each line of @in a frame, all over one send channel: a socket write per
 * batch of lines instead of a D-Bus call each, every one acknowledged by the
 * board before stm32ctl exits 0. The first failure ends the run with its
 * exit status; the lines before it reached the board. */
static int
send_lines (Stm32Ctl *ctl, Stm32ClientLink *link, GInputStream *in, gboolean hex)
{
  g_autoptr (GDataInputStream) lines = g_data_input_stream_new (in);
  g_autoptr (Stm32ClientSendChannel) channel = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoqueue (LineSend) pending = g_queue_new ();
  GError *error = NULL;

  stm32_client_link_open_send_channel (link, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  channel = stm32_client_link_open_send_channel_finish (link, result, &error);
  if (channel == NULL)
    return stm32ctl_fail (error);
  for (guint number = 1;; number++)
    {
      gsize len;
      g_autofree char *text = g_data_input_stream_read_line (lines, &len, NULL, &error);
      g_autoptr (GBytes) frame = NULL;
      LineSend *line;

      if (text == NULL && error != NULL)
        return stm32ctl_fail (error);
      if (text == NULL)
        break;
      if (len > 0 && text[len - 1] == '\r')
        text[--len] = '\0';
      if (len == 0)
        continue;
      frame = hex ? stm32ctl_parse_hex (text, &error) : g_bytes_new (text, len);
      if (frame == NULL)
        {
          g_prefix_error (&error, "line %u: ", number);
          return stm32ctl_fail_command ("send", error);
        }
      line = g_new0 (LineSend, 1);
      line->number = number;
      g_queue_push_tail (pending, line);
      stm32_client_send_channel_send (channel, frame, ctl->cancellable, stm32ctl_store_result,
                                      &line->result);
      if (g_queue_get_length (pending) >= SEND_WINDOW &&
          !finish_oldest (ctl, channel, pending, &error))
        return stm32ctl_fail (error);
      /* Lines read meanwhile go out together. */
      if (number % 256 == 0)
        g_main_context_iteration (NULL, FALSE);
    }
  while (!g_queue_is_empty (pending))
    if (!finish_oldest (ctl, channel, pending, &error))
      return stm32ctl_fail (error);
  return STM32CTL_EXIT_OK;
}

int
stm32ctl_cmd_send (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean hex = FALSE;
  gboolean lines = FALSE;
  g_autofree char *file = NULL;
  const GOptionEntry entries[] = {
    { "hex", 'x', 0, G_OPTION_ARG_NONE, &hex, "The frame is hex digits (spaces allowed)", NULL },
    { "file", 'f', 0, G_OPTION_ARG_FILENAME, &file, "Send the contents of FILE", "FILE" },
    { "lines", 0, 0, G_OPTION_ARG_NONE, &lines,
      "Each line of standard input (or FILE) is a frame, streamed over one send channel", NULL },
    { NULL }
  };
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GBytes) frame = NULL;
  Stm32ClientLink *link;
  GError *error = NULL;
  int status;

  if (!stm32ctl_parse ("send", "[TEXT…]",
                       "Send one frame, without framing bytes (stm32d adds them): the arguments, "
                       "--file, or standard input; with --lines, one frame per line.",
                       entries, &argc, &argv, &status))
    return status;
  if (lines)
    {
      g_autoptr (GInputStream) in = NULL;

      if (argc > 1)
        return stm32ctl_usage ("send", "with --lines the frames are lines of standard input or "
                                       "--file, not arguments");
      if (file != NULL)
        {
          g_autoptr (GFile) source = g_file_new_for_commandline_arg (file);

          in = G_INPUT_STREAM (g_file_read (source, NULL, &error));
          if (in == NULL)
            return stm32ctl_fail_command ("send", error);
        }
      else
        in = g_unix_input_stream_new (STDIN_FILENO, FALSE);
      link = stm32ctl_link (ctl, &error);
      if (link == NULL)
        return stm32ctl_fail (error);
      return send_lines (ctl, link, in, hex);
    }
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
