/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* stm32-bench-flood-reader PORT FRAMES: the flood section's baseline, a
 * direct client of the board in a process of its own, so that its memory is
 * measured as stm32d's is. Connects to 127.0.0.1:PORT with GIO, prints
 * "ready RSS_KIB", then reads line-framed frames as fast as they come until
 * FRAMES lines ended, and prints "done PEAK_KIB" (VmHWM). Each read waits at
 * most BENCH_IO_TIMEOUT_S; a stall or an early EOF exits 1. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define READ_SIZE (64 * 1024)

static guint64
status_kib (const char *field)
{
  g_autofree char *contents = NULL;
  g_autofree char *key = g_strconcat ("\n", field, ":", NULL);
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &contents, NULL, NULL) ||
      (line = strstr (contents, key)) == NULL)
    return 0;
  return g_ascii_strtoull (line + strlen (key), NULL, 10);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) sock = NULL;
  g_autofree char *buf = g_malloc (READ_SIZE);
  guint64 frames, lines = 0;
  guint64 port;

  if (argc != 3 || !g_ascii_string_to_unsigned (argv[1], 10, 1, G_MAXUINT16, &port, NULL) ||
      !g_ascii_string_to_unsigned (argv[2], 10, 1, G_MAXUINT64, &frames, NULL))
    {
      g_printerr ("usage: stm32-bench-flood-reader PORT FRAMES\n");
      return 2;
    }
  sock = bench_direct_connect ((guint16) port, &error);
  if (sock == NULL)
    {
      g_printerr ("stm32-bench-flood-reader: %s\n", error->message);
      return 1;
    }
  printf ("ready %" G_GUINT64_FORMAT "\n", status_kib ("VmRSS"));
  fflush (stdout);
  while (lines < frames)
    {
      gssize n = g_socket_receive (sock, buf, READ_SIZE, NULL, &error);

      if (n <= 0)
        {
          g_printerr ("stm32-bench-flood-reader: after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                      " frames: %s\n",
                      lines, frames, n == 0 ? "EOF" : error->message);
          return 1;
        }
      for (const char *p = buf, *end = buf + n; (p = memchr (p, '\n', end - p)) != NULL; p++)
        lines++;
    }
  printf ("done %" G_GUINT64_FORMAT "\n", status_kib ("VmHWM"));
  return 0;
}
