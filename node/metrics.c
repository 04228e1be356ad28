/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/list.h"
#include "../lib/log.h"
#include "../patchfsm/cycle.h"
#include "metrics.h"
#include "node.h"
#include "transport.h"

#define REQ_MAX 8192
#define REQ_TIMEOUT_MS 5000

/* Bucket bounds, in ms (the exposition says seconds). */
static const uint64_t bound_ms[HV_METRICS_BUCKETS] = {5,   10,   25,   50,   100,  250,
                                                      500, 1000, 2500, 5000, 10000};

void hv_metrics_observe(struct hv_metrics_counters *m, const struct hv_cmd *cmd, int rc)
{
	if (cmd == NULL)
		return;
	if (rc != HV_OK) {
		if (rc > 0 && rc < HV__NERR)
			m->refused[rc]++;
		return;
	}
	if (cmd->type != HV_CMD_MOVED)
		return;
	if (cmd->result != HV_OK) {
		m->migrations_failed++;
		return;
	}
	m->migrations_ok++;
	m->downtime_count++;
	m->downtime_sum_ms += cmd->downtime_ms;
	for (int i = 0; i < HV_METRICS_BUCKETS; i++)
		if (cmd->downtime_ms <= bound_ms[i])
			m->downtime_le[i]++;
}

/* A label value with \ " and newline escaped. */
static void label(FILE *f, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*v, f);
	}
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{host="H"} value, for every member that is not removed. */
static void per_member(FILE *f, const struct hv_state *st, const char *name,
                       uint64_t (*value)(const struct hv_state *,
                                         const struct hv_member *, uint64_t),
                       uint64_t now_ms)
{
	for (unsigned i = 0; i < st->n_members; i++) {
		const struct hv_member *m = &st->members[i];
		if (m->removed)
			continue;
		fprintf(f, "%s{host=\"", name);
		label(f, m->name);
		fprintf(f, "\"} %llu\n", (unsigned long long)value(st, m, now_ms));
	}
}

static uint64_t v_lease(const struct hv_state *st, const struct hv_member *m,
                        uint64_t now)
{
	(void)now;
	return hv_state_holder(st, m->name) != NULL;
}

static uint64_t v_token(const struct hv_state *st, const struct hv_member *m,
                        uint64_t now)
{
	const struct hv_holder *h = hv_state_holder(st, m->name);

	(void)now;
	return h != NULL ? h->token : 0;
}

static uint64_t v_age(const struct hv_state *st, const struct hv_member *m, uint64_t now)
{
	(void)st;
	return m->report_ms != 0 && now > m->report_ms ? (now - m->report_ms) / 1000 : 0;
}

static uint64_t v_guests(const struct hv_state *st, const struct hv_member *m,
                         uint64_t now)
{
	(void)st;
	(void)now;
	return m->n_guests;
}

