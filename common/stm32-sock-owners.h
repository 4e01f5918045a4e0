/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * Which process holds a socket, found as `ss -p` finds it: every
 * /proc/PID/fd/N that reads "socket:[INODE]". Only processes the caller may
 * inspect can be found: stm32d, sandboxed as its unit is (PrivateUsers=,
 * ProtectProc=invisible), sees none of other users', so stm32ctl looks
 * again as whoever runs it (root sees them all).
 */
typedef struct
{
  guint64 inode;
  int pid;
  char *command; /* /proc/PID/comm; NULL if the process was gone by then */
} Stm32SockOwner;

void stm32_sock_owner_free (Stm32SockOwner *owner);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32SockOwner, stm32_sock_owner_free)

/* The owners of the @n_inodes sockets in @inodes that the caller may see: a
 * table from the inode (a guint64 *, in the owner) to its Stm32SockOwner,
 * which it frees. The caller's own process is looked at first. Blocks on
 * /proc: call it from a worker thread in a daemon. */
GHashTable *stm32_sock_owners_find (const guint64 *inodes, guint n_inodes,
                                    GCancellable *cancellable);

G_END_DECLS
