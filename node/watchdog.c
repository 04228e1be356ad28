/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The leader's watchdog over a lease holder that reboots for its patch.
 *
 * A holder in REBOOT (or in the reboot of a ROLLBACK) cannot speak for
 * itself until it is back. While it is down the leader, whichever peer that
 * is, does three things, all decided by the replicated state
 * (hv_rollout_watchdog_due) so that a new leader carries on where the old
 * one was:
 *
 *  - it follows the holder's power through the holder's BMC (a status
 *    call every 200 ms) and records each change, off then on, in the event
 *    history;
 *  - once the holder has been down boot-timeout since it began to reboot
 *    (or since the last power cycle), it commits a power cycle and only then
 *    asks the BMC for it (power on when the BMC says the host is off);
 *  - when watchdog-cycles cycles did not bring it back, or it has no BMC,
 *    or its BMC refuses, it stops the line: the cluster pauses with the
 *    reason, and the lease stays with the host (never handed on while a
 *    host is down). `hvpeer lease break --force` is the operator's way out.
 *
 * The BMC is driven through hvpeer-bmc (hv_bmc_call) on the thread pool,
 * with this host's credentials file: it needs a section for the holder's
 * BMC (or a [default]).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../consensus/state.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../patchfsm/cycle.h"
#include "config.h"
#include "node.h"

#define POLL_MS 200 /* every tick: a power cycle keeps the power off about 1 s */

enum { WD_POLL, WD_ACT };

struct wd_work {
	uv_work_t req;
	struct hv_node *n;
	int kind;
	char host[HV_NAME_MAX + 1];
	char bmc[HV_BMC_KIND_MAX + 1];
	char address[HV_ADDR_MAX + 1];
	char phase[HV_PHASE_MAX + 1];
	uint64_t rollout, token;
	/* results */
	int rc;
	int power; /* 1 on, 0 off, -1 unknown */
	char did[16];
	char err[512];
};

struct wd_commit {
	struct hv_node *n;
	int event;
	struct wd_work *act; /* CYCLE: the work to queue once committed */
};

static void wd_committed(struct hv_node *n, void *data, int rc, uint64_t index,
                         uint64_t token);

/* Commit a PATCH_WATCHDOG about w's host; act (may be NULL, or w itself)
 * runs once it is committed, and is freed when it is not. The watchdog is
 * busy until the answer. */
