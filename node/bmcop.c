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
	struct json_object *answer;
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

int hv_bmc_call(const struct hv_config *cfg, const char *kind, const char *address,
                const char *action, struct json_object **answer, char *err, size_t errlen)
{
	char tool[HV_PATH_MAX * 2], suite[16], timeout[16], *out = NULL;
	const char *argv[24];
	struct json_object *o, *v, *m = NULL;
	int argc = 0, status = 0, code;

	*answer = NULL;
	if (cfg->bmc_credentials[0] == '\0')
		return hv_errf(err, errlen, HV_INVAL,
		               "no bmc-credentials file is configured on %s", cfg->name);
	hv_program_path("hvpeer-bmc", tool, sizeof tool);
	snprintf(suite, sizeof suite, "%u", cfg->bmc_cipher_suite);
	snprintf(timeout, sizeof timeout, "%u", cfg->bmc_timeout_ms);
	argv[argc++] = tool;
	argv[argc++] = "-j";
	argv[argc++] = "-c";
	argv[argc++] = cfg->bmc_credentials;
	argv[argc++] = "-k";
	argv[argc++] = kind;
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
	if (cfg->bmc_ca[0] != '\0') {
		argv[argc++] = "--ca";
		argv[argc++] = cfg->bmc_ca;
	}
	if (cfg->bmc_pin[0] != '\0') {
		argv[argc++] = "--pin";
		argv[argc++] = cfg->bmc_pin;
	}
	argv[argc++] = address;
	argv[argc++] = action;
	argv[argc] = NULL;
	if (hv_program_run(argv, 256 * 1024, &out, &status) != 0)
		return hv_errf(err, errlen, HV_IO, "cannot run %s: %s", tool,
		               strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		free(out);
		return hv_errf(err, errlen, HV_IO, "cannot run %s", tool);
	}
	o = json_tokener_parse(out);
	free(out);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return hv_errf(err, errlen, HV_PROTO, "%s gave no answer", tool);
	}
	if (json_object_object_get_ex(o, "error", &v)) {
		code = hv_errcode(json_object_get_string(v));
		json_object_object_get_ex(o, "message", &m);
		code = hv_errf(err, errlen, code > 0 ? code : HV_IO, "%s",
		               m != NULL ? json_object_get_string(m) : "BMC error");
		json_object_put(o);
		return code;
	}
	*answer = o;
	return HV_OK;
}

static void bmc_run(uv_work_t *req)
{
	struct bmc_work *w = req->data;
	const struct hv_config *cfg = &w->n->cfg;

	w->rc = hv_bmc_call(cfg, cfg->bmc, cfg->bmc_address, w->action, &w->answer,
	                    w->err, sizeof w->err);
}

static void bmc_done(uv_work_t *req, int status)
{
	struct bmc_work *w = req->data;
	struct json_object *o = w->answer;

	if (status != 0 || w->n->stopping) {
		hv_rpc_reply(w->conn, hv_rpc_error(HV_SHUTDOWN, "node is shutting down"));
	} else if (w->rc != HV_OK) {
		hv_rpc_reply(w->conn,
		             hv_rpc_error(w->rc, "%s: %s", w->n->cfg.name, w->err));
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
		                             "%s has no BMC configured: set bmc (ipmi or "
		                             "redfish), "
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
