/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/*
 * A board host of the test's own: a network namespace joined to ours by a veth
 * pair with a /30 of its own from 198.18.0.0/15 (RFC 2544's benchmarking
 * range, so no real host can be behind it), chosen by pid so that tests
 * running in parallel never share an address. Cutting the board's
 * side drops every packet silently, as a pulled cable does — something
 * loopback cannot show, since its kernel always answers.
 */
typedef struct _Stm32Netns Stm32Netns;

/* NULL, with the test marked skipped and the reason given, when not root or
 * when namespaces cannot be made here. Moves the calling process into a
 * network namespace of its own first (with only loopback), so the veth pair
 * is invisible to other tests: call it before creating any link or socket. */
Stm32Netns *stm32_netns_new (void);

/* Moves the calling process into a network namespace of its own with only
 * loopback up (once; later calls just report). FALSE when not root or when
 * namespaces cannot be made here; inside a test, the test is then skipped
 * with the reason, which stm32_netns_private_failure() also returns. */
gboolean stm32_netns_enter_private (void);
const char *stm32_netns_private_failure (void);

/* Runs `ip ARGS...` (NULL-terminated); a failure fails the test. */
void stm32_netns_ip (const char *first, ...) G_GNUC_NULL_TERMINATED;

/* Name to use with `ip netns exec`. */
const char *stm32_netns_get_name (Stm32Netns *self);

/* The board's address, inside the namespace. */
const char *stm32_netns_get_board_address (Stm32Netns *self);

/* Cut or restore the board's link (its veth end down/up). */
void stm32_netns_set_link (Stm32Netns *self, gboolean up);

void stm32_netns_free (Stm32Netns *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32Netns, stm32_netns_free)

G_END_DECLS
