/*
 * `hvpeer bmc ...` on the host whose BMC it is (ops.c forwards it there):
 * hvpeer-bmc (node/hvpeer-bmc.c) does the IPMI exchange in a process of its
 * own, on the thread pool, so libfreeipmi and libgcrypt stay out of
 * hvpeerd and a hung BMC never blocks the event loop. The credentials stay
 * in their root-only file: hvpeer-bmc reads them, nothing else sees them.
 *
 * Power actions that would take a serving host down (off, cycle, reset,
 * soft) are refused unless the host is in maintenance or the operator
 * says --force.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "config.h"
#include "node.h"

struct bmc_work {
	uv_work_t req;
	struct hv_node *n;
	struct hv_rpc_conn *conn;
	char action[16];
	char *out; /* hvpeer-bmc's JSON answer */
	int rc;
	char err[512];
};

static const char *const actions[] = {"status", "sensors", "on",  "off",
                                      "cycle",  "reset",   "soft"};

static bool disruptive(const char *a)
{
	return !strcmp(a, "off") || !strcmp(a, "cycle") || !strcmp(a, "reset") ||
	       !strcmp(a, "soft");
}

/* Run hvpeer-bmc; its stdout (one JSON object) into w->out. */
static void bmc_run(uv_work_t *req)
{
	struct bmc_work *w = req->data;
	const struct hv_config *cfg = &w->n->cfg;
	char tool[HV_PATH_MAX * 2], suite[16], timeout[16];
	const char *argv[20];
	int argc = 0, status = 0;

	hv_program_path("hvpeer-bmc", tool, sizeof tool);
	snprintf(suite, sizeof suite, "%u", cfg->bmc_cipher_suite);
	snprintf(timeout, sizeof timeout, "%u", cfg->bmc_timeout_ms);
	argv[argc++] = tool;
	argv[argc++] = "-j";
	argv[argc++] = "-c";
	argv[argc++] = cfg->bmc_credentials;
	argv[argc++] = "-k";
	argv[argc++] = cfg->bmc;
	argv[argc++] = "-t";
	argv[argc++] = timeout;
	if (cfg->bmc_cipher_suite != 0) {
		argv[argc++] = "-C";
		argv[argc++] = suite;
	}
	if (cfg->bmc_workarounds[0] != '\0') {
		argv[argc++] = "-W";
		argv[argc++] = cfg->bmc_workarounds;
	}
	argv[argc++] = cfg->bmc_address;
	argv[argc++] = w->action;
	argv[argc] = NULL;
	if (hv_program_run(argv, 256 * 1024, &w->out, &status) != 0) {
		w->rc = hv_errf(w->err, sizeof w->err, HV_IO, "cannot run %s: %s", tool,
		                strerror(errno));
		return;
	}
	w->rc = HV_OK;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		w->rc = hv_errf(w->err, sizeof w->err, HV_IO, "cannot run %s", tool);
}

static void bmc_done(uv_work_t *req, int status)
{
	struct bmc_work *w = req->data;
	struct json_object *o = NULL, *v;

	if (status != 0 || w->n->stopping) {
		hv_rpc_reply(w->conn, hv_rpc_error(HV_SHUTDOWN, "node is shutting down"));
	} else if (w->rc != HV_OK) {
		hv_rpc_reply(w->conn,
		             hv_rpc_error(w->rc, "%s: %s", w->n->cfg.name, w->err));
	} else if ((o = json_tokener_parse(w->out)) == NULL) {
		hv_rpc_reply(w->conn,
		             hv_rpc_error(HV_PROTO, "%s: hvpeer-bmc gave no answer",
		                          w->n->cfg.name));
	} else if (json_object_object_get_ex(o, "error", &v)) {
		struct json_object *m = NULL;
		int code = hv_errcode(json_object_get_string(v));
		json_object_object_get_ex(o, "message", &m);
		hv_rpc_reply(
		    w->conn,
		    hv_rpc_error(code > 0 ? code : HV_IO, "%s: %s", w->n->cfg.name,
		                 m != NULL ? json_object_get_string(m) : "BMC error"));
	} else {
		json_object_object_add(o, "ok", json_object_new_boolean(1));
		json_object_object_add(o, "host", json_object_new_string(w->n->cfg.name));
		json_object_object_add(o, "action", json_object_new_string(w->action));
		hv_rpc_reply(w->conn, json_object_get(o));
		if (strcmp(w->action, "status") != 0 && strcmp(w->action, "sensors") != 0)
			hv_warn("BMC %s: power %s done (asked by an operator)",
			        w->n->cfg.bmc_address, w->action);
	}
	json_object_put(o);
	free(w->out);
	free(w);
}

void hv_bmc_op(struct hv_node *n, struct hv_rpc_conn *c, const char *action, bool force)
{
	const struct hv_member *m = hv_state_member(&n->state, n->cfg.name);
	struct bmc_work *w;
	bool known = false;

	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		known |= strcmp(actions[i], action) == 0;
	if (!known) {
		hv_rpc_reply(
		    c, hv_rpc_error(HV_INVAL,
		                    "bmc: unknown action '%s' (status, sensors, on, "
		                    "off, cycle, reset, soft)",
		                    action));
		return;
	}
	if (strcmp(n->cfg.bmc, "none") == 0 || n->cfg.bmc_address[0] == '\0' ||
	    n->cfg.bmc_credentials[0] == '\0') {
		hv_rpc_reply(c, hv_rpc_error(HV_INVAL,
		                             "%s has no BMC configured: set bmc = ipmi, "
		                             "bmc-address and bmc-credentials ([bmc] in "
		                             "hvpeerd.conf)",
		                             n->cfg.name));
		return;
	}
	if (disruptive(action) && !force &&
	    !(m != NULL && (m->maint == HV_MAINT_IN ||
	                    (m->maint == HV_MAINT_NONE && m->n_guests == 0)))) {
		hv_rpc_reply(
		    c,
		    hv_rpc_error(HV_NOTINMAINT,
		                 "refused: power %s would take %s down while it "
		                 "%s; put it in maintenance first, or add --force",
		                 action, n->cfg.name,
		                 m != NULL && m->n_guests > 0 ? "runs guests"
		                                              : "is not in maintenance"));
		return;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "out of memory"));
		return;
	}
	w->n = n;
	w->conn = c;
	w->req.data = w;
	snprintf(w->action, sizeof w->action, "%s", action);
	if (uv_queue_work(n->loop, &w->req, bmc_run, bmc_done) != 0) {
		hv_rpc_reply(c, hv_rpc_error(HV_NOMEM, "cannot queue the work"));
		free(w);
	}
}
