/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib-object.h>

#include "stm32-link-types.h"

G_BEGIN_DECLS

/* The kernel's limits for TCP_KEEPIDLE/TCP_KEEPINTVL (seconds), TCP_KEEPCNT,
 * and TCP_USER_TIMEOUT (an int of milliseconds); beyond them setsockopt fails. */
#define STM32_MAX_KEEPALIVE_S 32767
#define STM32_MAX_KEEPALIVE_COUNT 127
#define STM32_MAX_USER_TIMEOUT G_MAXINT

/* Everything that configures one link; one field per config key (DESIGN.md).
 * Durations in milliseconds, keepalive idle/interval in seconds as the kernel takes them. */
typedef struct
{
  char *host;
  guint16 port;
  gboolean autoconnect;
  Stm32Framing framing;
  guint max_frame;
  guint connect_timeout;
  guint close_timeout;
  Stm32CloseMode close_mode;
  guint retry_min;
  guint retry_max;
  guint retry_reset_after;
  guint busy_window;
  guint busy_backoff;
  guint keepalive_idle_s;
  guint keepalive_interval_s;
  guint keepalive_count;
  guint user_timeout;
  guint idle_timeout;      /* 0 = off */
  GBytes *heartbeat;       /* frame to send as a ping; NULL = off */
  GBytes *heartbeat_reply; /* the board's answer to it; NULL = whatever frame comes next */
  guint heartbeat_interval;
  guint heartbeat_timeout;
  guint send_queue_max;
  guint reply_grace; /* how long a late reply is awaited before the next request */
} Stm32LinkConfig;

/* Boxed (copy, free): a Stm32Link's construct-only "config" property. */
#define STM32_TYPE_LINK_CONFIG (stm32_link_config_get_type ())
GType stm32_link_config_get_type (void) G_GNUC_CONST;

Stm32LinkConfig *stm32_link_config_new (const char *host, guint16 port);
Stm32LinkConfig *stm32_link_config_copy (const Stm32LinkConfig *config);
void stm32_link_config_free (Stm32LinkConfig *config);
/* Whether two configs make the same link apart from Autoconnect, which a link
 * can change while it runs (Reload keeps such links up). */
gboolean stm32_link_config_equal_but_autoconnect (const Stm32LinkConfig *a,
                                                  const Stm32LinkConfig *b);

/* The board a config reaches, as one string: the host in lower case without
 * a trailing dot (an IP literal in its canonical form) and the port. Two links
 * to one board would each take one of its few connection slots. */
char *stm32_link_config_dup_endpoint (const Stm32LinkConfig *config);
/* Whether @a and @b reach the same board (same endpoint, as above). */
gboolean stm32_link_config_same_endpoint (const Stm32LinkConfig *a, const Stm32LinkConfig *b);

/* Checks values that are valid one by one but not together (e.g. RetryMin > RetryMax). */
gboolean stm32_link_config_validate (const Stm32LinkConfig *config, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stm32LinkConfig, stm32_link_config_free)

G_END_DECLS
