/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

#include <gio/gunixinputstream.h>
#include <glib-unix.h>
#include <stdio.h>
#include <unistd.h>

static GMainLoop *interrupt_loop;
static gboolean verbose;

void
stm32ctl_set_verbose (gboolean on)
{
  verbose = on;
}

static int
exit_code_and_hint (const GError *error, const char **hint)
{
  *hint = NULL;
  if (g_error_matches (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_ANSWER))
    {
      *hint = "stm32d may be stopped or overloaded (“systemctl status stm32d”); "
              "“stm32ctl --timeout MS …” waits longer.";
      return STM32CTL_EXIT_TIMEOUT;
    }
  if (g_error_matches (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_BUS))
    {
      *hint = "Is D-Bus running (“systemctl status dbus”)? For a development stm32d on your "
              "session bus, use “stm32ctl --session …”.";
      return STM32CTL_EXIT_NOT_RUNNING;
    }
  if (g_error_matches (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NOT_RUNNING) ||
      g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
      g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER))
    {
      *hint = "Start it with “systemctl start stm32d” (for a development bus: "
              "“stm32d --session --host HOST” and “stm32ctl --session …”).";
      return STM32CTL_EXIT_NOT_RUNNING;
    }
  if (g_error_matches (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK))
    {
      *hint = "“stm32ctl links” lists them; choose one with “-l NAME”.";
      return STM32CTL_EXIT_NO_SUCH_LINK;
    }
  if (g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED))
    {
      *hint = "Controlling links needs root or membership of group “stm32”: "
              "“sudo usermod -aG stm32 $USER”, then log in again.";
      return STM32CTL_EXIT_ACCESS_DENIED;
    }
  if (g_error_matches (error, STM32_ERROR, STM32_ERROR_NOT_CONNECTED))
    {
      *hint = "Connect first with “stm32ctl connect”.";
      return STM32CTL_EXIT_NOT_CONNECTED;
    }
  if (g_error_matches (error, STM32_ERROR, STM32_ERROR_TIMEOUT))
    return STM32CTL_EXIT_TIMEOUT;
  if (error->domain == G_OPTION_ERROR)
    return STM32CTL_EXIT_USAGE;
  return STM32CTL_EXIT_FAILURE;
}

int
stm32ctl_fail (GError *error)
{
  g_autoptr (GError) owned = error;
  const char *hint;
  int code = exit_code_and_hint (owned, &hint);

  /* Only the user's SIGINT or SIGTERM cancels (stm32ctl_wait()). */
  if (g_error_matches (owned, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_printerr ("stm32ctl: interrupted\n");
      return STM32CTL_EXIT_INTERRUPTED;
    }
  g_dbus_error_strip_remote_error (owned);
  /* dbus-daemon's refusal lists its rule matching, which tells a user
   * nothing: say what it means, and keep its words for -v. */
  if (code == STM32CTL_EXIT_ACCESS_DENIED)
    {
      g_printerr ("stm32ctl: error: permission denied: the bus did not pass the request on to "
                  "stm32d, so nothing was done\n");
      if (verbose)
        g_printerr ("The bus said: %s\n", owned->message);
    }
  else
    g_printerr ("stm32ctl: error: %s\n", owned->message);
  if (hint != NULL)
    g_printerr ("%s\n", hint);
  return code;
}

int
stm32ctl_usage (const char *command, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("stm32ctl: error: %s\nTry “stm32ctl %s --help”.\n", message, command);
  return STM32CTL_EXIT_USAGE;
}

int
stm32ctl_fail_command (const char *command, GError *error)
{
  g_autoptr (GError) owned = error;

  /* An option error is the user's to fix: point at the command's --help. */
  if (owned->domain == G_OPTION_ERROR)
    return stm32ctl_usage (command, "%s", owned->message);
  return stm32ctl_fail (g_steal_pointer (&owned));
}

gboolean
stm32ctl_parse (const char *command, const char *parameters, const char *summary,
                const GOptionEntry *entries, int *argc, char ***argv, int *exit_code)
{
  g_autoptr (GOptionContext) context = g_option_context_new (parameters);
  g_autofree char *prgname = g_strdup_printf ("stm32ctl %s", command);
  g_autoptr (GError) error = NULL;

  g_set_prgname (prgname);
  g_option_context_set_summary (context, summary);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      *exit_code = stm32ctl_usage (command, "%s", error->message);
      return FALSE;
    }
  return TRUE;
}