char *hv_metrics_render(const struct hv_metrics_counters *m, const struct hv_state *st,
                        const struct hv_metrics_raft *raft, uint64_t now_ms, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	uint64_t err_total = 0;

	if (f == NULL)
		return NULL;
	head(f, "hvpeer_member_info", "gauge",
	     "A member of the cluster (1), with its Raft role and reported version.");
	for (unsigned i = 0; i < st->n_members; i++) {
		const struct hv_member *mb = &st->members[i];
		if (mb->removed)
			continue;
		fputs("hvpeer_member_info{host=\"", f);
		label(f, mb->name);
		fprintf(f, "\",role=\"%s\",version=\"", hv_role_name(mb->role));
		label(f, mb->version);
		fputs("\"} 1\n", f);
	}
	head(f, "hvpeer_member_report_age_seconds", "gauge",
	     "Seconds since the member's last report (0: none yet), by this node's "
	     "clock.");
	per_member(f, st, "hvpeer_member_report_age_seconds", v_age, now_ms);
	head(f, "hvpeer_member_guests", "gauge",
	     "Guests on the member, as it last reported.");
	per_member(f, st, "hvpeer_member_guests", v_guests, now_ms);
	head(f, "hvpeer_lease_held", "gauge",
	     "1 when the member holds a maintenance lease.");
	per_member(f, st, "hvpeer_lease_held", v_lease, now_ms);
	head(f, "hvpeer_lease_token", "gauge",
	     "The fencing token of the member's lease (0: it holds none).");
	per_member(f, st, "hvpeer_lease_token", v_token, now_ms);
	head(f, "hvpeer_lease_max_concurrent", "gauge",
	     "Leases that may be held at once.");
	fprintf(f, "hvpeer_lease_max_concurrent %u\n", st->max_concurrent);
	head(f, "hvpeer_maintenance_phase", "gauge",
	     "1 for the member's maintenance phase (none, entering, evacuating, in, "
	     "exiting).");
	for (unsigned i = 0; i < st->n_members; i++) {
		const struct hv_member *mb = &st->members[i];
		if (mb->removed)
			continue;
		fputs("hvpeer_maintenance_phase{host=\"", f);
		label(f, mb->name);
		fprintf(f, "\",phase=\"%s\"} 1\n", hv_maint_name(mb->maint));
	}
	head(f, "hvpeer_patch_phase", "gauge",
	     "1 for the member's phase in the patch cycle of the current rollout.");
	for (unsigned i = 0; i < st->n_members; i++) {
		const struct hv_member *mb = &st->members[i];
		if (mb->removed)
			continue;
		fputs("hvpeer_patch_phase{host=\"", f);
		label(f, mb->name);
		fprintf(f, "\",phase=\"%s\"} 1\n", hv_phase_name(mb->cycle));
	}
	head(f, "hvpeer_paused", "gauge",
	     "1 while the cluster is paused (the line stopped).");
	fprintf(f, "hvpeer_paused %d\n", st->paused ? 1 : 0);
	head(f, "hvpeer_rollout_hosts", "gauge",
	     "Hosts of the current or last rollout, by outcome.");
	fprintf(f, "hvpeer_rollout_hosts{outcome=\"done\"} %u\n", st->rollout.done);
	fprintf(f, "hvpeer_rollout_hosts{outcome=\"failed\"} %u\n", st->rollout.failed);
	head(f, "hvpeer_quarantined_patches", "gauge", "Patches no host tries again.");
	fprintf(f, "hvpeer_quarantined_patches %u\n", st->n_quarantine);
	head(f, "hvpeer_state_rejected_commands", "gauge",
	     "Committed commands the state machine refused, since the cluster began.");
	fprintf(f, "hvpeer_state_rejected_commands %llu\n",
	        (unsigned long long)st->rejected);

	head(f, "hvpeer_raft_role", "gauge", "1 for this node's Raft role.");
	fputs("hvpeer_raft_role{host=\"", f);
	label(f, raft->node);
	fprintf(f, "\",role=\"%s\"} 1\n", raft->role);
	head(f, "hvpeer_raft_leader", "gauge", "1 for the leader this node knows.");
	if (raft->leader[0] != '\0') {
		fputs("hvpeer_raft_leader{leader=\"", f);
		label(f, raft->leader);
		fputs("\"} 1\n", f);
	}
	head(f, "hvpeer_raft_term", "gauge", "This node's current Raft term.");
	fprintf(f, "hvpeer_raft_term %llu\n", (unsigned long long)raft->term);
	head(f, "hvpeer_raft_commit_index", "gauge", "This node's Raft commit index.");
	fprintf(f, "hvpeer_raft_commit_index %llu\n",
	        (unsigned long long)raft->commit_index);
	head(f, "hvpeer_raft_last_applied", "gauge",
	     "The index of the last entry this node applied.");
	fprintf(f, "hvpeer_raft_last_applied %llu\n",
	        (unsigned long long)raft->last_applied);

	head(f, "hvpeer_migration_downtime_seconds", "histogram",
	     "Downtime of the live migrations committed since this process started.");
	for (int i = 0; i < HV_METRICS_BUCKETS; i++)
		fprintf(f, "hvpeer_migration_downtime_seconds_bucket{le=\"%g\"} %llu\n",
		        (double)bound_ms[i] / 1000,
		        (unsigned long long)m->downtime_le[i]);
	fprintf(f, "hvpeer_migration_downtime_seconds_bucket{le=\"+Inf\"} %llu\n",
	        (unsigned long long)m->downtime_count);
	fprintf(f, "hvpeer_migration_downtime_seconds_sum %g\n",
	        (double)m->downtime_sum_ms / 1000);
	fprintf(f, "hvpeer_migration_downtime_seconds_count %llu\n",
	        (unsigned long long)m->downtime_count);
	head(f, "hvpeer_migrations_total", "counter",
	     "Guest moves committed since this process started, by outcome.");
	fprintf(f, "hvpeer_migrations_total{outcome=\"ok\"} %llu\n",
	        (unsigned long long)m->migrations_ok);
	fprintf(f, "hvpeer_migrations_total{outcome=\"failed\"} %llu\n",
	        (unsigned long long)m->migrations_failed);
	head(
	    f, "hvpeer_commands_refused_total", "counter",
	    "Committed commands the state machine refused since this process started, by "
	    "error.");
	for (int e = 1; e < HV__NERR; e++) {
		if (m->refused[e] == 0)
			continue;
		err_total += m->refused[e];
		fprintf(f, "hvpeer_commands_refused_total{error=\"%s\"} %llu\n",
		        hv_errname(e), (unsigned long long)m->refused[e]);
	}
	if (err_total == 0)
		fputs("hvpeer_commands_refused_total{error=\"none\"} 0\n", f);
	head(f, "hvpeer_notify_runs_total", "counter",
	     "Runs of notify-command since this process started, by outcome.");
	fprintf(f, "hvpeer_notify_runs_total{outcome=\"ok\"} %llu\n",
	        (unsigned long long)(m->notify_runs - m->notify_failures));
	fprintf(f, "hvpeer_notify_runs_total{outcome=\"failed\"} %llu\n",
	        (unsigned long long)m->notify_failures);
	head(f, "hvpeer_metrics_scrapes_total", "counter", "Answers to GET /metrics.");
	fprintf(f, "hvpeer_metrics_scrapes_total %llu\n", (unsigned long long)m->scrapes);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = size;
	return buf;
}

