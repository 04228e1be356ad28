/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Prometheus metrics: `GET /metrics` on `metrics-listen` (a port alone
 * means 127.0.0.1), in the text exposition format 0.0.4.
 *
 * What is shown comes from this node's replica of the state (a follower's
 * view may lag the leader's by a few entries) and from counters this process
 * keeps since it started (Prometheus counters reset with the process):
 * live-migration downtime as a histogram, migrations by outcome, commands the
 * state machine refused by error name. The rendering is a pure function of
 * those (hv_metrics_render), tested alone.
 *
 * The HTTP side is deliberately small: one request per connection, at most
 * 8 KiB of request, 5 s to send it, `GET /metrics` (200), another path
 * (404), another method (405), anything unparsable (400); the answer is
 * written and the connection closed.
 */
#ifndef HV_METRICS_H
#define HV_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../consensus/codec.h"
#include "../consensus/state.h"
#include "../lib/err.h"

#define HV_METRICS_BUCKETS 11 /* downtime histogram buckets, +Inf excluded */

/* Counters of this process. */
struct hv_metrics_counters {
	uint64_t downtime_le[HV_METRICS_BUCKETS]; /* moves with downtime <= bound */
	uint64_t downtime_count;
	uint64_t downtime_sum_ms;
	uint64_t migrations_ok, migrations_failed;
	uint64_t refused[HV__NERR]; /* committed commands the state refused */
	uint64_t scrapes;
	uint64_t notify_runs, notify_failures; /* notify-command */
};

/* This node's view of Raft. */
struct hv_metrics_raft {
	const char *node;   /* this node's name */
	const char *role;   /* "leader", "follower", "candidate", "unavailable" */
	const char *leader; /* its name, or "" when unknown */
	uint64_t term, commit_index, last_applied;
};

/* Count what an applied command (with the state's verdict rc) tells. */
void hv_metrics_observe(struct hv_metrics_counters *m, const struct hv_cmd *cmd, int rc);

/* The exposition text (malloc()ed, NUL-terminated; *len its length), or
 * NULL when out of memory. now_ms: for the age of members' reports. */
char *hv_metrics_render(const struct hv_metrics_counters *m, const struct hv_state *st,
                        const struct hv_metrics_raft *raft, uint64_t now_ms, size_t *len);

struct hv_node;

/* Serve n's metrics on n->cfg.metrics_listen (no-op when ""). 0, or -1
 * with n->errmsg. */
int hv_metrics_start(struct hv_node *n);

/* Close the listener and open connections; done(n) once all are closed. */
void hv_metrics_stop(struct hv_node *n, void (*done)(struct hv_node *n));

#endif
