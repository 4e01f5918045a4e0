/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-sock-census.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stm32-sock-owners.h"

/* Linux's own TCP states past TCP_CLOSING, as include/net/tcp_states.h has them. */
#define CENSUS_TCP_NEW_SYN_RECV 12
#define CENSUS_TCP_MAX_STATES 13
/* The kernel answers a dump at once (each recv() fills the next chunk); this
 * only bounds a kernel that stalls, so a census never hangs its thread. */
#define CENSUS_STALL_MS 1000
/* Bounds the dump on a PC with very many sockets. */
#define CENSUS_MAX_READS 100000

void
stm32_sock_entry_free (Stm32SockEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->local_address);
  g_free (entry->remote_address);
  g_free (entry->command);
  g_free (entry);
}

const char *
stm32_sock_state_name (guint state)
{
  static const char *const names[CENSUS_TCP_MAX_STATES] = {
    [TCP_ESTABLISHED] = "ESTABLISHED",
    [TCP_SYN_SENT] = "SYN_SENT",
    [TCP_SYN_RECV] = "SYN_RECV",
    [TCP_FIN_WAIT1] = "FIN_WAIT_1",
    [TCP_FIN_WAIT2] = "FIN_WAIT_2",
    [TCP_TIME_WAIT] = "TIME_WAIT",
    [TCP_CLOSE] = "CLOSE",
    [TCP_CLOSE_WAIT] = "CLOSE_WAIT",
    [TCP_LAST_ACK] = "LAST_ACK",
    [TCP_LISTEN] = "LISTEN",
    [TCP_CLOSING] = "CLOSING",
    [CENSUS_TCP_NEW_SYN_RECV] = "NEW_SYN_RECV",
  };

  return state < G_N_ELEMENTS (names) && names[state] ? names[state] : "UNKNOWN";
}

char *
stm32_sock_format_address (GInetAddress *address, guint16 port)
{
  g_autofree char *text = g_inet_address_to_string (address);

  if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[%s]:%u", text, port);
  return g_strdup_printf ("%s:%u", text, port);
}

/* An address from a dump; a dual-stack socket talking IPv4 reports the
 * v4-mapped form, which is the same board. */
static GInetAddress *
diag_address (guint8 family, const __be32 words[4])
{
  static const guint8 v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

  if (family == AF_INET6 && memcmp (words, v4_mapped, sizeof v4_mapped) == 0)
    return g_inet_address_new_from_bytes ((const guint8 *) &words[3], G_SOCKET_FAMILY_IPV4);
  return g_inet_address_new_from_bytes (
      (const guint8 *) words, family == AF_INET6 ? G_SOCKET_FAMILY_IPV6 : G_SOCKET_FAMILY_IPV4);
}

typedef struct
{
  GHashTable *addresses; /* the boards' addresses, as strings */
  GHashTable *ports;     /* the boards' ports, as GUINT_TO_POINTER */
  GPtrArray *entries;
} Census;

static void
census_add (Census *census, const struct inet_diag_msg *msg)
{
  g_autoptr (GInetAddress) remote = NULL, local = NULL;
  g_autofree char *remote_text = NULL;
  Stm32SockEntry *entry;

  guint16 port = ntohs (msg->id.idiag_dport);

  if (!g_hash_table_contains (census->ports, GUINT_TO_POINTER (port)))
    return;
  remote = diag_address (msg->idiag_family, msg->id.idiag_dst);
  remote_text = g_inet_address_to_string (remote);
  if (!g_hash_table_contains (census->addresses, remote_text))
    return;
  local = diag_address (msg->idiag_family, msg->id.idiag_src);
  entry = g_new0 (Stm32SockEntry, 1);
  entry->state = msg->idiag_state;
  entry->local_address = stm32_sock_format_address (local, ntohs (msg->id.idiag_sport));
  entry->remote_address = stm32_sock_format_address (remote, port);
  entry->uid = msg->idiag_uid;
  entry->inode = msg->idiag_inode;
  g_ptr_array_add (census->entries, entry);
}

