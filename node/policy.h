/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Rollout policies, the node's side (node/policy.c). */
#ifndef HV_NODE_POLICY_H
#define HV_NODE_POLICY_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "../consensus/state.h"
#include "../patchfsm/gate.h"

struct hv_node;

/* Check `hvpeer policy set KEY VALUE` against the state before proposing it
 * (a window with its zone and blackouts parses, a canary is a member).
 * HV_OK, or an HV_* code with the reason in why. */
int hv_policy_check(const struct hv_state *s, const char *key, const char *value,
                    char *why, size_t len);

/* The policies for `hvpeer status --json` ("policy"). */
struct json_object *hv_policy_json(const struct hv_state *s);

/*
 * `hvpeer plan`: what a rollout to version (NULL or "": the current
 * rollout's, else every host) would do from the state as it is at now: the
 * hosts in order (canary first), each one's evacuation (or the pre-check's
 * refusal), its estimated cycle, when the window lets it start and end, the
 * expected downtime per guest (the mean of the recorded migrations).
 * Nothing is committed.
 */
struct json_object *hv_policy_plan_json(const struct hv_state *s, const char *version,
                                        uint64_t now, uint64_t stale_ms);

/* The leader's gate, on every tick (see policy.c). */
void hv_policy_tick(struct hv_node *n);

#endif
