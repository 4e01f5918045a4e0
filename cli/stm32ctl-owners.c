/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "stm32ctl-owners.h"

#include "stm32-sock-owners.h"

/* The inodes of the census's sockets stm32d found no owner for. */
static GArray *
unowned_inodes (GVariant *census)
{
  GArray *inodes = g_array_new (FALSE, FALSE, sizeof (guint64));

  for (gsize i = 0; i < g_variant_n_children (census); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (census, i);
      g_autoptr (GVariant) pid = g_variant_lookup_value (entry, "pid", G_VARIANT_TYPE_INT32);
      guint64 inode = 0;

      if (pid == NULL && g_variant_lookup (entry, "inode", "t", &inode) && inode != 0)
        g_array_append_val (inodes, inode);
    }
  return inodes;
}

static GVariant *
fill_entry (GVariant *entry, GHashTable *owners, GArray *found)
{
  g_autoptr (GVariant) pid = g_variant_lookup_value (entry, "pid", G_VARIANT_TYPE_INT32);
  GVariantDict dict;
  guint64 inode = 0;
  Stm32SockOwner *owner;

  g_variant_dict_init (&dict, entry);
  g_variant_lookup (entry, "inode", "t", &inode);
  owner = pid == NULL ? g_hash_table_lookup (owners, &inode) : NULL;
  if (owner != NULL)
    {
      g_variant_dict_insert (&dict, "pid", "i", owner->pid);
      if (owner->command != NULL)
        g_variant_dict_insert (&dict, "command", "s", owner->command);
      g_array_append_val (found, owner->pid);
    }
  g_variant_dict_insert (&dict, "seen-by", "s",
                         pid != NULL     ? "stm32d"
                         : owner != NULL ? "stm32ctl"
                                         : "");
  return g_variant_dict_end (&dict);
}

static GVariant *
fill_finding (GVariant *finding, GArray *found)
{
  g_autoptr (GVariant) old = g_variant_lookup_value (finding, "pids", G_VARIANT_TYPE ("ai"));
  g_autoptr (GArray) pids = g_array_new (FALSE, FALSE, sizeof (gint32));
  const char *id = NULL;
  GVariantDict dict;

  g_variant_dict_init (&dict, finding);
  g_variant_lookup (finding, "id", "&s", &id);
  if (g_strcmp0 (id, "competing-client") != 0 || found->len == 0)
    return g_variant_dict_end (&dict);
  if (old != NULL)
    {
      gsize n = 0;
      const gint32 *values = g_variant_get_fixed_array (old, &n, sizeof (gint32));

      g_array_append_vals (pids, values, n);
    }
  for (guint i = 0; i < found->len; i++)
    {
      gboolean seen = FALSE;

      for (guint j = 0; j < pids->len; j++)
        seen |= g_array_index (pids, gint32, j) == g_array_index (found, gint32, i);
      if (!seen)
        g_array_append_val (pids, g_array_index (found, gint32, i));
    }
  g_variant_dict_insert_value (
      &dict, "pids",
      g_variant_new_fixed_array (G_VARIANT_TYPE_INT32, pids->data, pids->len, sizeof (gint32)));
  return g_variant_dict_end (&dict);
}

GVariant *
stm32ctl_owners_fill (GVariant *report)
{
  g_autoptr (GVariant) census =
      g_variant_lookup_value (report, "census", G_VARIANT_TYPE ("aa{sv}"));
  g_autoptr (GVariant) findings =
      g_variant_lookup_value (report, "findings", G_VARIANT_TYPE ("aa{sv}"));
  g_autoptr (GArray) inodes = NULL;
  g_autoptr (GHashTable) owners = NULL;
  g_autoptr (GArray) found = g_array_new (FALSE, FALSE, sizeof (gint32));
  GVariantBuilder entries, filled;
  GVariantDict dict;

  if (census == NULL || findings == NULL)
    return g_variant_ref (report);
  inodes = unowned_inodes (census);
  owners = stm32_sock_owners_find ((const guint64 *) inodes->data, inodes->len, NULL);
  g_variant_builder_init (&entries, G_VARIANT_TYPE ("aa{sv}"));
  for (gsize i = 0; i < g_variant_n_children (census); i++)
    {
      g_autoptr (GVariant) entry = g_variant_get_child_value (census, i);

      g_variant_builder_add_value (&entries, fill_entry (entry, owners, found));
    }
  g_variant_builder_init (&filled, G_VARIANT_TYPE ("aa{sv}"));
  for (gsize i = 0; i < g_variant_n_children (findings); i++)
    {
      g_autoptr (GVariant) finding = g_variant_get_child_value (findings, i);

      g_variant_builder_add_value (&filled, fill_finding (finding, found));
    }
  g_variant_dict_init (&dict, report);
  g_variant_dict_insert_value (&dict, "census", g_variant_builder_end (&entries));
  g_variant_dict_insert_value (&dict, "findings", g_variant_builder_end (&filled));
  return g_variant_ref_sink (g_variant_dict_end (&dict));
}