static void wd_commit(struct hv_node *n, const struct wd_work *w, int event,
                      struct wd_work *act, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void wd_commit(struct hv_node *n, const struct wd_work *w, int event,
                      struct wd_work *act, const char *fmt, ...)
{
	struct hv_cmd cmd = {.type = HV_CMD_PATCH_WATCHDOG,
	                     .token = w->token,
	                     .id = w->rollout,
	                     .event = event};
	struct wd_commit *c = calloc(1, sizeof *c);
	va_list ap;
	int rc;

	if (c == NULL) {
		free(act);
		return;
	}
	c->n = n;
	c->event = event;
	c->act = act;
	snprintf(cmd.name, sizeof cmd.name, "%s", w->host);
	snprintf(cmd.phase, sizeof cmd.phase, "%s", w->phase);
	snprintf(cmd.by, sizeof cmd.by, "%s", n->cfg.name);
	va_start(ap, fmt);
	vsnprintf(cmd.reason, sizeof cmd.reason, fmt, ap);
	va_end(ap);
	n->wd_busy = true;
	rc = hv_node_commit(n, &cmd, wd_committed, c);
	if (rc != HV_OK) {
		n->wd_busy = false;
		hv_debug("watchdog: %s: not committed: %s", w->host, hv_strerror(rc));
		free(c->act);
		free(c);
	}
}

/* ---- the BMC calls, on the thread pool ----------------------------------- */

static int power_of(struct wd_work *w)
{
	struct json_object *answer = NULL;
	const char *p;
	int rc;

	rc = hv_bmc_call(&w->n->cfg, w->bmc, w->address, "status", &answer, w->err,
	                 sizeof w->err);
	if (rc != HV_OK)
		return rc;
	p = hv_json_str(answer, "power");
	w->power = p == NULL ? -1 : strcmp(p, "on") == 0;
	json_object_put(answer);
	return HV_OK;
}

static void wd_run(uv_work_t *req)
{
	struct wd_work *w = req->data;
	struct json_object *answer = NULL;

	w->power = -1;
	w->rc = power_of(w);
	if (w->kind == WD_POLL)
		return;
	/* A host the BMC shows off gets power; one that hangs, a cycle. A BMC
	 * whose status fails may still take the cycle. */
	snprintf(w->did, sizeof w->did, "%s",
	         w->rc == HV_OK && w->power == 0 ? "on" : "cycle");
	w->rc = hv_bmc_call(&w->n->cfg, w->bmc, w->address, w->did, &answer, w->err,
	                    sizeof w->err);
	json_object_put(answer);
}

static void wd_done(uv_work_t *req, int status)
{
	struct wd_work *w = req->data;
	struct hv_node *n = w->n;

	n->wd_busy = false;
	if (status != 0 || n->stopping || !hv_node_is_leader(n)) {
		free(w);
		return;
	}
	if (w->kind == WD_ACT) {
		n->wd_power = w->power; /* as it was before: the change shows */
		if (w->rc != HV_OK) {
			hv_warn("watchdog: %s: the BMC %s refused power %s: %s", w->host,
			        w->address, w->did, w->err);
			wd_commit(n, w, HV_WD_GAVE_UP, NULL,
			          "%s has not come back and its BMC %s refused power %s: "
			          "%.120s",
			          w->host, w->address, w->did, w->err);
		} else {
			hv_warn("watchdog: %s: power %s through its BMC %s", w->host,
			        w->did, w->address);
		}
		free(w);
		return;
	}
	if (w->rc != HV_OK) {
		hv_debug("watchdog: %s: BMC status: %s", w->host, w->err);
	} else if (strcmp(n->wd_host, w->host) == 0 && w->power >= 0 &&
	           w->power != n->wd_power) {
		bool known = n->wd_power >= 0;
		n->wd_power = w->power;
		if (known) {
			hv_info("watchdog: %s: power %s (its BMC %s)", w->host,
			        w->power ? "on" : "off", w->address);
			wd_commit(n, w, HV_WD_FOLLOWED, NULL, "power %s (its BMC %s)",
			          w->power ? "on" : "off", w->address);
		}
	}
	free(w);
}

static void wd_queue(struct hv_node *n, struct wd_work *w)
{
	w->req.data = w;
	n->wd_busy = true;
	if (uv_queue_work(n->loop, &w->req, wd_run, wd_done) != 0) {
		n->wd_busy = false;
		free(w);
	}
}

static void wd_committed(struct hv_node *n, void *data, int rc, uint64_t index,
                         uint64_t token)
{
	struct wd_commit *c = data;

	(void)index;
	(void)token;
	n->wd_busy = false;
	if (rc != HV_OK) {
		/* refused: the host came back meanwhile, the line stopped, or
		 * leadership moved; the next tick looks again */
		hv_debug("watchdog: %s refused: %s",
		         c->event == HV_WD_CYCLE ? "power cycle" : "event",
		         hv_strerror(rc));
		free(c->act);
	} else if (c->act != NULL && !n->stopping) {
		wd_queue(n, c->act);
	} else {
		free(c->act);
	}
	free(c);
}

/* ---- the tick ------------------------------------------------------------ */

static struct wd_work *work_for(struct hv_node *n, const struct hv_member *m,
                                uint64_t token, int kind)
{
	struct wd_work *w = calloc(1, sizeof *w);

	if (w == NULL)
		return NULL;
	w->n = n;
	w->kind = kind;
	w->rollout = n->state.rollout.id;
	w->token = token;
	snprintf(w->host, sizeof w->host, "%s", m->name);
	snprintf(w->bmc, sizeof w->bmc, "%s", m->bmc);
	snprintf(w->address, sizeof w->address, "%s", m->bmc_address);
	snprintf(w->phase, sizeof w->phase, "%s", hv_phase_name(m->cycle));
	return w;
}

static bool has_bmc(const struct hv_member *m)
{
	return m->bmc[0] != '\0' && strcmp(m->bmc, "none") != 0 &&
	       m->bmc_address[0] != '\0';
}

void hv_watchdog_tick(struct hv_node *n)
{
	const struct hv_config *cfg = &n->cfg;
	const struct hv_member *m = NULL;
	uint64_t now = hv_node_lead_now_ms(n), token = 0;
	struct wd_work *w;
	int due;

	if (n->wd_busy || n->stopping || !hv_node_is_leader(n))
		return;
	due =
	    hv_rollout_watchdog_due(&n->state, now, (uint64_t)cfg->boot_timeout_s * 1000,
	                            cfg->watchdog_cycles, &m, &token);
	if (due == 0) {
		/* Follow the power of a holder that reboots, through its BMC. */
		const struct hv_state *s = &n->state;
		for (unsigned i = 0; i < s->n_members && m == NULL; i++) {
			const struct hv_member *x = &s->members[i];
			const struct hv_holder *h = hv_state_holder(s, x->name);
			if (!x->removed && h != NULL && has_bmc(x) &&
			    (x->cycle == HV_PH_REBOOT || x->cycle == HV_PH_ROLLBACK)) {
				m = x;
				token = h->token;
			}
		}
		if (m == NULL) {
			n->wd_host[0] = '\0';
			n->wd_power = -1;
			return;
		}
		if (strcmp(n->wd_host, m->name) != 0 || n->wd_phase != m->cycle) {
			/* It was on when it committed the phase it is in. */
			snprintf(n->wd_host, sizeof n->wd_host, "%s", m->name);
			n->wd_phase = m->cycle;
			n->wd_power = 1;
		}
		if (cfg->bmc_credentials[0] == '\0' || now < n->wd_poll_due_ms)
			return;
		n->wd_poll_due_ms = now + POLL_MS;
		if ((w = work_for(n, m, token, WD_POLL)) != NULL)
			wd_queue(n, w);
		return;
	}
	if ((w = work_for(n, m, token, WD_ACT)) == NULL)
		return;
	if (due == HV_WD_GAVE_UP || cfg->bmc_credentials[0] == '\0') {
		if (!has_bmc(m))
			wd_commit(n, w, HV_WD_GAVE_UP, NULL,
			          "%s has not come back %u s after it began to reboot, "
			          "and it has no BMC to power-cycle it: check it by hand",
			          m->name, cfg->boot_timeout_s);
		else if (due == HV_WD_GAVE_UP)
			wd_commit(
			    n, w, HV_WD_GAVE_UP, NULL,
			    "%s has not come back after %u power cycle%s through its "
			    "BMC %s: check it by hand",
			    m->name, m->wd_cycles, m->wd_cycles == 1 ? "" : "s",
			    m->bmc_address);
		else
			wd_commit(
			    n, w, HV_WD_GAVE_UP, NULL,
			    "%s has not come back %u s after it began to reboot, and "
			    "%s cannot drive its BMC (no bmc-credentials)",
			    m->name, cfg->boot_timeout_s, cfg->name);
		free(w);
		return;
	}
	hv_warn("watchdog: %s has not come back within %u s: power cycle %u of %u "
	        "through its BMC %s",
	        m->name, cfg->boot_timeout_s, m->wd_cycles + 1, cfg->watchdog_cycles,
	        m->bmc_address);
	if (m->wd_cycles == 0)
		wd_commit(n, w, HV_WD_CYCLE, w, "not back %u s after it began to reboot",
		          cfg->boot_timeout_s);
	else
		wd_commit(n, w, HV_WD_CYCLE, w, "not back %u s after power cycle %u",
		          cfg->boot_timeout_s, m->wd_cycles);
}
