/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-sock-owners.h"

#include <string.h>
#include <unistd.h>

void
stm32_sock_owner_free (Stm32SockOwner *owner)
{
  if (owner == NULL)
    return;
  g_free (owner->command);
  g_free (owner);
}

/* "socket:[12345]" → 12345, else 0. */
static guint64
socket_inode (const char *link)
{
  if (link == NULL || !g_str_has_prefix (link, "socket:["))
    return 0;
  return g_ascii_strtoull (link + strlen ("socket:["), NULL, 10);
}

static char *
process_command (const char *pid)
{
  g_autofree char *path = g_build_filename ("/proc", pid, "comm", NULL);
  g_autofree char *comm = NULL;

  if (!g_file_get_contents (path, &comm, NULL, NULL))
    return NULL;
  return g_strdup (g_strchomp (comm));
}

/* Moves the sockets of @pending (inode → NULL) that process @pid holds to
 * @owners. */
static void
scan_process (GHashTable *pending, GHashTable *owners, const char *pid)
{
  g_autofree char *fd_dir = g_build_filename ("/proc", pid, "fd", NULL);
  g_autoptr (GDir) dir = g_dir_open (fd_dir, 0, NULL);
  g_autofree char *command = NULL;
  const char *name;

  /* Not ours to inspect (another user without CAP_SYS_PTRACE, hidepid,
   * ProtectProc=), or gone already: skipped, as `ss -p` does. */
  if (dir == NULL)
    return;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (fd_dir, name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);
      guint64 inode = socket_inode (target);
      Stm32SockOwner *owner;

      if (inode == 0 || !g_hash_table_remove (pending, &inode))
        continue;
      if (command == NULL)
        command = process_command (pid);
      owner = g_new0 (Stm32SockOwner, 1);
      owner->inode = inode;
      owner->pid = (int) g_ascii_strtoll (pid, NULL, 10);
      owner->command = g_strdup (command);
      g_hash_table_insert (owners, &owner->inode, owner);
    }
}

GHashTable *
stm32_sock_owners_find (const guint64 *inodes, guint n_inodes, GCancellable *cancellable)
{
  g_autoptr (GHashTable) pending = g_hash_table_new (g_int64_hash, g_int64_equal);
  GHashTable *owners = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                              (GDestroyNotify) stm32_sock_owner_free);
  g_autofree char *self = g_strdup_printf ("%d", (int) getpid ());
  g_autoptr (GDir) proc = NULL;
  const char *name;

  for (guint i = 0; i < n_inodes; i++)
    if (inodes[i] != 0)
      g_hash_table_add (pending, (gpointer) &inodes[i]);
  if (g_hash_table_size (pending) == 0)
    return owners;
  /* The caller's own first: in stm32d, the link's socket is the one most
   * likely there. */
  scan_process (pending, owners, self);
  proc = g_dir_open ("/proc", 0, NULL);
  while (proc != NULL && g_hash_table_size (pending) > 0 &&
         !g_cancellable_is_cancelled (cancellable) && (name = g_dir_read_name (proc)) != NULL)
    if (g_ascii_isdigit (name[0]) && !g_str_equal (name, self))
      scan_process (pending, owners, name);
  return owners;
}
