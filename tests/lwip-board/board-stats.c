/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "board-stats.h"

#include "lwip/memp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"

#include "sim-events.h"

/* memp_t's order, from the same list lwIP builds it from, so every pool this
 * configuration has is reported under its lwIP name. */
static const char *const pool_names[MEMP_MAX] = {
#define LWIP_MEMPOOL(name, num, size, desc) #name,
#include "lwip/priv/memp_std.h"
};

static const char *const state_names[] = {
  "CLOSED",     "LISTEN",     "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
  "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",  "LAST_ACK", "TIME_WAIT",
};

const char *
board_stats_tcp_state_name (int state)
{
  if (state < 0 || state >= (int) G_N_ELEMENTS (state_names))
    return "UNKNOWN";
  return state_names[state];
}

void
board_stats_tcp_pcb_pool (guint *used, guint *err)
{
  *used = lwip_stats.memp[MEMP_TCP_PCB]->used;
  *err = lwip_stats.memp[MEMP_TCP_PCB]->err;
}

static void
add_mem (JsonBuilder *builder, const char *name, const struct stats_mem *mem)
{
  json_builder_set_member_name (builder, name);
  json_builder_begin_object (builder);
  sim_event_add_int (builder, "used", mem->used);
  sim_event_add_int (builder, "max", mem->max);
  sim_event_add_int (builder, "err", mem->err);
  sim_event_add_int (builder, "avail", mem->avail);
  json_builder_end_object (builder);
}

static void
count_states (const struct tcp_pcb *list, guint *counts)
{
  for (const struct tcp_pcb *pcb = list; pcb != NULL; pcb = pcb->next)
    if ((guint) pcb->state < G_N_ELEMENTS (state_names))
      counts[pcb->state]++;
}

static void
add_tcp (JsonBuilder *builder)
{
  const struct stats_proto *tcp = &lwip_stats.tcp;
  guint counts[G_N_ELEMENTS (state_names)] = { 0 };

  for (const struct tcp_pcb_listen *l = tcp_listen_pcbs.listen_pcbs; l != NULL; l = l->next)
    counts[LISTEN]++;
  count_states (tcp_bound_pcbs, counts);
  count_states (tcp_active_pcbs, counts);
  count_states (tcp_tw_pcbs, counts);

  json_builder_set_member_name (builder, "tcp");
  json_builder_begin_object (builder);
  /* Every state, zeros included, so that readers need not test for members. */
  json_builder_set_member_name (builder, "states");
  json_builder_begin_object (builder);
  for (guint i = 0; i < G_N_ELEMENTS (state_names); i++)
    sim_event_add_int (builder, state_names[i], counts[i]);
  json_builder_end_object (builder);
  sim_event_add_int (builder, "xmit", tcp->xmit);
  sim_event_add_int (builder, "recv", tcp->recv);
  sim_event_add_int (builder, "drop", tcp->drop);
  sim_event_add_int (builder, "chkerr", tcp->chkerr);
  sim_event_add_int (builder, "lenerr", tcp->lenerr);
  sim_event_add_int (builder, "memerr", tcp->memerr);
  sim_event_add_int (builder, "rterr", tcp->rterr);
  sim_event_add_int (builder, "proterr", tcp->proterr);
  sim_event_add_int (builder, "opterr", tcp->opterr);
  sim_event_add_int (builder, "err", tcp->err);
  json_builder_end_object (builder);
}

void
board_stats_add (JsonBuilder *builder)
{
  json_builder_set_member_name (builder, "memp");
  json_builder_begin_object (builder);
  for (guint i = 0; i < MEMP_MAX; i++)
    add_mem (builder, pool_names[i], lwip_stats.memp[i]);
  json_builder_end_object (builder);
  add_mem (builder, "heap", &lwip_stats.mem);
  add_tcp (builder);
}
