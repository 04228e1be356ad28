/*
 * Jobs: long work of this host (maintenance, a patch phase) on a worker
 * thread of its own, because libvirt's calls and reboots block. The worker
 * never touches the node: it asks the event loop, one request at a time, to
 * commit a command, to run the fencing check or to read the state, and waits
 * for the answer (node/maint.c has the machinery). One job at a time per
 * node (n->maint).
 */
#ifndef HV_JOB_H
#define HV_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../consensus/codec.h"

struct hv_node;
struct hv_config;
struct hv_maint_job;

typedef void (*hv_job_fn)(struct hv_maint_job *j, void *arg);
typedef void (*hv_query_fn)(struct hv_node *n, void *arg);

/* Run fn(j, arg) on a worker thread. Returns HV_OK, or HV_EXISTS when a job
 * is running, HV_INVAL without a hypervisor, with a message in err. */
int hv_job_start(struct hv_node *n, hv_job_fn fn, void *arg, char *err, size_t errlen);

/* From the worker: */
struct hv_node *hv_job_node(struct hv_maint_job *j);
/* Commit (retried while there is no leader; bounded). */
int hv_job_commit(struct hv_maint_job *j, const struct hv_cmd *cmd, uint64_t *token);
/* Run fn(n, arg) on the loop, with the state at hand. */
int hv_job_query(struct hv_maint_job *j, hv_query_fn fn, void *arg);
/* The fencing check with the job's token (hv_job_set_token). */
int hv_job_fence(struct hv_maint_job *j);
void hv_job_set_token(struct hv_maint_job *j, uint64_t token);
/* A patch phase's job: the fencing check also wants the host still in that
 * phase in the committed state (HV_PHASE otherwise: this replica lagged
 * behind, e.g. after a restart, and the phase is over). */
void hv_job_set_phase(struct hv_maint_job *j, int phase);
/* A request to a peer's RPC (req not consumed); *resp is the answer, owned
 * by the caller (json_object_put), when HV_OK. */
struct json_object;
int hv_job_call(struct hv_maint_job *j, const char *address, struct json_object *req,
                unsigned timeout_ms, struct json_object **resp);
/* Record a failure (the first one counts) and return rc. */
int hv_job_fail(struct hv_maint_job *j, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hv_job_done(struct hv_maint_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hv_job_reset(struct hv_maint_job *j);
int hv_job_result(struct hv_maint_job *j, char *msg, size_t len);
bool hv_job_cancelled(struct hv_maint_job *j);

/* Maintenance steps for the patch cycle: the lease is held (token set) and
 * is neither taken nor released here. Each resumes what a restart cut
 * short, from the committed state. */
int hv_maint_refresh_inventory(struct hv_maint_job *j); /* read, commit */
int hv_maint_plan_out(struct hv_maint_job *j); /* -> EVACUATING, plan committed */
int hv_maint_move_out(struct hv_maint_job *j); /* moves done -> IN */
int hv_maint_move_back(struct hv_maint_job *j, bool rebalance); /* -> NONE */

/* The libvirt URI of a member (migrate-uri, %h = the host of its address). */
void hv_peer_uri(const struct hv_config *cfg, const char *address, char *out, size_t len);

#endif
