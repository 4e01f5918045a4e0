/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * Stm32SockCensus: every TCP socket of this PC towards one board endpoint,
 * whoever owns it, read from the kernel's sock_diag netlink interface (what
 * `ss` uses), with the owning process where /proc lets us see it (`ss -p`).
 * A competing client that holds the board's few connection slots shows up
 * here even though stm32d never sees its traffic.
 */
typedef struct
{
  guint state;          /* the kernel's TCP state (TCP_ESTABLISHED, ...) */
  char *local_address;  /* "ADDR:PORT", IPv6 as "[ADDR]:PORT", v4-mapped as IPv4 */
  char *remote_address; /* same form */
  guint32 uid;
  guint64 inode; /* 0 when no process holds it (TIME_WAIT, orphans) */
  int pid;       /* 0 when not known: no inode, or a process we may not inspect */
  char *command; /* /proc/PID/comm; NULL with pid 0 */
} Stm32SockEntry;

void stm32_sock_entry_free (Stm32SockEntry *entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32SockEntry, stm32_sock_entry_free)

/* "ESTABLISHED", "SYN_SENT", "TIME_WAIT", ... as `ss` and netstat name them. */
const char *stm32_sock_state_name (guint state);

/* "ADDR:PORT" for @address and @port in the census's form. */
char *stm32_sock_format_address (GInetAddress *address, guint16 port);

/* Collects the sockets whose remote end is @port on one of @addresses
 * (GInetAddress strings). Runs in a worker thread: the kernel's dump and the
 * /proc scan never hold up the caller's main loop. Processes we may not
 * inspect are skipped silently (their sockets keep pid 0). Finishes with a
 * GPtrArray of Stm32SockEntry that frees its entries. */
void stm32_sock_census_async (const char *const *addresses, guint16 port, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
GPtrArray *stm32_sock_census_finish (GAsyncResult *result, GError **error);

/* The same for a remote port that is any of @ports: one kernel dump and one
 * /proc scan for many boards at once (finish with stm32_sock_census_finish). */
void stm32_sock_census_ports_async (const char *const *addresses, const guint16 *ports,
                                    gsize n_ports, GCancellable *cancellable,
                                    GAsyncReadyCallback callback, gpointer user_data);

/* The same, in the calling thread. */
GPtrArray *stm32_sock_census_collect (const char *const *addresses, guint16 port,
                                      GCancellable *cancellable, GError **error);
GPtrArray *stm32_sock_census_collect_ports (const char *const *addresses, const guint16 *ports,
                                            gsize n_ports, GCancellable *cancellable,
                                            GError **error);

G_END_DECLS
