/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Every name stm32d is known by on the bus, defined once for daemon, library and CLI. */

#define STM32_DBUS_NAME "org.stm32d"
#define STM32_DBUS_PATH "/org/stm32d"
#define STM32_DBUS_LINK_PATH_PREFIX STM32_DBUS_PATH "/link/"
#define STM32_DBUS_MANAGER_INTERFACE "org.stm32d.Manager1"
#define STM32_DBUS_LINK_INTERFACE "org.stm32d.Link1"
#define STM32_DBUS_ERROR_PREFIX "org.stm32d.Error."

/* Version of the D-Bus API, exposed as Manager1.Version. */
#define STM32_DBUS_API_VERSION 1u
