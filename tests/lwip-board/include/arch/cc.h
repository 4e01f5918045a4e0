/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* lwIP's compiler and platform port for the lwIP board: a Linux process built
 * with GCC or Clang. lwIP includes this from lwip/arch.h before anything else. */

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>

/* glibc's <endian.h> defines BYTE_ORDER, LITTLE_ENDIAN and BIG_ENDIAN with the
 * values lwIP expects; the compiler's own macros are the fallback. */
#ifndef BYTE_ORDER
#define LITTLE_ENDIAN __ORDER_LITTLE_ENDIAN__
#define BIG_ENDIAN __ORDER_BIG_ENDIAN__
#define BYTE_ORDER __BYTE_ORDER__
#endif

/* Diagnostics go to stderr: stdout carries only the board's JSON events. */
void lwip_board_diag (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
void lwip_board_assert (const char *message, const char *file, int line) __attribute__ ((noreturn));

#define LWIP_PLATFORM_DIAG(x)                                                                      \
  do                                                                                               \
    {                                                                                              \
      lwip_board_diag x;                                                                           \
    }                                                                                              \
  while (0)

/* An lwIP assertion is a bug in lwIP's use (or lwIP): stop at once, so the test
 * that drove the board fails on its exit status. */
#define LWIP_PLATFORM_ASSERT(x) lwip_board_assert ((x), __FILE__, __LINE__)

/* lwIP only prints LWIP_ERROR's message with LWIP_DEBUG; an API misuse should
 * never go unnoticed on a test board, so it is always printed. */
#define LWIP_ERROR(message, expression, handler)                                                   \
  do                                                                                               \
    {                                                                                              \
      if (!(expression))                                                                           \
        {                                                                                          \
          lwip_board_diag ("lwIP: %s (%s:%d)\n", (message), __FILE__, __LINE__);                   \
          handler;                                                                                 \
        }                                                                                          \
    }                                                                                              \
  while (0)

/* Seeds the first local port (tcp_init) and nothing else with this config;
 * main() seeds random(). */
#define LWIP_RAND() ((u32_t) random ())
