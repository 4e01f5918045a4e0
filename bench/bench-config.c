/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config section: how long stm32d's parser takes over large config
 * text, against GKeyFile loading the same text in the same run (the parser
 * it builds on, and its first step). A ratio that stays flat as the text
 * grows means stm32d's own checks cost time in proportion to the text. The
 * text goes through stm32_config_load_data(), which has no size limit (the
 * limit is on files), so sizes past STM32_CONFIG_FILE_MAX measure the parser. */
#include "bench.h"
#include "stm32-config.h"

/* Each figure is the fastest of this many runs; one run that takes longer
 * than SLOW_RUN_S is enough (the old, quadratic parser). */
#define RUNS 3
#define SLOW_RUN_S 5.0

typedef gboolean (*Parse) (const char *text, gsize length);

static gboolean
parse_stm32 (const char *text, gsize length)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) links = stm32_config_load_data (text, (gssize) length, "bench", &error);

  /* The unknown-keys texts are refused: that is what is timed. */
  return links != NULL || g_error_matches (error, STM32_ERROR, STM32_ERROR_INVALID_ARGS);
}

static gboolean
parse_keyfile (const char *text, gsize length)
{
  g_autoptr (GKeyFile) keyfile = g_key_file_new ();

  return g_key_file_load_from_data (keyfile, text, length, G_KEY_FILE_KEEP_TRANSLATIONS, NULL);
}

/* Fastest of the runs, in ms, or a negative value if @parse failed. */
static double
time_parse (Parse parse, const GString *text)
{
  double best = G_MAXDOUBLE;

  for (guint i = 0; i < RUNS; i++)
    {
      gint64 t0 = bench_now_ns ();
      double ms;

      if (!parse (text->str, text->len))
        return -1;
      ms = (bench_now_ns () - t0) / 1e6;
      best = MIN (best, ms);
      if (ms > SLOW_RUN_S * 1000)
        break;
    }
  return best;
}

/* One link, then @n keys it does not know: refused at line 3, as the files were. */
static GString *
unknown_keys_text (guint n)
{
  GString *text = g_string_new ("[Link a]\nHost=board\n");

  for (guint i = 0; i < n; i++)
    g_string_append_printf (text, "Unknown%u=1\n", i);
  return text;
}

/* @n valid links, each to its own board. */
static GString *
links_text (guint n)
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; i < n; i++)
    g_string_append_printf (text, "[Link l%u]\nHost=10.%u.%u.%u\n", i, i / 65536, i / 256 % 256,
                            i % 256);
  return text;
}

static gboolean
report (const char *what, GString *text, GError **error)
{
  double stm32 = time_parse (parse_stm32, text);
  double keyfile = time_parse (parse_keyfile, text);
  g_autofree char *note = g_strdup_printf ("%.1f MB; baseline: GKeyFile alone", text->len / 1e6);

  g_string_free (text, TRUE);
  if (stm32 < 0 || keyfile < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: the parse failed", what);
      return FALSE;
    }
  bench_report ("config", what, stm32, keyfile, "ms", note);
  return TRUE;
}

gboolean
bench_config (const BenchConfig *config, GError **error)
{
  guint scale = config->smoke ? 10 : 1;
  g_autofree char *keys_small = g_strdup_printf ("parse %u unknown keys", 50000 / scale);
  g_autofree char *keys_large = g_strdup_printf ("parse %u unknown keys", 200000 / scale);
  g_autofree char *links = g_strdup_printf ("parse %u links", 40000 / scale);

  return report (keys_small, unknown_keys_text (50000 / scale), error) &&
         report (keys_large, unknown_keys_text (200000 / scale), error) &&
         report (links, links_text (40000 / scale), error);
}
