/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Proves that a meson test runs exactly the one GTest case it is named after.
 * GTest's -p PATH also starts the cases one level below PATH, so
 * tests/meson.build skips those; these cases are nested that way on purpose,
 * and each run fails unless the case -p names ran and no other. */
#include <glib.h>

static GPtrArray *ran;

static void
test_record (gconstpointer path)
{
  g_ptr_array_add (ran, (gpointer) path);
}

/* The path of the last -p, or NULL; read before g_test_init() consumes it. */
static const char *
selected_path (int argc, char **argv)
{
  const char *path = NULL;

  for (int i = 1; i + 1 < argc; i++)
    if (g_str_equal (argv[i], "-p"))
      path = argv[i + 1];
  return path;
}

int
main (int argc, char **argv)
{
  static const char *const paths[] = {
    "/select/case",
    "/select/case/child",
    "/select/case/child/grandchild",
    "/select/case/child-sibling",
    "/select/case-sibling",
  };
  const char *selected = selected_path (argc, argv);
  int status;

  g_test_init (&argc, &argv, NULL);
  ran = g_ptr_array_new ();
  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++)
    g_test_add_data_func (paths[i], paths[i], test_record);
  status = g_test_run ();

  if (selected != NULL && (ran->len != 1 || !g_str_equal (ran->pdata[0], selected)))
    {
      g_printerr ("asked for %s alone, ran %u cases:\n", selected, ran->len);
      for (guint i = 0; i < ran->len; i++)
        g_printerr ("  %s\n", (const char *) ran->pdata[i]);
      status = 1;
    }
  g_ptr_array_unref (ran);
  return status;
}
