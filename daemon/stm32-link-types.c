/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-link-types.h"

#include <glib-object.h>

#include "stm32-error.h"

const char *
stm32_enum_to_string (GType enum_type, int value)
{
  g_autoptr (GEnumClass) klass = g_type_class_ref (enum_type);
  GEnumValue *ev = g_enum_get_value (klass, value);

  return ev ? ev->value_nick : "unknown";
}

gboolean
stm32_enum_from_string (GType enum_type, const char *nick, int *value, GError **error)
{
  g_autoptr (GEnumClass) klass = g_type_class_ref (enum_type);
  GEnumValue *ev = nick ? g_enum_get_value_by_nick (klass, nick) : NULL;

  if (ev == NULL)
    {
      g_autoptr (GString) choices = g_string_new (NULL);

      for (guint i = 0; i < klass->n_values; i++)
        g_string_append_printf (choices, "%s%s", i ? ", " : "", klass->values[i].value_nick);
      g_set_error (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS, "“%s” is not one of: %s",
                   nick ? nick : "(null)", choices->str);
      return FALSE;
    }
  *value = ev->value;
  return TRUE;
}

Stm32Error
stm32_end_reason_to_error_code (Stm32EndReason reason)
{
  switch (reason)
    {
    case STM32_END_REASON_NONE:
    case STM32_END_REASON_LOCAL:
      return STM32_ERROR_NOT_CONNECTED;
    case STM32_END_REASON_REMOTE_CLOSED:
      return STM32_ERROR_REMOTE_CLOSED;
    case STM32_END_REASON_RESET:
      return STM32_ERROR_RESET;
    case STM32_END_REASON_SERVER_BUSY:
      return STM32_ERROR_SERVER_BUSY;
    case STM32_END_REASON_TIMEOUT:
      return STM32_ERROR_TIMEOUT;
    case STM32_END_REASON_REFUSED:
      return STM32_ERROR_REFUSED;
    case STM32_END_REASON_DEAD_PEER:
      return STM32_ERROR_DEAD_PEER;
    case STM32_END_REASON_HOST_NOT_FOUND:
      return STM32_ERROR_HOST_NOT_FOUND;
    case STM32_END_REASON_UNREACHABLE:
      return STM32_ERROR_UNREACHABLE;
    case STM32_END_REASON_PROTOCOL_ERROR:
      return STM32_ERROR_INVALID_FRAME;
    case STM32_END_REASON_PC_NO_PORTS:
    case STM32_END_REASON_PC_NO_FDS:
    case STM32_END_REASON_PC_NO_MEMORY:
      return STM32_ERROR_OUT_OF_RESOURCES;
    case STM32_END_REASON_OUT_OF_STEP:
    case STM32_END_REASON_FAILED:
    default:
      return STM32_ERROR_FAILED;
    }
}

Stm32EndReason
stm32_classify_connect_error (const GError *error)
{
  if (error->domain == G_RESOLVER_ERROR)
    return STM32_END_REASON_HOST_NOT_FOUND;
  /* lwIP's accept-then-abort can overtake the connect's own completion, so a
   * reset during connect is the same full table as a reset right after it. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    return STM32_END_REASON_SERVER_BUSY;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
    return STM32_END_REASON_REFUSED;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    return STM32_END_REASON_TIMEOUT;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE))
    return STM32_END_REASON_UNREACHABLE;
  /* The codes stm32-connect.c gives a shortage on the PC. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
    return STM32_END_REASON_PC_NO_PORTS;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES))
    return STM32_END_REASON_PC_NO_FDS;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
    return STM32_END_REASON_PC_NO_MEMORY;
  return STM32_END_REASON_FAILED;
}

/* An error on an established connection. ECONNRESET and EPIPE both arrive as
 * CONNECTION_CLOSED (alias BROKEN_PIPE); ETIMEDOUT is keepalive or
 * TCP_USER_TIMEOUT giving up on a board that stopped answering. */
Stm32EndReason
stm32_classify_io_error (const GError *error)
{
  /* ENOTCONN on a socket that was connected: a RST came in before we asked. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED))
    return STM32_END_REASON_RESET;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE))
    return STM32_END_REASON_DEAD_PEER;
  return STM32_END_REASON_FAILED;
}
