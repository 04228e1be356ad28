/*
 * hvpeer-bench: commit latency of a lease grant next to a raw raft_apply(),
 * measured in the same run on the same in-process 3-node cluster.
 *
 * Happy path: three struct hv_node on one libuv loop, 127.0.0.1 free ports,
 * data dirs in a fresh temp dir; the first bootstraps, the others join it.
 * Once the leader sees 3 committed voters and the replicated member list
 * agrees, every series runs strictly one operation at a time on the leader:
 *   raw     raft_apply() of an 8-byte zero entry (hv_fsm decodes it, finds it
 *           malformed and counts it as rejected: the cheapest possible apply);
 *   report  hv_node_propose(HV_CMD_REPORT): encode + raft + decode + apply;
 *   lease   hv_node_propose(HV_CMD_LEASE_ACQUIRE), then an untimed
 *           hv_node_propose(HV_CMD_LEASE_RELEASE) with the granted token.
 * After an untimed warm-up of each series, the timed operations are drawn
 * in a seeded random order (a random permutation of the three quotas), so
 * that drift and periodic work (each node writes a snapshot every
 * snapshot-threshold entries, and commits that overlap the write stall)
 * land on every series alike; a fixed block schedule put every snapshot on
 * the same series. Latency is uv_hrtime() from the call to its callback: append,
 * fsync, replication to a majority, commit and apply. Each node's
 * io->snapshot_put is wrapped (timing only) so that the samples that
 * overlapped a snapshot write can be shown apart.
 *
 * Failure modes: a proposal that fails (leadership lost, no leader) is
 * counted as an error and retried from a timer, never from inside the
 * failing callback (libraft 0.22 crashes on raft_apply() from an apply
 * callback that reports an error); a buffer whose raft_apply() failed is
 * not freed (libraft may already have released it). The cluster has
 * FORM_TIMEOUT_MS to form and the whole run RUN_TIMEOUT_MS; on either the
 * bench stops the nodes and exits 1. Then every node is stopped, the loop
 * runs until every handle is closed and uv_loop_close() must return 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "../node/node.h"

#define N_NODES 3
#define FORM_TIMEOUT_MS 60000
#define RUN_TIMEOUT_MS 600000
#define POLL_MS 20
#define RETRY_MS 10
#define MAX_ERRORS 200

enum kind { K_RAW, K_REPORT, K_LEASE, K__N };

static const char *const kind_label[K__N] = {
    "raw raft_apply (8-byte entry, rejected by hv_fsm)",
    "hv_node_propose(REPORT)",
    "lease grant (hv_node_propose(LEASE_ACQUIRE))",
};

struct series {
	uint64_t *ns; /* recorded samples */
	unsigned n;
	unsigned cap;
	unsigned errors; /* failed proposals (retried) */
	unsigned odd;    /* committed but not the expected result */
	uint64_t busy_ns;
};

/* Snapshot writes in flight, any node: io->snapshot_put wrapped. */
struct snap_put {
	struct raft_io_snapshot_put *req;
	raft_io_snapshot_put_cb cb;
	uint64_t t0;
};

static struct {
	int (*put)(struct raft_io *io, unsigned trailing,
	           struct raft_io_snapshot_put *req, const struct raft_snapshot *snapshot,
	           raft_io_snapshot_put_cb cb);
	struct snap_put inflight[16];
	unsigned active;
	unsigned started; /* counted when counting is on */
	unsigned done;
	bool counting;
	uint64_t min_ns, max_ns, sum_ns;
} snaps;

struct bench {
	uv_loop_t loop;
	struct hv_node *nodes[N_NODES];
	bool started[N_NODES];
	uv_timer_t poll;     /* cluster formation */
	uv_timer_t retry;    /* next operation after a failure */
	uv_timer_t deadline; /* whole-run watchdog */
	char dir[128];
	const char *tls_dir; /* -t: certificates bench1..3 and ca/ca.crt there */

	unsigned n_ops; /* per series */
	unsigned warmup;
	uint64_t seed;
	uint64_t seed_used;
	unsigned left[2][K__N]; /* operations to do: [0] warm-up, [1] timed */
	int cur;                /* kind of the operation in progress, or -1 */
	bool cur_record;
	bool cur_snap;      /* a snapshot write was active at its start */
	unsigned cur_snaps; /* snaps.started at its start */
	bool grant_ok;      /* the acquire being released was a grant */

	uint64_t t_start;
	uint64_t form_ns;
	char lease_name[HV_NAME_MAX + 1];
	uint64_t lease_token; /* held by lease_name, to release; 0 = none */
	uint64_t t_op;
	struct raft_apply raw_req;
	uint64_t rejected_before;
	unsigned leader_changes;
	raft_id last_leader;

