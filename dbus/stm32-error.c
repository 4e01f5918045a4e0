/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32-error.h"

#include <gio/gio.h>

#include "stm32-names.h"

static const GDBusErrorEntry stm32_error_entries[] = {
  { STM32_ERROR_FAILED, STM32_DBUS_ERROR_PREFIX "Failed" },
  { STM32_ERROR_NOT_CONNECTED, STM32_DBUS_ERROR_PREFIX "NotConnected" },
  { STM32_ERROR_TIMEOUT, STM32_DBUS_ERROR_PREFIX "Timeout" },
  { STM32_ERROR_REFUSED, STM32_DBUS_ERROR_PREFIX "Refused" },
  { STM32_ERROR_REMOTE_CLOSED, STM32_DBUS_ERROR_PREFIX "RemoteClosed" },
  { STM32_ERROR_RESET, STM32_DBUS_ERROR_PREFIX "Reset" },
  { STM32_ERROR_DEAD_PEER, STM32_DBUS_ERROR_PREFIX "DeadPeer" },
  { STM32_ERROR_HOST_NOT_FOUND, STM32_DBUS_ERROR_PREFIX "HostNotFound" },
  { STM32_ERROR_SERVER_BUSY, STM32_DBUS_ERROR_PREFIX "ServerBusy" },
  { STM32_ERROR_QUEUE_FULL, STM32_DBUS_ERROR_PREFIX "QueueFull" },
  { STM32_ERROR_FRAME_TOO_LARGE, STM32_DBUS_ERROR_PREFIX "FrameTooLarge" },
  { STM32_ERROR_INVALID_FRAME, STM32_DBUS_ERROR_PREFIX "InvalidFrame" },
  { STM32_ERROR_INVALID_ARGS, STM32_DBUS_ERROR_PREFIX "InvalidArgs" },
  { STM32_ERROR_BUSY, STM32_DBUS_ERROR_PREFIX "Busy" },
  { STM32_ERROR_UNREACHABLE, STM32_DBUS_ERROR_PREFIX "Unreachable" },
  { STM32_ERROR_OUT_OF_RESOURCES, STM32_DBUS_ERROR_PREFIX "OutOfResources" },
};

G_STATIC_ASSERT (G_N_ELEMENTS (stm32_error_entries) == STM32_ERROR_N_ERRORS);

GQuark
stm32_error_quark (void)
{
  static gsize quark = 0;

  g_dbus_error_register_error_domain ("stm32-error-quark", &quark, stm32_error_entries,
                                      G_N_ELEMENTS (stm32_error_entries));
  return (GQuark) quark;
}