/* ---- HTTP -------------------------------------------------------------- */

struct hv_metrics_server {
	struct hv_node *n;
	uv_tcp_t listener;
	struct mconn *conns;
	int open; /* handles not closed yet (listener + connections) */
	void (*done)(struct hv_node *n);
};

struct mconn {
	struct hv_metrics_server *srv;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t write;
	char req[REQ_MAX];
	size_t got;
	char *out;
	int handles;
	bool answered;
	struct mconn *next, *prev;
};

static void srv_maybe_done(struct hv_metrics_server *s)
{
	if (s->open == 0 && s->done != NULL) {
		void (*done)(struct hv_node *) = s->done;
		struct hv_node *n = s->n;
		n->metrics_srv = NULL;
		free(s);
		done(n);
	}
}

static void mconn_closed(uv_handle_t *h)
{
	struct mconn *c = h->data;
	struct hv_metrics_server *s = c->srv;

	if (--c->handles > 0)
		return;
	HV_LIST_UNLINK(s->conns, c);
	free(c->out);
	free(c);
	s->open--;
	srv_maybe_done(s);
}

static void mconn_close(struct mconn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	uv_close((uv_handle_t *)&c->timer, mconn_closed);
	uv_close((uv_handle_t *)&c->tcp, mconn_closed);
}

static void written(uv_write_t *w, int status)
{
	(void)status;
	mconn_close(w->data);
}

static void answer(struct mconn *c, int code, const char *reason, const char *body,
                   size_t blen)
{
	char hdr[256];
	int hlen =
	    snprintf(hdr, sizeof hdr,
	             "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	             "Connection: close\r\n\r\n",
	             code, reason,
	             code == 200 ? "text/plain; version=0.0.4; charset=utf-8"
	                         : "text/plain; charset=utf-8",
	             blen);
	uv_buf_t b;

	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_timer_stop(&c->timer);
	if (hlen < 0 || (c->out = malloc((size_t)hlen + blen)) == NULL) {
		mconn_close(c);
		return;
	}
	memcpy(c->out, hdr, (size_t)hlen);
	memcpy(c->out + hlen, body, blen);
	b = uv_buf_init(c->out, (unsigned)((size_t)hlen + blen));
	c->write.data = c;
	if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, written) != 0)
		mconn_close(c);
}

