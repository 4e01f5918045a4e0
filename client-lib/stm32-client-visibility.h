/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libstm32client is built with -fvisibility=hidden: only what carries this
 * mark is part of its ABI. */
#if defined(__GNUC__) || defined(__clang__)
#define STM32_CLIENT_PUBLIC __attribute__ ((visibility ("default")))
#else
#define STM32_CLIENT_PUBLIC
#endif