static gboolean
set_errno_error (GError **error, int saved_errno, const char *what)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "%s: %s", what,
               g_strerror (saved_errno));
  return FALSE;
}

/* Parses one datagram; sets *done at NLMSG_DONE. */
static gboolean
census_parse (Census *census, const guint8 *buffer, gssize len, gboolean *done, GError **error)
{
  for (const struct nlmsghdr *h = (const struct nlmsghdr *) buffer; NLMSG_OK (h, len);
       h = NLMSG_NEXT (h, len))
    {
      if (h->nlmsg_type == NLMSG_DONE)
        {
          *done = TRUE;
          return TRUE;
        }
      if (h->nlmsg_type == NLMSG_ERROR)
        {
          const struct nlmsgerr *err = NLMSG_DATA (h);

          return set_errno_error (error, -err->error, "The kernel refused the socket dump");
        }
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
          h->nlmsg_len >= NLMSG_LENGTH (sizeof (struct inet_diag_msg)))
        census_add (census, NLMSG_DATA (h));
    }
  return TRUE;
}

static gboolean
census_wait_readable (int fd, GError **error)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  int ready;

  do
    ready = poll (&pfd, 1, CENSUS_STALL_MS);
  while (ready < 0 && errno == EINTR);
  if (ready > 0)
    return TRUE;
  if (ready == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "The kernel's socket dump stalled for %u ms", CENSUS_STALL_MS);
      return FALSE;
    }
  return set_errno_error (error, errno, "Waiting for the socket dump");
}

/* One request, one dump, for one address family. */
static gboolean
census_dump (Census *census, int family, GCancellable *cancellable, GError **error)
{
  struct
  {
    struct nlmsghdr header;
    struct inet_diag_req_v2 request;
  } message = {
    .header = { .nlmsg_len = sizeof message,
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                .nlmsg_seq = 1 },
    .request = { .sdiag_family = (guint8) family,
                 .sdiag_protocol = IPPROTO_TCP,
                 /* Every state but LISTEN: a board endpoint is never ours to listen on. */
                 .idiag_states = ((1u << CENSUS_TCP_MAX_STATES) - 1) & ~(1u << TCP_LISTEN) },
  };
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  g_autofree guint8 *buffer = g_malloc (32768);
  gboolean done = FALSE, ok = TRUE;
  int fd = socket (AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

  if (fd < 0)
    return set_errno_error (error, errno, "Cannot open a sock_diag netlink socket");
  if (sendto (fd, &message, sizeof message, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0)
    ok = set_errno_error (error, errno, "Cannot ask the kernel for its sockets");
  for (guint reads = 0; ok && !done; reads++)
    {
      gssize len;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          ok = FALSE;
          break;
        }
      if (reads == CENSUS_MAX_READS)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "The socket dump did not end");
          ok = FALSE;
          break;
        }
      len = recv (fd, buffer, 32768, 0);
      if (len < 0 && (errno == EAGAIN || errno == EINTR))
        ok = errno == EINTR || census_wait_readable (fd, error);
      else if (len < 0)
        ok = set_errno_error (error, errno, "Reading the socket dump");
      else
        ok = census_parse (census, buffer, len, &done, error);
    }
  close (fd);
  return ok;
}

/* inode → pid and command, where this process may see them. */
static void
census_find_owners (GPtrArray *entries, GCancellable *cancellable)
{
  g_autoptr (GArray) inodes = g_array_sized_new (FALSE, FALSE, sizeof (guint64), entries->len);
  g_autoptr (GHashTable) owners = NULL;

  for (guint i = 0; i < entries->len; i++)
    g_array_append_val (inodes, ((Stm32SockEntry *) entries->pdata[i])->inode);
  owners = stm32_sock_owners_find ((const guint64 *) inodes->data, inodes->len, cancellable);
  for (guint i = 0; i < entries->len; i++)
    {
      Stm32SockEntry *entry = entries->pdata[i];
      Stm32SockOwner *owner = g_hash_table_lookup (owners, &entry->inode);

      if (owner == NULL)
        continue;
      entry->pid = owner->pid;
      entry->command = g_strdup (owner->command);
    }
}

