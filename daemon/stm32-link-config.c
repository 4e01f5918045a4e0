/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-link-config.h"

#include <gio/gio.h>

#include "stm32-defaults.h"
#include "stm32-error.h"
#include "stm32-enum-types.h"
#include "stm32-framer.h"

G_DEFINE_BOXED_TYPE (Stm32LinkConfig, stm32_link_config, stm32_link_config_copy,
                     stm32_link_config_free)

Stm32LinkConfig *
stm32_link_config_new (const char *host, guint16 port)
{
  Stm32LinkConfig *config = g_new0 (Stm32LinkConfig, 1);

  config->host = g_strdup (host);
  config->port = port;
  config->autoconnect = STM32_DEFAULT_AUTOCONNECT;
  config->framing = STM32_DEFAULT_FRAMING;
  config->max_frame = STM32_DEFAULT_MAX_FRAME;
  config->connect_timeout = STM32_DEFAULT_CONNECT_TIMEOUT;
  config->close_timeout = STM32_DEFAULT_CLOSE_TIMEOUT;
  config->close_mode = STM32_DEFAULT_CLOSE_MODE;
  config->retry_min = STM32_DEFAULT_RETRY_MIN;
  config->retry_max = STM32_DEFAULT_RETRY_MAX;
  config->retry_reset_after = STM32_DEFAULT_RETRY_RESET_AFTER;
  config->busy_window = STM32_DEFAULT_BUSY_WINDOW;
  config->busy_backoff = STM32_DEFAULT_BUSY_BACKOFF;
  config->keepalive_idle_s = STM32_DEFAULT_KEEPALIVE_IDLE_S;
  config->keepalive_interval_s = STM32_DEFAULT_KEEPALIVE_INTERVAL_S;
  config->keepalive_count = STM32_DEFAULT_KEEPALIVE_COUNT;
  config->user_timeout = STM32_DEFAULT_USER_TIMEOUT;
  config->idle_timeout = STM32_DEFAULT_IDLE_TIMEOUT;
  config->heartbeat_interval = STM32_DEFAULT_HEARTBEAT_INTERVAL;
  config->heartbeat_timeout = STM32_DEFAULT_HEARTBEAT_TIMEOUT;
  config->send_queue_max = STM32_DEFAULT_SEND_QUEUE_MAX;
  config->reply_grace = STM32_DEFAULT_REPLY_GRACE;
  return config;
}

Stm32LinkConfig *
stm32_link_config_copy (const Stm32LinkConfig *config)
{
  Stm32LinkConfig *copy = g_memdup2 (config, sizeof *config);

  copy->host = g_strdup (config->host);
  copy->heartbeat = config->heartbeat ? g_bytes_ref (config->heartbeat) : NULL;
  copy->heartbeat_reply = config->heartbeat_reply ? g_bytes_ref (config->heartbeat_reply) : NULL;
  return copy;
}

void
stm32_link_config_free (Stm32LinkConfig *config)
{
  if (config == NULL)
    return;
  g_free (config->host);
  g_clear_pointer (&config->heartbeat, g_bytes_unref);
  g_clear_pointer (&config->heartbeat_reply, g_bytes_unref);
  g_free (config);
}

gboolean
stm32_link_config_equal_but_autoconnect (const Stm32LinkConfig *a, const Stm32LinkConfig *b)
{
  return g_strcmp0 (a->host, b->host) == 0 && a->port == b->port && a->framing == b->framing &&
         a->max_frame == b->max_frame && a->connect_timeout == b->connect_timeout &&
         a->close_timeout == b->close_timeout && a->close_mode == b->close_mode &&
         a->retry_min == b->retry_min && a->retry_max == b->retry_max &&
         a->retry_reset_after == b->retry_reset_after && a->busy_window == b->busy_window &&
         a->busy_backoff == b->busy_backoff && a->keepalive_idle_s == b->keepalive_idle_s &&
         a->keepalive_interval_s == b->keepalive_interval_s &&
         a->keepalive_count == b->keepalive_count && a->user_timeout == b->user_timeout &&
         a->idle_timeout == b->idle_timeout && (a->heartbeat == NULL) == (b->heartbeat == NULL) &&
         (a->heartbeat == NULL || g_bytes_equal (a->heartbeat, b->heartbeat)) &&
         (a->heartbeat_reply == NULL) == (b->heartbeat_reply == NULL) &&
         (a->heartbeat_reply == NULL || g_bytes_equal (a->heartbeat_reply, b->heartbeat_reply)) &&
         a->heartbeat_interval == b->heartbeat_interval &&
         a->heartbeat_timeout == b->heartbeat_timeout && a->send_queue_max == b->send_queue_max &&
         a->reply_grace == b->reply_grace;
}

