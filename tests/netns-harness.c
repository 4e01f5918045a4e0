/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "netns-harness.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>

struct _Stm32Netns
{
  char *name;
  char *pc_if;
  char *board_if;
  char *pc_address;    /* with prefix length */
  char *board_address; /* without */
};

static gboolean
run_ip_va (GError **error, const char *first, va_list args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *err = NULL;
  int status;

  g_ptr_array_add (argv, "ip");
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  g_ptr_array_add (argv, NULL);

  if (!g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, &err,
                     &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, error))
    {
      g_prefix_error (error, "ip %s: %s: ", first, err ? g_strstrip (err) : "");
      return FALSE;
    }
  return TRUE;
}

static gboolean run_ip (GError **error, const char *first, ...) G_GNUC_NULL_TERMINATED;

static gboolean
run_ip (GError **error, const char *first, ...)
{
  va_list args;
  gboolean ok;

  va_start (args, first);
  ok = run_ip_va (error, first, args);
  va_end (args);
  return ok;
}

static char *private_failure;
static gboolean private_entered;

gboolean
stm32_netns_enter_private (void)
{
  g_autoptr (GError) error = NULL;

  if (!private_entered && private_failure == NULL)
    {
      if (geteuid () != 0)
        private_failure = g_strdup ("needs root to create a network namespace for the board");
      else if (unshare (CLONE_NEWNET) < 0)
        private_failure =
            g_strdup_printf ("cannot create a network namespace: %s", g_strerror (errno));
      else if (!run_ip (&error, "link", "set", "lo", "up", NULL))
        g_error ("bringing up loopback: %s", error->message);
      else
        private_entered = TRUE;
    }
  if (private_failure != NULL && g_test_get_path () != NULL)
    g_test_skip (private_failure);
  return private_entered;
}

const char *
stm32_netns_private_failure (void)
{
  return private_failure;
}

void
stm32_netns_ip (const char *first, ...)
{
  g_autoptr (GError) error = NULL;
  va_list args;

  va_start (args, first);
  if (!run_ip_va (&error, first, args))
    g_error ("%s", error->message);
  va_end (args);
}

Stm32Netns *
stm32_netns_new (void)
{
  g_autoptr (Stm32Netns) self = NULL;
  g_autoptr (GError) error = NULL;
  guint id = (guint) getpid () % 100000;
  guint offset = ((guint) getpid () % 32768) * 4;
  g_autofree char *board_cidr = NULL;

  self = g_new0 (Stm32Netns, 1);
  self->name = g_strdup_printf ("stm32t-%u", id);
  self->pc_if = g_strdup_printf ("s32p%u", id);
  self->board_if = g_strdup_printf ("s32b%u", id);
  self->pc_address = g_strdup_printf ("198.%u.%u.%u/30", 18 + (offset >> 16), (offset >> 8) & 0xff,
                                      (offset & 0xff) + 1);
  self->board_address = g_strdup_printf ("198.%u.%u.%u", 18 + (offset >> 16), (offset >> 8) & 0xff,
                                         (offset & 0xff) + 2);
  board_cidr = g_strdup_printf ("%s/30", self->board_address);

  /* The PC's side lives in a namespace of this test process's own too: a veth
   * appearing in the host's namespace is a network change to every other test
   * running in parallel, and their links would reset their backoff. */
  if (!stm32_netns_enter_private ())
    return NULL;
  if (!run_ip (&error, "netns", "add", self->name, NULL))
    {
      g_autofree char *why =
          g_strdup_printf ("cannot create a network namespace: %s", error->message);
      g_clear_pointer (&self->name, g_free);
      g_test_skip (why);
      return NULL;
    }
  if (!run_ip (&error, "link", "add", self->pc_if, "type", "veth", "peer", "name", self->board_if,
               "netns", self->name, NULL) ||
      !run_ip (&error, "addr", "add", self->pc_address, "dev", self->pc_if, NULL) ||
      !run_ip (&error, "link", "set", self->pc_if, "up", NULL) ||
      !run_ip (&error, "-n", self->name, "addr", "add", board_cidr, "dev", self->board_if, NULL) ||
      !run_ip (&error, "-n", self->name, "link", "set", self->board_if, "up", NULL) ||
      !run_ip (&error, "-n", self->name, "link", "set", "lo", "up", NULL))
    g_error ("setting up the board's namespace: %s", error->message);
  return g_steal_pointer (&self);
}

const char *
stm32_netns_get_name (Stm32Netns *self)
{
  return self->name;
}

const char *
stm32_netns_get_board_address (Stm32Netns *self)
{
  return self->board_address;
}

void
stm32_netns_set_link (Stm32Netns *self, gboolean up)
{
  g_autoptr (GError) error = NULL;

  if (!run_ip (&error, "-n", self->name, "link", "set", self->board_if, up ? "up" : "down", NULL))
    g_error ("%s", error->message);
}

void
stm32_netns_free (Stm32Netns *self)
{
  if (self == NULL)
    return;
  /* Deleting the namespace deletes the veth pair with it. */
  if (self->name != NULL)
    run_ip (NULL, "netns", "delete", self->name, NULL);
  g_free (self->name);
  g_free (self->pc_if);
  g_free (self->board_if);
  g_free (self->pc_address);
  g_free (self->board_address);
  g_free (self);
}
