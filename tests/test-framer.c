/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib.h>

static void
test_placeholder (void)
{
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/framer/placeholder", test_placeholder);
  return g_test_run ();
}