char *
stm32_link_config_dup_endpoint (const Stm32LinkConfig *config)
{
  g_autofree char *host = NULL;
  g_autoptr (GInetAddress) address = NULL;
  gsize len;

  g_return_val_if_fail (config != NULL && config->host != NULL, NULL);
  /* DNS names are case-insensitive and "board." is "board" made absolute. */
  host = g_ascii_strdown (config->host, -1);
  len = strlen (host);
  if (len > 1 && host[len - 1] == '.')
    host[len - 1] = '\0';
  address = g_inet_address_new_from_string (host);
  if (address != NULL)
    {
      g_free (host);
      host = g_inet_address_to_string (address);
    }
  return g_strdup_printf ("%s port %u", host, config->port);
}

gboolean
stm32_link_config_same_endpoint (const Stm32LinkConfig *a, const Stm32LinkConfig *b)
{
  g_autofree char *endpoint_a = stm32_link_config_dup_endpoint (a);
  g_autofree char *endpoint_b = stm32_link_config_dup_endpoint (b);

  return g_strcmp0 (endpoint_a, endpoint_b) == 0;
}

/* Whether @frame (if set) is a valid frame in the link's framing. */
static gboolean
frame_fits (const Stm32LinkConfig *config, GBytes *frame, const char *key, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GBytes) wire = NULL;

  if (frame == NULL)
    return TRUE;
  wire = stm32_frame_encode (config->framing, config->max_frame, frame, &local_error);
  if (wire == NULL)
    {
      g_set_error (
          error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, "%s cannot be sent as a %s frame: %s", key,
          stm32_enum_to_string (STM32_TYPE_FRAMING, config->framing), local_error->message);
      return FALSE;
    }
  return TRUE;
}

gboolean
stm32_link_config_validate (const Stm32LinkConfig *config, GError **error)
{
  if (config->host == NULL || *config->host == '\0')
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, "Host is required");
      return FALSE;
    }
  if (config->port == 0)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "Port must be between 1 and 65535");
      return FALSE;
    }
  if (config->max_frame == 0)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "MaxFrame must be at least 1");
      return FALSE;
    }
  if (config->retry_min == 0 || config->retry_min > config->retry_max)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "RetryMin (%u ms) must be at least 1 and not above RetryMax (%u ms)",
                   config->retry_min, config->retry_max);
      return FALSE;
    }
  if (config->connect_timeout == 0 || config->close_timeout == 0)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "ConnectTimeout and CloseTimeout must be at least 1 ms");
      return FALSE;
    }
  if (config->keepalive_idle_s == 0 || config->keepalive_interval_s == 0 ||
      config->keepalive_count == 0)
    {
      g_set_error_literal (
          error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
          "KeepaliveIdle, KeepaliveInterval and KeepaliveCount must be at least 1");
      return FALSE;
    }
  if (config->keepalive_idle_s > STM32_MAX_KEEPALIVE_S ||
      config->keepalive_interval_s > STM32_MAX_KEEPALIVE_S ||
      config->keepalive_count > STM32_MAX_KEEPALIVE_COUNT ||
      config->user_timeout > STM32_MAX_USER_TIMEOUT)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "KeepaliveIdle and KeepaliveInterval must be at most %d s, KeepaliveCount at "
                   "most %d and UserTimeout at most %d ms (the kernel's limits)",
                   STM32_MAX_KEEPALIVE_S, STM32_MAX_KEEPALIVE_COUNT, STM32_MAX_USER_TIMEOUT);
      return FALSE;
    }
  if (config->send_queue_max < config->max_frame)
    {
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                   "SendQueueMax (%u) must hold at least one MaxFrame (%u)", config->send_queue_max,
                   config->max_frame);
      return FALSE;
    }
  if (config->heartbeat != NULL &&
      (config->heartbeat_interval == 0 || config->heartbeat_timeout == 0))
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "HeartbeatInterval and HeartbeatTimeout must be at least 1 ms");
      return FALSE;
    }
  if (config->heartbeat_reply != NULL && config->heartbeat == NULL)
    {
      g_set_error_literal (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS,
                           "HeartbeatReply is set but Heartbeat is not");
      return FALSE;
    }
  /* A heartbeat the framing cannot carry would never be sent, and a dead
   * board would go unnoticed; an answer it cannot carry would never come. */
  return frame_fits (config, config->heartbeat, "Heartbeat", error) &&
         frame_fits (config, config->heartbeat_reply, "HeartbeatReply", error);
}
