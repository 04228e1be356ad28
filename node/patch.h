/*
 * The patch cycle's driver on this host (see patch.c).
 */
#ifndef HV_PATCH_H
#define HV_PATCH_H

#include <json-c/json.h>
#include <stdint.h>

#include "rpc.h"

struct hv_node;
struct hv_state;

/* Open the boot banks (cfg.bootbank) and take the booted version as this
 * host's version. Returns 0, or -1 with n->errmsg. */
int hv_patch_open(struct hv_node *n);
void hv_patch_close(struct hv_node *n);

/* Look at this host's committed phase and start its work when it has some
 * and nothing else runs. Called after every applied command, when a job
 * ends and on the node's tick. */
void hv_patch_kick(struct hv_node *n);

/* notify-command: when this host's phase in the replicated state changed,
 * queue a run (at most HV_NOTIFY_QUEUE waiting; one at a time, on the
 * thread pool, bounded by hook-timeout). Called after applies and on ticks. */
#define HV_NOTIFY_QUEUE 16
void hv_patch_notify(struct hv_node *n);

/* A job ended (maint.c, on the loop): the same phase runs again only
 * HV_PATCH_RETRY_MS later. A job that committed its outcome changed the
 * phase, but this host may not have applied that commit yet. */
#define HV_PATCH_RETRY_MS 2000
void hv_patch_job_ended(struct hv_node *n);

/* Control-socket operations: "patch-submit" {path}, "patch-abort" {reason}. */
void hv_patch_op(struct hv_node *n, struct hv_rpc_conn *c, const char *op,
                 struct json_object *req);

/* "bundle-get" from a peer: a chunk of a bundle this host keeps. */
void hv_patch_serve_bundle(struct hv_node *n, struct hv_rpc_conn *c, const char *digest,
                           uint64_t offset);

/* The rollout and each member's phase, for `hvpeer status --json`. */
struct json_object *hv_patch_status_json(const struct hv_state *s);

#endif