static void serve(struct mconn *c)
{
	struct hv_node *n = c->srv->n;
	char method[16], path[256];
	struct hv_metrics_raft raft = {.node = n->cfg.name, .leader = ""};
	const char *laddr;
	raft_id lid = 0;
	char *text;
	size_t len;

	if (sscanf(c->req, "%15s %255s HTTP/1.%*c", method, path) != 2) {
		answer(c, 400, "Bad Request", "bad request\n", 12);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		answer(c, 405, "Method Not Allowed", "GET /metrics only\n", 18);
		return;
	}
	if (strcmp(path, "/metrics") != 0) {
		answer(c, 404, "Not Found", "GET /metrics only\n", 18);
		return;
	}
	switch (raft_state(&n->raft)) {
	case RAFT_LEADER:
		raft.role = "leader";
		break;
	case RAFT_CANDIDATE:
		raft.role = "candidate";
		break;
	case RAFT_FOLLOWER:
		raft.role = "follower";
		break;
	default:
		raft.role = "unavailable";
		break;
	}
	raft_leader(&n->raft, &lid, &laddr);
	if (lid != 0) {
		const struct hv_member *m = hv_state_member_by_id(&n->state, lid);
		raft.leader = m != NULL ? m->name : "?";
	}
	raft.term = raft_current_term(&n->raft);
	raft.commit_index = raft_commit_index(&n->raft);
	raft.last_applied = raft_last_applied(&n->raft);
	n->metrics.scrapes++;
	text = hv_metrics_render(&n->metrics, &n->state, &raft, hv_now_ms(), &len);
	if (text == NULL) {
		answer(c, 500, "Internal Server Error", "out of memory\n", 14);
		return;
	}
	answer(c, 200, "OK", text, strcmp(method, "HEAD") == 0 ? 0 : len);
	free(text);
}

static void req_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mconn *c = h->data;

	(void)suggested;
	buf->base = c->req + c->got;
	buf->len = REQ_MAX - 1 - c->got;
}

static void req_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct mconn *c = s->data;

	(void)buf;
	if (n < 0) {
		mconn_close(c);
		return;
	}
	c->got += (size_t)n;
	c->req[c->got] = '\0';
	if (strstr(c->req, "\r\n\r\n") != NULL || strstr(c->req, "\n\n") != NULL)
		serve(c);
	else if (c->got >= REQ_MAX - 1)
		answer(c, 400, "Bad Request", "request too large\n", 18);
}

static void req_timeout(uv_timer_t *t)
{
	mconn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct hv_metrics_server *s = server->data;
	struct mconn *c;

	if (status != 0 || s->done != NULL || (c = calloc(1, sizeof *c)) == NULL)
		return;
	c->srv = s;
	c->handles = 2;
	uv_tcp_init(server->loop, &c->tcp);
	uv_timer_init(server->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	HV_LIST_LINK(s->conns, c);
	s->open++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		mconn_close(c);
		return;
	}
	uv_timer_start(&c->timer, req_timeout, REQ_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&c->tcp, req_alloc, req_read);
}

int hv_metrics_start(struct hv_node *n)
{
	struct hv_metrics_server *s;
	struct sockaddr_storage sa;
	char addr[HV_ADDR_MAX + 16];
	int rv;

	if (n->cfg.metrics_listen[0] == '\0')
		return 0;
	if (strchr(n->cfg.metrics_listen, ':') == NULL)
		snprintf(addr, sizeof addr, "127.0.0.1:%s", n->cfg.metrics_listen);
	else
		snprintf(addr, sizeof addr, "%s", n->cfg.metrics_listen);
	if (hv_sockaddr(addr, &sa) != 0) {
		snprintf(n->errmsg, sizeof n->errmsg,
		         "metrics-listen '%s': not PORT or ADDRESS:PORT",
		         n->cfg.metrics_listen);
		return -1;
	}
	if ((s = calloc(1, sizeof *s)) == NULL) {
		snprintf(n->errmsg, sizeof n->errmsg, "metrics: out of memory");
		return -1;
	}
	s->n = n;
	n->metrics_srv = s;
	uv_tcp_init(n->loop, &s->listener);
	s->listener.data = s;
	s->open = 1;
	rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&s->listener, 16, on_connection);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "metrics-listen %s: %s", addr,
		         uv_strerror(rv));
		return -1;
	}
	hv_info("metrics on http://%s/metrics", addr);
	return 0;
}

static void listener_closed(uv_handle_t *h)
{
	struct hv_metrics_server *s = h->data;

	s->open--;
	srv_maybe_done(s);
}

void hv_metrics_stop(struct hv_node *n, void (*done)(struct hv_node *n))
{
	struct hv_metrics_server *s = n->metrics_srv;

	if (s == NULL) {
		done(n);
		return;
	}
	s->done = done;
	uv_close((uv_handle_t *)&s->listener, listener_closed);
	for (struct mconn *c = s->conns; c != NULL; c = c->next)
		mconn_close(c);
}