void
stm32ctl_store_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static gboolean
on_interrupt_call (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_CONTINUE;
}

void
stm32ctl_wait (Stm32Ctl *ctl, GAsyncResult **result)
{
  /* Only while waiting: elsewhere (reading standard input) the default
   * action ends stm32ctl, where a handler would leave it blocked. */
  guint sigint = g_unix_signal_add (SIGINT, on_interrupt_call, ctl->cancellable);
  guint sigterm = g_unix_signal_add (SIGTERM, on_interrupt_call, ctl->cancellable);

  while (*result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (sigint);
  g_source_remove (sigterm);
}

Stm32Client *
stm32ctl_client (Stm32Ctl *ctl, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  if (ctl->client != NULL)
    return ctl->client;
  /* Constructed with the call-timeout: its first calls are bounded too. */
  g_async_initable_new_async (STM32_TYPE_CLIENT, G_PRIORITY_DEFAULT, ctl->cancellable,
                              stm32ctl_store_result, &result, "bus-type", ctl->bus_type,
                              "call-timeout", ctl->call_timeout, NULL);
  stm32ctl_wait (ctl, &result);
  ctl->client = stm32_client_new_finish (result, error);
  return ctl->client;
}

gboolean
stm32ctl_take_link_argument (Stm32Ctl *ctl, const char *command, int argc, char **argv,
                             int *exit_code)
{
  if (argc > 2)
    {
      *exit_code = stm32ctl_usage (command, "unexpected argument “%s”", argv[2]);
      return FALSE;
    }
  if (argc < 2)
    return TRUE;
  if (ctl->link_name != NULL && !g_str_equal (ctl->link_name, argv[1]))
    {
      *exit_code =
          stm32ctl_usage (command, "two links given: “%s” and “%s”", ctl->link_name, argv[1]);
      return FALSE;
    }
  g_free (ctl->link_name);
  ctl->link_name = g_strdup (argv[1]);
  return TRUE;
}

GList *
stm32ctl_links (Stm32Ctl *ctl, GError **error)
{
  Stm32Client *client = stm32ctl_client (ctl, error);
  Stm32ClientLink *link;
  GList *links;

  if (client == NULL)
    return NULL;
  /* Not running: find_link() says so, with what to do. */
  if (ctl->link_name != NULL || !stm32_client_is_running (client))
    {
      link = stm32_client_find_link (client, ctl->link_name ? ctl->link_name : "", error);
      return link ? g_list_prepend (NULL, link) : NULL;
    }
  links = stm32_client_get_links (client);
  if (links == NULL)
    g_set_error_literal (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK,
                         "stm32d has no links; add one to its configuration");
  return links;
}

Stm32ClientLink *
stm32ctl_link (Stm32Ctl *ctl, GError **error)
{
  g_autoptr (GList) links = stm32ctl_links (ctl, error);

  if (links == NULL)
    return NULL;
  if (links->next == NULL)
    return links->data;
  g_set_error (error, STM32_CLIENT_ERROR, STM32_CLIENT_ERROR_NO_SUCH_LINK,
               "stm32d has %u links; say which one with “-l NAME”", g_list_length (links));
  return NULL;
}

char *
stm32ctl_link_endpoint (Stm32ClientLink *link)
{
  return g_strdup_printf ("%s:%u", stm32_client_link_get_host (link),
                          stm32_client_link_get_port (link));
}

static gboolean
on_interrupt (gpointer user_data)
{
  stm32ctl_quit ();
  return G_SOURCE_CONTINUE;
}

void
stm32ctl_run_until_interrupted (void)
{
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  guint sigint = g_unix_signal_add (SIGINT, on_interrupt, NULL);
  guint sigterm = g_unix_signal_add (SIGTERM, on_interrupt, NULL);

  interrupt_loop = loop;
  g_main_loop_run (loop);
  interrupt_loop = NULL;
  g_source_remove (sigint);
  g_source_remove (sigterm);
}

void
stm32ctl_quit (void)
{
  if (interrupt_loop != NULL)
    g_main_loop_quit (interrupt_loop);
}

/* What the user gave, for an error about it: quoted, valid UTF-8 (a byte cut
 * out of a character would print as garbage) and short enough to read. */
#define QUOTED_MAX_CHARS 40

static char *
quote_input (const char *text)
{
  glong length = g_utf8_strlen (text, -1);
  g_autofree char *head = g_utf8_substring (text, 0, MIN (length, QUOTED_MAX_CHARS));

  return g_strdup_printf ("“%s%s”", head, length > QUOTED_MAX_CHARS ? "…" : "");
}

GBytes *
stm32ctl_parse_hex (const char *text, GError **error)
{
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  g_autofree char *quoted = NULL;
  int high = -1;
  guint position = 1;

  /* Hex digits are ASCII: whatever made @text invalid UTF-8 is rejected either way. */
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p), position++)
    {
      int digit = g_ascii_xdigit_value (*p);

      if (g_ascii_isspace (*p) || *p == ':')
        continue;
      if (digit < 0)
        {
          char character[7] = { 0 };

          g_unichar_to_utf8 (g_utf8_get_char (p), character);
          quoted = quote_input (valid);
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "%s is not hex: “%s” (character %u) is not a hex digit", quoted, character,
                       position);
          return NULL;
        }
      if (high < 0)
        high = digit;
      else
        {
          guint8 byte = (guint8) (high << 4 | digit);

          g_byte_array_append (bytes, &byte, 1);
          high = -1;
        }
    }
  if (high >= 0)
    {
      quoted = quote_input (valid);
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s is not hex: odd number of hex digits", quoted);
      return NULL;
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&bytes));
}