	struct series s[K__N];
	struct series clean[K__N]; /* samples that overlapped no snapshot write */
	unsigned errors_total;
	int failed; /* 1 when the bench could not complete */
	bool finishing;
};

static void next_op(struct bench *b);
static void finish(struct bench *b, int failed);

/* ---- helpers ------------------------------------------------------------- */

static int free_ports(int ports[], int n)
{
	int fds[N_NODES];
	int i, rv = -1;

	for (i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t len = sizeof sa;
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0) {
			if (fds[i] >= 0)
				close(fds[i]);
			goto out;
		}
		ports[i] = ntohs(sa.sin_port);
	}
	rv = 0;
out:
	while (i-- > 0)
		close(fds[i]);
	return rv;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct hv_node *leader(struct bench *b)
{
	for (int i = 0; i < N_NODES; i++)
		if (b->started[i] && !b->nodes[i]->stopping &&
		    hv_node_is_leader(b->nodes[i]))
			return b->nodes[i];
	return NULL;
}

static unsigned raft_voters(struct hv_node *n)
{
	unsigned v = 0;

	for (unsigned i = 0; i < n->raft.configuration.n; i++)
		if (n->raft.configuration.servers[i].role == RAFT_VOTER)
			v++;
	return v;
}

static int record(struct series *s, uint64_t ns)
{
	if (s->n == s->cap) {
		unsigned cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *p = realloc(s->ns, cap * sizeof *p);
		if (p == NULL)
			return -1;
		s->ns = p;
		s->cap = cap;
	}
	s->ns[s->n++] = ns;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples. */
static double pct_ms(const struct series *s, double p)
{
	size_t k;

	if (s->n == 0)
		return 0;
	k = (size_t)((p / 100.0) * s->n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > s->n)
		k = s->n;
	return (double)s->ns[k - 1] / 1e6;
}

static double mean_ms(const struct series *s)
{
	long double sum = 0;

	for (unsigned i = 0; i < s->n; i++)
		sum += s->ns[i];
	return s->n ? (double)(sum / s->n / 1e6) : 0;
}

/* ---- snapshot writes (timing only) ---------------------------------------- */

static void snap_put_done(struct raft_io_snapshot_put *req, int status)
{
	uint64_t now = uv_hrtime();

	for (unsigned i = 0; i < sizeof snaps.inflight / sizeof snaps.inflight[0]; i++) {
		struct snap_put *p = &snaps.inflight[i];
		raft_io_snapshot_put_cb cb;
		uint64_t d;

		if (p->req != req)
			continue;
		cb = p->cb;
		d = now - p->t0;
		p->req = NULL;
		snaps.active--;
		if (snaps.counting) {
			snaps.done++;
			snaps.sum_ns += d;
			if (snaps.min_ns == 0 || d < snaps.min_ns)
				snaps.min_ns = d;
			if (d > snaps.max_ns)
				snaps.max_ns = d;
		}
		cb(req, status);
		return;
	}
	abort(); /* a request we never saw */
}

static int snap_put(struct raft_io *io, unsigned trailing,
                    struct raft_io_snapshot_put *req,
                    const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
	struct snap_put *slot = NULL;
	int rv;

	for (unsigned i = 0; i < sizeof snaps.inflight / sizeof snaps.inflight[0]; i++)
		if (snaps.inflight[i].req == NULL) {
			slot = &snaps.inflight[i];
			break;
		}
	if (slot == NULL) /* cannot happen: one put per node at a time */
		return snaps.put(io, trailing, req, snapshot, cb);
	slot->req = req;
	slot->cb = cb;
	slot->t0 = uv_hrtime();
	snaps.active++;
	rv = snaps.put(io, trailing, req, snapshot, snap_put_done);
	if (rv != 0) {
		slot->req = NULL;
		snaps.active--;
		return rv;
	}
	if (snaps.counting)
		snaps.started++;
	return 0;
}

static void snap_wrap(struct hv_node *n)
{
	if (snaps.put == NULL)
		snaps.put = n->io.snapshot_put;
	if (n->io.snapshot_put == snaps.put)
		n->io.snapshot_put = snap_put;
}

/* ---- operations ----------------------------------------------------------- */

static void retry_cb(uv_timer_t *t)
{
	next_op(t->data);
}

/* A proposal failed or gave an unexpected result: count it and carry on
 * from the loop, never from inside the callback that reported it. */
static void op_failed(struct bench *b, enum kind k, const char *what, int rc)
{
	b->s[k].errors++;
	if (++b->errors_total > MAX_ERRORS) {
		fprintf(stderr,
		        "hvpeer-bench: too many failed proposals (last: %s: %s)\n", what,
		        hv_strerror(rc));
		finish(b, 1);
		return;
	}
	uv_timer_start(&b->retry, retry_cb, RETRY_MS, 0);
}

static int sample(struct bench *b, enum kind k, uint64_t t1)
{
	uint64_t ns = t1 - b->t_op;

	if (!b->cur_record)
		return 0;
	b->s[k].busy_ns += ns;
	if (record(&b->s[k], ns) != 0)
		return -1;
	if (!b->cur_snap && snaps.started == b->cur_snaps &&
	    record(&b->clean[k], ns) != 0)
		return -1;
	return 0;
}

/* The operation in progress is complete: on to the next one. */
static void op_complete(struct bench *b)
{
	b->left[b->cur_record ? 1 : 0][b->cur]--;
	b->cur = -1;
	next_op(b);
}

static void raw_done(struct raft_apply *req, int status, void *result)
{
	struct bench *b = req->data;
	uint64_t t1 = uv_hrtime();

	if (b->finishing)
		return;
	if (status != 0) {
		op_failed(b, K_RAW, "raft_apply", HV_RAFT);
		return;
	}
	/* hv_fsm refuses the 8 zero bytes as a command: that is expected. */
	if (hv_fsm_result_code(result) != HV_MALFORMED)
		b->s[K_RAW].odd++;
	if (sample(b, K_RAW, t1) != 0) {
		finish(b, 1);
		return;
	}
	op_complete(b);
}

static int raw_apply(struct bench *b, struct hv_node *n)
{
	struct raft_buffer buf;

	buf.len = 8; /* libraft's disk log needs a multiple of 8 */
	buf.base = raft_malloc(buf.len);
	if (buf.base == NULL)
		return RAFT_NOMEM;
	memset(buf.base, 0, buf.len);
	b->raw_req.data = b;
	/* On failure the buffer is not freed: libraft 0.22 may have released
	 * it already (the same choice as hv_node_propose). */
	return raft_apply(&n->raft, &b->raw_req, &buf, 1, raw_done);
}

static bool lost(int rc)
{
	return rc == HV_NOQUORUM || rc == HV_NOTLEADER || rc == HV_SHUTDOWN ||
	       rc == HV_RAFT || rc == HV_NOMEM;
}

static void report_done(struct hv_node *n, void *data, int rc, uint64_t index,
                        uint64_t token)
{
	struct bench *b = data;
	uint64_t t1 = uv_hrtime();

	(void)n;
	(void)index;
	(void)token;
	if (b->finishing)
		return;
	if (lost(rc)) {
		op_failed(b, K_REPORT, "report", rc);
		return;
	}
	if (rc != HV_OK)
		b->s[K_REPORT].odd++;
	if (sample(b, K_REPORT, t1) != 0) {
		finish(b, 1);
		return;
	}
	op_complete(b);
}

static void release_done(struct hv_node *n, void *data, int rc, uint64_t index,
                         uint64_t token)
{
	struct bench *b = data;

	(void)n;
	(void)index;
	(void)token;
	if (b->finishing)
		return;
	if (lost(rc)) {
		/* lease_token is still set: the retry releases again. */
		op_failed(b, K_LEASE, "lease release", rc);
		return;
	}
	if (rc != HV_OK && rc != HV_NOTHOLDER)
		b->s[K_LEASE].odd++;
	b->lease_token = 0;
	if (b->grant_ok) {
		op_complete(b);
	} else {
		/* The acquire was not a grant: acquire again, from the loop. */
		uv_timer_start(&b->retry, retry_cb, 0, 0);
	}
}

static void acquire_done(struct hv_node *n, void *data, int rc, uint64_t index,
                         uint64_t token)
{
	struct bench *b = data;
	uint64_t t1 = uv_hrtime();

	(void)n;
	if (b->finishing)
		return;
	if (lost(rc)) {
		op_failed(b, K_LEASE, "lease acquire", rc);
		return;
	}
	if (rc != HV_OK) {
		/* LEASEFULL, PAUSED, NOMEMBER...: nothing to release. */
		b->s[K_LEASE].odd++;
		fprintf(stderr, "hvpeer-bench: lease acquire refused: %s\n",
		        hv_strerror(rc));
		op_failed(b, K_LEASE, "lease acquire", rc);
		return;
	}
	b->lease_token = token;
	b->grant_ok = token == index;
	if (!b->grant_ok) {
		/* "already holds": a retried acquire after an unknown outcome
		 * is not a grant and not a sample. Release, then acquire. */
		b->s[K_LEASE].odd++;
	} else if (sample(b, K_LEASE, t1) != 0) {
		finish(b, 1);
		return;
	}
	next_op(b); /* the release, untimed */
}

/* Kind of the next operation: the warm-up series in turn, then a random
 * permutation of what is left. -1 when done. */
static int pick(struct bench *b)
{
	unsigned total = 0, r;

	for (int k = 0; k < K__N; k++)
		if (b->left[0][k] > 0) {
			b->cur_record = false;
			return k;
		}
	for (int k = 0; k < K__N; k++)
		total += b->left[1][k];
	if (total == 0)
		return -1;
	/* xorshift64 */
	b->seed ^= b->seed << 13;
	b->seed ^= b->seed >> 7;
	b->seed ^= b->seed << 17;
	r = (unsigned)(b->seed % total);
	b->cur_record = true;
	for (int k = 0; k < K__N; k++) {
		if (r < b->left[1][k])
			return k;
		r -= b->left[1][k];
	}
	return -1;
}

/* Start the operation in progress (or the next one) on the current leader. */
static void next_op(struct bench *b)
{
	struct hv_node *n;
	struct hv_cmd cmd;
	enum kind k;
	int rv;

	if (b->finishing)
		return;
	if (b->lease_token == 0 && b->cur < 0) {
		b->cur = pick(b);
		if (b->cur < 0) {
			finish(b, 0);
			return;
		}
	}
	n = leader(b);
	if (n == NULL) {
		uv_timer_start(&b->retry, retry_cb, RETRY_MS, 0);
		return;
	}
	if (n->id != b->last_leader) {
		b->leader_changes++;
		b->last_leader = n->id;
	}
	k = (enum kind)b->cur;
	memset(&cmd, 0, sizeof cmd);
	snprintf(cmd.name, sizeof cmd.name, "%s", b->lease_name);
	b->cur_snap = snaps.active > 0;
	b->cur_snaps = snaps.started;
	b->t_op = uv_hrtime();
	if (b->lease_token != 0) {
		cmd.type = HV_CMD_LEASE_RELEASE;
		cmd.token = b->lease_token;
		rv = hv_node_propose(n, &cmd, release_done, b);
	} else if (k == K_RAW) {
		rv = raw_apply(b, n) == 0 ? HV_OK : HV_RAFT;
	} else if (k == K_REPORT) {
		cmd.type = HV_CMD_REPORT;
		snprintf(cmd.phase, sizeof cmd.phase, "idle");
		snprintf(cmd.version, sizeof cmd.version, "%s", n->cfg.host_version);
		rv = hv_node_propose(n, &cmd, report_done, b);
	} else {
		cmd.type = HV_CMD_LEASE_ACQUIRE;
		rv = hv_node_propose(n, &cmd, acquire_done, b);
	}
	if (rv != HV_OK)
		op_failed(b, k, "propose", rv);
}

/* ---- cluster formation ---------------------------------------------------- */

/* Ready when the leader has 3 committed voters, has applied everything it
 * committed and its replicated member list names the 3 nodes as voters. */
static bool cluster_ready(struct bench *b)
{
	struct hv_node *n = leader(b);
	unsigned state_voters = 0;

	if (n == NULL || raft_voters(n) != N_NODES ||
	    n->raft.configuration_uncommitted_index != 0 ||
	    raft_last_applied(&n->raft) < raft_commit_index(&n->raft) || n->change_busy ||
	    n->reconcile_busy)
		return false;
	for (unsigned i = 0; i < n->state.n_members; i++)
		if (!n->state.members[i].removed &&
		    n->state.members[i].role == HV_ROLE_VOTER)
			state_voters++;
	if (state_voters != N_NODES)
		return false;
	for (int i = 0; i < N_NODES; i++)
		if (!b->nodes[i]->joined)
			return false;
	return hv_state_member(&n->state, n->cfg.name) != NULL;
}

static void poll_cb(uv_timer_t *t)
{
	struct bench *b = t->data;
	struct hv_node *n;

	if (b->finishing)
		return;
	if (!cluster_ready(b)) {
		if (uv_hrtime() - b->t_start > (uint64_t)FORM_TIMEOUT_MS * 1000000) {
			fprintf(stderr,
			        "hvpeer-bench: the cluster did not reach %d voters "
			        "within %d ms\n",
			        N_NODES, FORM_TIMEOUT_MS);
			finish(b, 1);
		}
		return;
	}
	uv_timer_stop(t);
	n = leader(b);
	b->form_ns = uv_hrtime() - b->t_start;
	b->last_leader = n->id;
	snprintf(b->lease_name, sizeof b->lease_name, "%s", n->cfg.name);
	b->rejected_before = n->state.rejected;
	snaps.counting = true;
	next_op(b);
}

static void deadline_cb(uv_timer_t *t)
{
	fprintf(stderr, "hvpeer-bench: no result within %d ms; giving up\n",
	        RUN_TIMEOUT_MS);
	finish(t->data, 1);
}

/* ---- report and shutdown -------------------------------------------------- */

static unsigned over_ms(const struct series *s, double ms)
{
	unsigned c = 0;

	for (unsigned i = 0; i < s->n; i++)
		if (s->ns[i] > ms * 1e6)
			c++;
	return c;
}

static void print_series(const char *label, struct series *s, struct series *clean)
{
	qsort(s->ns, s->n, sizeof *s->ns, cmp_u64);
	qsort(clean->ns, clean->n, sizeof *clean->ns, cmp_u64);
	printf("  %s\n", label);
	printf("      n=%-5u p50 %6.3f ms  p99 %6.3f ms  mean %6.3f ms  max %7.3f ms  "
	       ">10 ms: %u  (%.0f/s)\n",
	       s->n, pct_ms(s, 50), pct_ms(s, 99), mean_ms(s), pct_ms(s, 100),
	       over_ms(s, 10), s->busy_ns ? s->n / (s->busy_ns / 1e9) : 0.0);
	printf("      without the %u that overlapped a snapshot write: p50 %6.3f ms  p99 "
	       "%6.3f ms  max %7.3f ms\n",
	       s->n - clean->n, pct_ms(clean, 50), pct_ms(clean, 99), pct_ms(clean, 100));
	if (s->errors || s->odd)
		printf("      %u failed proposals (retried), %u unexpected results\n",
		       s->errors, s->odd);
}

static void print_results(struct bench *b)
{
	struct hv_node *n = leader(b);
	const struct hv_config *cfg = &b->nodes[0]->cfg;
	double raw50, grant50, raw99, grant99;

	printf("hvpeer-bench: 3 in-process hv_nodes on 127.0.0.1, one libuv loop, %s, "
	       "data in %s\n",
	       b->tls_dir != NULL ? "mutual TLS 1.3" : "plain TCP", b->dir);
	printf("  cluster formed (bootstrap + 2 joins, 3 voters): %.0f ms\n",
	       b->form_ns / 1e6);
	printf("commit latency on the leader, one operation at a time, %u warm-up each, "
	       "then the\n"
	       "three series in a random interleave (seed %llu); election-timeout %u ms, "
	       "heartbeat %u ms,\n"
	       "snapshot every %u entries (trailing %u), fsync on:\n",
	       b->warmup, (unsigned long long)b->seed_used, cfg->election_timeout_ms,
	       cfg->heartbeat_timeout_ms, cfg->snapshot_threshold,
	       cfg->snapshot_trailing);
	for (int k = 0; k < K__N; k++)
		print_series(kind_label[k], &b->s[k], &b->clean[k]);
	raw50 = pct_ms(&b->s[K_RAW], 50);
	raw99 = pct_ms(&b->s[K_RAW], 99);
	grant50 = pct_ms(&b->s[K_LEASE], 50);
	grant99 = pct_ms(&b->s[K_LEASE], 99);
	if (raw50 > 0)
		printf("  lease grant p50 / raw raft_apply p50: %.2fx   target: <= 2x\n",
		       grant50 / raw50);
	if (raw99 > 0)
		printf(
		    "  lease grant p99 / raw raft_apply p99: %.2fx   (for information)\n",
		    grant99 / raw99);
	if (snaps.done > 0) {
		unsigned slow = 0, slow_clean = 0;
		for (int k = 0; k < K__N; k++) {
			slow += over_ms(&b->s[k], 10);
			slow_clean += over_ms(&b->clean[k], 10);
		}
		printf("  snapshot writes while the series ran (3 nodes, warm-up "
		       "included): %u, each %.0f-%.0f ms\n"
		       "  (mean %.0f ms); of the %u commits > 10 ms, %u overlapped a "
		       "snapshot write\n",
		       snaps.done, snaps.min_ns / 1e6, snaps.max_ns / 1e6,
		       snaps.sum_ns / 1e6 / snaps.done, slow, slow - slow_clean);
	}
	/* One line for bench/run.sh to compare runs. */
	printf("  figures: raw_p50_ms=%.3f raw_p99_ms=%.3f grant_p50_ms=%.3f "
	       "grant_p99_ms=%.3f\n",
	       raw50, raw99, grant50, grant99);
	if (n != NULL)
		printf("  leader changes during the run: %u; entries rejected by hv_fsm: "
		       "%llu (raw entries: %u)\n",
		       b->leader_changes,
		       (unsigned long long)(n->state.rejected - b->rejected_before),
		       b->s[K_RAW].n + b->warmup);
}

static unsigned n_stopped;

static void count_stopped(struct hv_node *n)
{
	(void)n;
	n_stopped++;
}

static void finish(struct bench *b, int failed)
{
	if (b->finishing)
		return;
	b->finishing = true;
	b->failed = failed;
	snaps.counting = false;
	if (!failed)
		print_results(b);
	fflush(stdout);
	uv_close((uv_handle_t *)&b->poll, NULL);
	uv_close((uv_handle_t *)&b->retry, NULL);
	uv_close((uv_handle_t *)&b->deadline, NULL);
	for (int i = 0; i < N_NODES; i++)
		if (b->started[i])
			hv_node_stop(b->nodes[i], count_stopped);
}

/* ---- client mode (-c SOCKET): a running hvpeerd's control socket ----------
 *
 * The same kind of figure against real daemons (bench/scale.sh): one
 * request per connection, as the control socket wants (rpc.h), strictly one
 * at a time, after -w untimed warm-ups of each series, in a seeded random
 * interleave of:
 *   ping   the "ping" request: connect, frame, parse, answer; no Raft (the
 *          baseline: what a request costs before anything is committed);
 *   grant  "lease-acquire" for -H HOST (commit through the leader: a
 *          follower or standby forwards it), then an untimed
 *          "lease-release" with the granted token.
 * Latency is CLOCK_MONOTONIC from connect() to the last byte of the answer.
 * A request that fails or is refused is counted and retried after 10 ms; past
 * MAX_ERRORS, or with a request unanswered for 10 s, the run fails (exit 1).
 */
enum ckind { C_PING, C_GRANT, C__N };

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int io_all(int fd, char *buf, size_t len, bool wr, uint64_t deadline)
{
	while (len > 0) {
		struct pollfd p = {.fd = fd, .events = wr ? POLLOUT : POLLIN};
		uint64_t now = mono_ns();
		ssize_t n;

		if (now >= deadline)
			return -1;
		if (poll(&p, 1, (int)((deadline - now) / 1000000 + 1)) <= 0)
			continue;
		n = wr ? write(fd, buf, len) : read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One request on the control socket at path: the answer, or NULL. */
static struct json_object *ctl_call(const char *path, struct json_object *req)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint64_t deadline = mono_ns() + 10000000000ull;
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(text);
	uint32_t be = htonl((uint32_t)len);
	struct json_object *resp = NULL;
	char *body;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path)
		return NULL;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    io_all(fd, (char *)&be, 4, true, deadline) != 0 ||
	    io_all(fd, (char *)text, len, true, deadline) != 0 ||
	    io_all(fd, (char *)&be, 4, false, deadline) != 0) {
		close(fd);
		return NULL;
	}
	len = ntohl(be);
	if (len == 0 || len > HV_RPC_MAX || (body = malloc(len + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	if (io_all(fd, body, len, false, deadline) == 0) {
		body[len] = '\0';
		resp = json_tokener_parse(body);
	}
	free(body);
	close(fd);
	return resp;
}

static struct json_object *lease_req(const char *op, const char *host, uint64_t token)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "op", json_object_new_string(op));
	json_object_object_add(r, "name", json_object_new_string(host));
	if (token != 0)
		json_object_object_add(r, "token", json_object_new_uint64(token));
	return r;
}

/* One operation of kind k; its latency in *ns. 0, or -1 (counted, retried). */
static int client_op(const char *path, const char *host, enum ckind k, uint64_t *ns,
                     char *why, size_t whylen)
{
	struct json_object *req, *resp;
	uint64_t t0, index = 0, token = 0;
	int rv = -1;

	if (k == C_PING) {
		req = json_object_new_object();
		json_object_object_add(req, "op", json_object_new_string("ping"));
	} else {
		req = lease_req("lease-acquire", host, 0);
	}
	t0 = mono_ns();
	resp = ctl_call(path, req);
	*ns = mono_ns() - t0;
	json_object_put(req);
	if (resp == NULL) {
		snprintf(why, whylen, "no answer");
		return -1;
	}
	if (!hv_json_bool(resp, "ok")) {
		const char *m = hv_json_str(resp, "message");
		snprintf(why, whylen, "%s",
		         m != NULL ? m : json_object_to_json_string(resp));
	} else if (k == C_PING) {
		rv = 0;
	} else if (!hv_json_uint(resp, "token", &token) ||
	           !hv_json_uint(resp, "index", &index)) {
		snprintf(why, whylen, "no token in the answer");
	} else {
		struct json_object *rel = lease_req("lease-release", host, token);
		struct json_object *r2 = ctl_call(path, rel);

		json_object_put(rel);
		if (r2 == NULL || !hv_json_bool(r2, "ok"))
			snprintf(why, whylen, "lease release failed");
		else if (token != index)
			snprintf(why, whylen, "not a grant: %s already held the lease",
			         host);
		else
			rv = 0;
		json_object_put(r2);
	}
	json_object_put(resp);
	return rv;
}

static int client_main(const char *path, const char *host, unsigned n_ops,
                       unsigned warmup, uint64_t seed)
{
	static const char *const label[C__N] = {
	    "ping (control socket round trip, no Raft)",
	    "lease grant (lease-acquire committed; release untimed)",
	};
	struct series s[C__N] = {{0}};
	unsigned left[2][C__N], errors = 0;
	uint64_t seed0 = seed;
	char why[512] = "";
	int rc = 0;

	for (int k = 0; k < C__N; k++) {
		left[0][k] = warmup;
		left[1][k] = n_ops;
	}
	for (;;) {
		unsigned total = 0, r;
		int phase = 1, k = -1;
		uint64_t ns;

		for (int j = 0; j < C__N && k < 0; j++)
			if (left[0][j] > 0) {
				k = j;
				phase = 0;
			}
		if (k < 0) {
			for (int j = 0; j < C__N; j++)
				total += left[1][j];
			if (total == 0)
				break;
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			r = (unsigned)(seed % total);
			for (int j = 0; j < C__N; j++) {
				if (r < left[1][j]) {
					k = j;
					break;
				}
				r -= left[1][j];
			}
		}
		if (client_op(path, host, (enum ckind)k, &ns, why, sizeof why) != 0) {
			s[k].errors++;
			if (++errors > MAX_ERRORS) {
				fprintf(stderr,
				        "hvpeer-bench: too many failed requests on %s "
				        "(last: %s)\n",
				        path, why);
				rc = 1;
				break;
			}
			usleep(RETRY_MS * 1000);
			continue;
		}
		left[phase][k]--;
		if (phase == 1) {
			s[k].busy_ns += ns;
			if (record(&s[k], ns) != 0) {
				rc = 1;
				break;
			}
		}
	}
	if (rc == 0) {
		printf("hvpeer-bench -c %s: %u warm-up each, then %u of each in a random "
		       "interleave (seed %llu), one request per connection, one at a "
		       "time:\n",
		       path, warmup, n_ops, (unsigned long long)seed0);
		for (int k = 0; k < C__N; k++) {
			qsort(s[k].ns, s[k].n, sizeof *s[k].ns, cmp_u64);
			printf(
			    "  %s\n      n=%-5u p50 %6.3f ms  p99 %6.3f ms  mean %6.3f "
			    "ms  max %7.3f ms  (%u failed, retried)\n",
			    label[k], s[k].n, pct_ms(&s[k], 50), pct_ms(&s[k], 99),
			    mean_ms(&s[k]), pct_ms(&s[k], 100), s[k].errors);
		}
		printf("  figures: ping_p50_ms=%.3f ping_p99_ms=%.3f grant_p50_ms=%.3f "
		       "grant_p99_ms=%.3f\n",
		       pct_ms(&s[C_PING], 50), pct_ms(&s[C_PING], 99),
		       pct_ms(&s[C_GRANT], 50), pct_ms(&s[C_GRANT], 99));
	}
	for (int k = 0; k < C__N; k++)
		free(s[k].ns);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hvpeer-bench [-n N] [-w WARMUP] [-s SEED] [-t CERTDIR] [-v]\n"
	           "       hvpeer-bench -c SOCKET -H HOST [-n N] [-w WARMUP] [-s SEED]\n"
	           "  -n N        timed operations per series (default 2000)\n"
	           "  -t CERTDIR  mutual TLS between the nodes: CERTDIR/benchI.crt and\n"
	           "              .key (I = 1..3, made by 'hvpeer ca issue') and\n"
	           "              CERTDIR/ca/ca.crt\n"
	           "  -w WARMUP   untimed operations per series first (default 100)\n"
	           "  -s SEED     seed of the interleave (default 1)\n"
	           "  -v          node log at info level (default: errors only)\n"
	           "  -c SOCKET   no in-process cluster: time 'ping' and lease grants\n"
	           "              (for -H HOST, a member) on a running hvpeerd's\n"
	           "              control socket\n");
}

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof *b);
	const char *tmp = getenv("TMPDIR");
	int ports[N_NODES];
	const char *client_sock = NULL, *client_host = NULL;
	int c, rc = 0;

	if (b == NULL)
		return 1;
	b->n_ops = 2000;
	b->warmup = 100;
	b->seed = 1;
	b->cur = -1;
	hv_log_level = HV_LOG_ERROR;
	while ((c = getopt(argc, argv, "n:w:s:t:c:H:vh")) != -1) {
		switch (c) {
		case 't':
			b->tls_dir = optarg;
			break;
		case 'c':
			client_sock = optarg;
			break;
		case 'H':
			client_host = optarg;
			break;
		case 'n':
			b->n_ops = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			b->warmup = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			b->seed = strtoull(optarg, NULL, 10);
			break;
		case 'v':
			hv_log_level = HV_LOG_INFO;
			break;
		case 'h':
			usage(stdout);
			free(b);
			return 0;
		default:
			usage(stderr);
			free(b);
			return 2;
		}
	}
	if (optind != argc || b->n_ops < 1 || b->n_ops > 1000000 || b->warmup > 100000 ||
	    b->seed == 0) {
		usage(stderr);
		free(b);
		return 2;
	}
	if ((client_sock == NULL) != (client_host == NULL)) {
		usage(stderr);
		free(b);
		return 2;
	}
	if (client_sock != NULL) {
		signal(SIGPIPE, SIG_IGN);
		rc = client_main(client_sock, client_host, b->n_ops, b->warmup, b->seed);
		free(b);
		return rc;
	}
	b->seed_used = b->seed;
	for (int k = 0; k < K__N; k++) {
		b->left[0][k] = b->warmup;
		b->left[1][k] = b->n_ops;
	}
	hv_log_set_prefix("hvpeer-bench");
	signal(SIGPIPE, SIG_IGN);

	/* Control socket paths must fit in sun_path (108 bytes). */
	if (tmp == NULL || tmp[0] != '/' || strlen(tmp) > 60)
		tmp = "/tmp";
	snprintf(b->dir, sizeof b->dir, "%s/hvpeer-bench.XXXXXX", tmp);
	if (mkdtemp(b->dir) == NULL) {
		fprintf(stderr, "hvpeer-bench: mkdtemp %s: %s\n", b->dir,
		        strerror(errno));
		free(b);
		return 1;
	}
	if (free_ports(ports, N_NODES) != 0) {
		fprintf(stderr, "hvpeer-bench: no free port on 127.0.0.1: %s\n",
		        strerror(errno));
		rm_tree(b->dir);
		free(b);
		return 1;
	}
	if (uv_loop_init(&b->loop) != 0) {
		rm_tree(b->dir);
		free(b);
		return 1;
	}
	uv_timer_init(&b->loop, &b->poll);
	uv_timer_init(&b->loop, &b->retry);
	uv_timer_init(&b->loop, &b->deadline);
	b->poll.data = b->retry.data = b->deadline.data = b;
	b->t_start = uv_hrtime();

	for (int i = 0; i < N_NODES; i++) {
		struct hv_config cfg;
		char err[256];

		hv_config_defaults(&cfg);
		snprintf(cfg.name, sizeof cfg.name, "bench%d", i + 1);
		snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/n%d", b->dir, i + 1);
		snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:%d", ports[i]);
		snprintf(cfg.socket, sizeof cfg.socket, "%s/n%d.sock", b->dir, i + 1);
		snprintf(cfg.host_version, sizeof cfg.host_version, "bench");
		cfg.log_level = hv_log_level;
		if (b->tls_dir != NULL) {
			snprintf(cfg.tls_cert, sizeof cfg.tls_cert, "%s/bench%d.crt",
			         b->tls_dir, i + 1);
			snprintf(cfg.tls_key, sizeof cfg.tls_key, "%s/bench%d.key",
			         b->tls_dir, i + 1);
			snprintf(cfg.tls_ca, sizeof cfg.tls_ca, "%s/ca/ca.crt",
			         b->tls_dir);
		}
		if (i == 0) {
			cfg.bootstrap = true;
		} else {
			for (int j = 0; j < i; j++)
				snprintf(cfg.join[cfg.n_join++], sizeof cfg.join[0],
				         "127.0.0.1:%d", ports[j]);
		}
		if (hv_config_check(&cfg, err, sizeof err) != 0) {
			fprintf(stderr, "hvpeer-bench: config: %s\n", err);
			rc = 1;
			break;
		}
		b->nodes[i] = calloc(1, sizeof *b->nodes[i]);
		if (b->nodes[i] == NULL) {
			rc = 1;
			break;
		}
		b->started[i] = true; /* even a failed start needs hv_node_stop */
		if (hv_node_start(b->nodes[i], &b->loop, &cfg, NULL) != 0) {
			fprintf(stderr, "hvpeer-bench: node %d: %s\n", i + 1,
			        b->nodes[i]->errmsg);
			rc = 1;
			break;
		}
		snap_wrap(b->nodes[i]);
	}
	if (rc != 0) {
		finish(b, 1);
	} else {
		uv_timer_start(&b->poll, poll_cb, POLL_MS, POLL_MS);
		uv_timer_start(&b->deadline, deadline_cb, RUN_TIMEOUT_MS, 0);
	}
	uv_run(&b->loop, UV_RUN_DEFAULT);

	{
		unsigned want = 0;
		for (int i = 0; i < N_NODES; i++)
			want += b->started[i];
		if (n_stopped != want) {
			fprintf(stderr,
			        "hvpeer-bench: %u of %u node stop callbacks fired\n",
			        n_stopped, want);
			rc = 1;
		}
	}
	if (uv_loop_close(&b->loop) != 0) {
		fprintf(stderr, "hvpeer-bench: uv_loop_close: handles still open after "
		                "stopping the nodes:\n");
		uv_print_all_handles(&b->loop, stderr);
		rc = 1;
	}
	if (b->failed)
		rc = 1;
	for (int i = 0; i < N_NODES; i++)
		free(b->nodes[i]);
	for (int k = 0; k < K__N; k++) {
		free(b->s[k].ns);
		free(b->clean[k].ns);
	}
	rm_tree(b->dir);
	free(b);
	return rc;
}
