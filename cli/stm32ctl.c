/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <locale.h>
#include <stdio.h>

#include "stm32ctl.h"

typedef struct
{
  const char *name;
  Stm32CtlCommandFunc run;
  const char *summary;
} Command;

/* The table is the help text: adding a row adds a command. */
static const Command commands[] = {
  { "links", stm32ctl_cmd_links, "List the boards stm32d manages" },
  { "status", stm32ctl_cmd_status,
    "Show a link's state, errors and counters, or a table of every link" },
  { "connect", stm32ctl_cmd_connect, "Connect a link and wait for the outcome" },
  { "disconnect", stm32ctl_cmd_disconnect, "Close a link gracefully" },
  { "send", stm32ctl_cmd_send, "Send one frame" },
  { "transact", stm32ctl_cmd_transact, "Send a frame and print the reply" },
  { "monitor", stm32ctl_cmd_monitor, "Print frames and state changes until Ctrl-C" },
  { "history", stm32ctl_cmd_history, "Show recent connection attempts and how they ended" },
  { "autoconnect", stm32ctl_cmd_autoconnect, "Turn keeping a link up on or off" },
  { "reload", stm32ctl_cmd_reload, "Make stm32d re-read its configuration" },
  { "doctor", stm32ctl_cmd_doctor,
    "Say what is wrong with a board's connection (or every board's) and how to fix it" },
  { "metrics", stm32ctl_cmd_metrics, "Print every link's counters for Prometheus" },
};

static char *
commands_help (void)
{
  GString *help = g_string_new ("Commands:\n");

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    g_string_append_printf (help, "  %-13s%s\n", commands[i].name, commands[i].summary);
  g_string_append (help, "\n“stm32ctl COMMAND --help” describes a command.\n\n"
                         "Exit status: 0 success, 1 failure, 2 usage error, 3 not connected,\n"
                         "4 timeout, 5 stm32d not running, 6 no such link, 7 access denied,\n"
                         "8 problems found (doctor), 130 interrupted.");
  return g_string_free (help, FALSE);
}

int
main (int argc, char **argv)
{
  Stm32Ctl ctl = { .bus_type = G_BUS_TYPE_SYSTEM };
  gboolean session = FALSE, system = FALSE, version = FALSE, verbose = FALSE;
  int call_timeout = STM32_CLIENT_CALL_TIMEOUT_DEFAULT;
  const GOptionEntry entries[] = {
    { "link", 'l', 0, G_OPTION_ARG_STRING, &ctl.link_name,
      "The link to act on (default: the only one)", "NAME" },
    { "system", 0, 0, G_OPTION_ARG_NONE, &system, "Talk to stm32d on the system bus (default)",
      NULL },
    { "session", 0, 0, G_OPTION_ARG_NONE, &session, "Talk to stm32d on the session bus", NULL },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &call_timeout,
      "Wait at most MS for each answer from stm32d (60000; transact adds its own)", "MS" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
      "Also show the bus's own words where an error rephrases them", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("COMMAND [ARGUMENTS…]");
  g_autofree char *help = commands_help ();
  g_autoptr (GError) error = NULL;
  int status = STM32CTL_EXIT_USAGE;

  setlocale (LC_ALL, "");
  g_option_context_set_summary (context, "Control the board links of stm32d.");
  g_option_context_set_description (context, help);
  g_option_context_add_main_entries (context, entries, NULL);
  /* Global options come before the command; the rest is the command's. */
  g_option_context_set_strict_posix (context, TRUE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("stm32ctl: error: %s\nTry “stm32ctl --help”.\n", error->message);
      goto out;
    }
  if (version)
    {
      g_print ("stm32ctl %s\n", STM32CTL_VERSION);
      status = STM32CTL_EXIT_OK;
      goto out;
    }
  if (session && system)
    {
      g_printerr ("stm32ctl: error: --system and --session exclude each other\n");
      goto out;
    }
  if (call_timeout < 1)
    {
      g_printerr ("stm32ctl: error: --timeout must be at least 1 ms\n");
      goto out;
    }
  ctl.call_timeout = (guint) call_timeout;
  ctl.cancellable = g_cancellable_new ();
  if (session)
    ctl.bus_type = G_BUS_TYPE_SESSION;
  stm32ctl_set_verbose (verbose);
  if (argc < 2)
    {
      g_printerr ("stm32ctl: error: no command given\nTry “stm32ctl --help”.\n");
      goto out;
    }
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (argv[1], commands[i].name))
      {
        status = commands[i].run (&ctl, argc - 1, argv + 1);
        goto out;
      }
  g_printerr ("stm32ctl: error: unknown command “%s”\nTry “stm32ctl --help”.\n", argv[1]);

out:
  g_clear_object (&ctl.client);
  g_clear_object (&ctl.cancellable);
  g_free (ctl.link_name);
  return status;
}