GBytes *
stm32ctl_read_frame (int argc, char **argv, gboolean hex, const char *file, GError **error)
{
  g_autofree char *text = NULL;

  if (file != NULL && argc > 1)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           "give the frame as arguments or with --file, not both");
      return NULL;
    }
  if (file != NULL)
    {
      g_autoptr (GMappedFile) mapped = g_mapped_file_new (file, FALSE, error);

      if (mapped == NULL)
        return NULL;
      if (!hex)
        return g_mapped_file_get_bytes (mapped);
      text = g_strndup (g_mapped_file_get_contents (mapped), g_mapped_file_get_length (mapped));
      return stm32ctl_parse_hex (text, error);
    }
  if (argc > 1)
    text = g_strjoinv (" ", argv + 1);
  else
    {
      /* No arguments: the frame is standard input, as in “echo hi | stm32ctl send”. */
      g_autoptr (GInputStream) in = g_unix_input_stream_new (STDIN_FILENO, FALSE);
      g_autoptr (GOutputStream) all = g_memory_output_stream_new_resizable ();
      gsize len;

      if (g_output_stream_splice (all, in, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, error) < 0)
        return NULL;
      len = g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (all));
      text = g_strndup (g_memory_output_stream_get_data (G_MEMORY_OUTPUT_STREAM (all)), len);
      /* The newline echo adds ends the line, it is not part of the frame
       * (--file sends a file byte for byte). */
      if (len > 0 && text[len - 1] == '\n')
        text[--len] = '\0';
      if (len > 0 && text[len - 1] == '\r')
        text[--len] = '\0';
      if (!hex)
        return g_bytes_new (text, len);
    }
  return hex ? stm32ctl_parse_hex (text, error) : g_bytes_new (text, strlen (text));
}

char *
stm32ctl_format_frame (GBytes *frame, gboolean hex)
{
  gsize len;
  const char *data = g_bytes_get_data (frame, &len);
  g_autoptr (GString) out = NULL;
  gboolean printable = !hex && g_utf8_validate_len (data, len, NULL);

  for (gsize i = 0; printable && i < len; i++)
    printable = data[i] == '\t' || !g_ascii_iscntrl (data[i]);
  if (printable)
    return g_strndup (data, len);
  out = g_string_sized_new (len * 3);
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (out, "%s%02x", i ? " " : "", (guint8) data[i]);
  return g_string_free (g_steal_pointer (&out), FALSE);
}
