/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl.h"

#define STARTED_TIMEOUT_MS 5000

/* "waiting" counts: a refused attempt can go from connecting to waiting within
 * one batch of property changes, and either way stm32d is now trying. */
static gboolean
attempt_started (Stm32ClientLink *link)
{
  const char *state = stm32_client_link_get_state (link);

  return g_str_equal (state, "connecting") || g_str_equal (state, "connected") ||
         g_str_equal (state, "waiting");
}

static gboolean
on_started_timeout (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  stm32ctl_quit ();
  return G_SOURCE_REMOVE;
}

static void
on_state (Stm32ClientLink *link, GParamSpec *pspec, gpointer user_data)
{
  if (attempt_started (link))
    stm32ctl_quit ();
}

/* --no-wait: returns once stm32d shows the attempt under way, not its outcome. */
static int
connect_no_wait (Stm32ClientLink *link)
{
  gboolean timed_out = FALSE;
  guint timer;
  g_autofree char *endpoint = NULL;

  stm32_client_link_connect (link, NULL, NULL, NULL);
  if (!attempt_started (link))
    {
      g_signal_connect (link, "notify::state", G_CALLBACK (on_state), NULL);
      timer = g_timeout_add (STARTED_TIMEOUT_MS, on_started_timeout, &timed_out);
      stm32ctl_run_until_interrupted ();
      g_signal_handlers_disconnect_by_func (link, on_state, NULL);
      if (!timed_out)
        g_source_remove (timer);
    }
  if (!attempt_started (link))
    return stm32ctl_fail (g_error_new (STM32_ERROR, STM32_ERROR_TIMEOUT,
                                       "stm32d did not start connecting “%s” within %u ms",
                                       stm32_client_link_get_name (link), STARTED_TIMEOUT_MS));
  endpoint = stm32ctl_link_endpoint (link);
  g_print ("Connecting %s to %s\n", stm32_client_link_get_name (link), endpoint);
  return STM32CTL_EXIT_OK;
}

int
stm32ctl_cmd_connect (Stm32Ctl *ctl, int argc, char **argv)
{
  gboolean no_wait = FALSE;
  const GOptionEntry entries[] = { { "no-wait", 0, 0, G_OPTION_ARG_NONE, &no_wait,
                                     "Return once the attempt has started, not when it succeeded",
                                     NULL },
                                   { NULL } };
  g_autoptr (GAsyncResult) result = NULL;
  Stm32ClientLink *link;
  GError *error = NULL;
  g_autofree char *endpoint = NULL;
  int status;

  if (!stm32ctl_parse ("connect", NULL,
                       "Connect a link and wait for the outcome. The link then stays up: stm32d "
                       "reconnects on its own until “stm32ctl disconnect”.",
                       entries, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return stm32ctl_usage ("connect", "unexpected argument “%s”; use -l NAME to choose a link",
                           argv[1]);
  link = stm32ctl_link (ctl, &error);
  if (link == NULL)
    return stm32ctl_fail (error);
  if (no_wait)
    return connect_no_wait (link);
  stm32_client_link_connect (link, ctl->cancellable, stm32ctl_store_result, &result);
  stm32ctl_wait (ctl, &result);
  if (!stm32_client_link_connect_finish (link, result, &error))
    {
      /* Only an attempt stm32d made leaves it retrying; a call that never
       * reached it (refused by the bus, unanswered) asked nothing of it. */
      gboolean attempted = error->domain == STM32_ERROR;

      status = stm32ctl_fail (error);
      if (attempted)
        g_printerr ("stm32d keeps retrying in the background; “stm32ctl disconnect” stops it.\n");
      return status;
    }
  endpoint = stm32ctl_link_endpoint (link);
  g_print ("Connected %s to %s\n", stm32_client_link_get_name (link), endpoint);
  return STM32CTL_EXIT_OK;
}