GPtrArray *
stm32_sock_census_collect (const char *const *addresses, guint16 port, GCancellable *cancellable,
                           GError **error)
{
  return stm32_sock_census_collect_ports (addresses, &port, 1, cancellable, error);
}

GPtrArray *
stm32_sock_census_collect_ports (const char *const *addresses, const guint16 *ports, gsize n_ports,
                                 GCancellable *cancellable, GError **error)
{
  g_autoptr (GHashTable) wanted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GPtrArray) entries =
      g_ptr_array_new_with_free_func ((GDestroyNotify) stm32_sock_entry_free);
  g_autoptr (GHashTable) wanted_ports = g_hash_table_new (g_direct_hash, g_direct_equal);
  Census census = { wanted, wanted_ports, entries };
  g_autoptr (GError) v6_error = NULL;
  gboolean v6_board = FALSE;

  for (gsize i = 0; i < n_ports; i++)
    g_hash_table_add (wanted_ports, GUINT_TO_POINTER (ports[i]));
  for (guint i = 0; addresses != NULL && addresses[i] != NULL; i++)
    {
      g_autoptr (GInetAddress) address = g_inet_address_new_from_string (addresses[i]);

      /* Keyed by the canonical text, so "::ffff:127.0.0.1" and "127.0.0.1" agree. */
      if (address == NULL)
        continue;
      g_hash_table_add (wanted, g_inet_address_to_string (address));
      v6_board |= g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6;
    }
  if (!census_dump (&census, AF_INET, cancellable, error))
    return NULL;
  /* IPv6 sockets matter for an IPv4 board too (dual-stack sockets talk
   * v4-mapped), but a kernel without IPv6 cannot have any. */
  if (!census_dump (&census, AF_INET6, cancellable, &v6_error))
    {
      if (v6_board || g_error_matches (v6_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_propagate_error (error, g_steal_pointer (&v6_error));
          return NULL;
        }
      g_debug ("no IPv6 sockets in the census: %s", v6_error->message);
    }
  census_find_owners (entries, cancellable);
  return g_steal_pointer (&entries);
}

typedef struct
{
  char **addresses;
  GArray *ports; /* guint16 */
} CensusRequest;

static void
census_request_free (CensusRequest *request)
{
  g_strfreev (request->addresses);
  g_array_unref (request->ports);
  g_free (request);
}

static void
census_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  CensusRequest *request = task_data;
  GError *error = NULL;
  GPtrArray *entries = stm32_sock_census_collect_ports ((const char *const *) request->addresses,
                                                        (const guint16 *) request->ports->data,
                                                        request->ports->len, cancellable, &error);

  if (entries == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, entries, (GDestroyNotify) g_ptr_array_unref);
}

void
stm32_sock_census_async (const char *const *addresses, guint16 port, GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  stm32_sock_census_ports_async (addresses, &port, 1, cancellable, callback, user_data);
}

void
stm32_sock_census_ports_async (const char *const *addresses, const guint16 *ports, gsize n_ports,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  CensusRequest *request = g_new0 (CensusRequest, 1);

  g_task_set_source_tag (task, stm32_sock_census_async);
  request->addresses = g_strdupv ((char **) addresses);
  request->ports = g_array_sized_new (FALSE, FALSE, sizeof (guint16), n_ports);
  g_array_append_vals (request->ports, ports, n_ports);
  g_task_set_task_data (task, request, (GDestroyNotify) census_request_free);
  g_task_run_in_thread (task, census_thread);
}

GPtrArray *
stm32_sock_census_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
