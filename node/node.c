/*
 * Node lifecycle. Start: read or create the node identity in the data dir,
 * initialise libraft on our transport, bootstrap (first node, empty dir
 * only) or prepare to join, then open the control socket and the tick timer.
 * Stop: close the control socket, the RPC connections and calls, the timer,
 * then libraft, then the transport; stop_cb fires once all are closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "../migrate/hypervisor.h"
#include "patch.h"
#include "policy.h"
#include "maint.h"
#include "node.h"
#include "transport.h"

#define TICK_MS 200
#define HINT_MAX_MS(n) (3 * (uint64_t)(n)->cfg.election_timeout_ms)
#define HINT_ALIVE_MS(n) (4 * (uint64_t)(n)->cfg.heartbeat_timeout_ms)
#define ID_FILE "node.id"

uint64_t hv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t hv_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t hv_node_lead_now_ms(struct hv_node *n)
{
	uint64_t wall = hv_now_ms(), mono = hv_mono_ms(), cap;
	uint64_t term = raft_current_term(&n->raft);

	if (n->lead_term != term) {
		n->lead_term = term;
		n->lead_wall0 = wall;
		n->lead_mono0 = mono;
		n->lead_jumped = false;
	}
	cap = n->lead_wall0 + (mono - n->lead_mono0);
	if (wall > cap + 1000 && !n->lead_jumped)
		hv_warn("the wall clock jumped %llu s ahead of the monotonic clock since "
		        "term %llu began: deadlines judged here (soak, retry, window, "
		        "watchdog) keep the monotonic count until the next term",
		        (unsigned long long)((wall - cap) / 1000),
		        (unsigned long long)term);
	n->lead_jumped = wall > cap + 1000;
	return wall < cap ? wall : cap;
}

/* ---- identity ------------------------------------------------------------ */

/* data_dir/node.id holds "id name joined". Returns 1 when read, 0 when
 * absent, -1 on error. */
static int id_load(struct hv_node *n)
{
	char path[HV_PATH_MAX + 16], name[HV_NAME_MAX + 1];
	unsigned long long id;
	int joined = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", n->cfg.data_dir, ID_FILE);
	f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(n->errmsg, sizeof n->errmsg, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fscanf(f, "%llu %63s %d", &id, name, &joined) != 3 || id == 0) {
		fclose(f);
		snprintf(n->errmsg, sizeof n->errmsg,
		         "%s: unreadable; the data dir is damaged (move it away to "
		         "rejoin as a new member)",
		         path);
		return -1;
	}
	fclose(f);
	if (strcmp(name, n->cfg.name) != 0) {
		snprintf(n->errmsg, sizeof n->errmsg,
		         "data dir %s belongs to node '%s', not '%s': use --name %s or "
		         "another --data-dir",
		         n->cfg.data_dir, name, n->cfg.name, name);
		return -1;
	}
	n->id = id;
	n->joined = joined != 0;
	return 1;
}

static int id_save(struct hv_node *n)
{
	char path[HV_PATH_MAX + 16], tmp[HV_PATH_MAX + 24];
	FILE *f;
	int ok;

	snprintf(path, sizeof path, "%s/%s", n->cfg.data_dir, ID_FILE);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		goto err;
	ok = fprintf(f, "%llu %s %d\n", (unsigned long long)n->id, n->cfg.name,
	             n->joined ? 1 : 0) > 0;
	ok = (fflush(f) == 0) && ok && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok || rename(tmp, path) != 0)
		goto err;
	return 0;
err:
	snprintf(n->errmsg, sizeof n->errmsg, "%s: %s", path, strerror(errno));
	return -1;
}

void hv_node_mark_joined(struct hv_node *n);
void hv_node_mark_joined(struct hv_node *n)
{
	n->joined = true;
	if (id_save(n) != 0)
		hv_error("%s", n->errmsg);
}

/* One hvpeerd per data dir: an flock() held for the daemon's life. */
static int dir_lock(struct hv_node *n)
{
	char path[HV_PATH_MAX + 16], pid[32] = "";
	ssize_t got;

	snprintf(path, sizeof path, "%s/lock", n->cfg.data_dir);
	n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (n->lock_fd < 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		got = pread(n->lock_fd, pid, sizeof pid - 1, 0);
		pid[got > 0 ? got : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(n->errmsg, sizeof n->errmsg,
		         "data dir %s is in use by another hvpeerd (pid %s)",
		         n->cfg.data_dir, pid[0] ? pid : "?");
		close(n->lock_fd);
		n->lock_fd = -1;
		return -1;
	}
	snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	if (ftruncate(n->lock_fd, 0) != 0 ||
	    pwrite(n->lock_fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid))
		hv_warn("%s: cannot record the pid: %s", path, strerror(errno));
	return 0;
}

/* True when some process accepts connections on the socket path. */
static bool socket_in_use(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rv;

	if (strlen(path) >= sizeof sa.sun_path)
		return false;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	rv = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
	return rv == 0;
}

static raft_id new_id(void)
{
	uint64_t id = 0;

	while (id == 0 || id > (UINT64_MAX >> 1))
		if (getrandom(&id, sizeof id, 0) != sizeof id)
			id = (uint64_t)hv_now_ms() ^ ((uint64_t)getpid() << 32);
	return id;
}

int hv_mkdir_p(const char *dir, mode_t mode)
{
	char buf[HV_PATH_MAX * 2];

	if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* ---- proposals --------------------------------------------------------- */

struct proposal {
	struct raft_apply req;
	struct hv_node *n;
	hv_propose_cb cb;
	void *data;
};

static int raft_to_hv(int rv)
{
	switch (rv) {
	case 0:
		return HV_OK;
	case RAFT_NOTLEADER:
		return HV_NOTLEADER;
	case RAFT_LEADERSHIPLOST:
	case RAFT_NOCONNECTION:
		return HV_NOQUORUM;
	case RAFT_NOMEM:
		return HV_NOMEM;
	case RAFT_CANCELED:
	case RAFT_SHUTDOWN:
		return HV_SHUTDOWN;
	case RAFT_TOOBIG:
		return HV_TOOBIG;
	}
	return HV_RAFT;
}

static void proposal_done(struct raft_apply *req, int status, void *result)
{
	struct proposal *p = req->data;
	int rc = status != 0 ? raft_to_hv(status) : hv_fsm_result_code(result);
	uint64_t token = status != 0 ? 0 : hv_fsm_result_token(result);

	p->cb(p->n, p->data, rc, req->index, token);
	free(p);
}

int hv_node_propose(struct hv_node *n, struct hv_cmd *cmd, hv_propose_cb cb, void *data)
{
	struct proposal *p;
	struct raft_buffer buf;
	size_t len;
	int rv;

	if (n->stopping)
		return HV_SHUTDOWN;
	cmd->time_ms = hv_now_ms();
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return HV_NOMEM;
	rv = hv_cmd_encode(cmd, raft_malloc, &buf.base, &len);
	if (rv != HV_OK) {
		free(p);
		return rv;
	}
	buf.len = len;
	p->n = n;
	p->cb = cb;
	p->data = data;
	p->req.data = p;
	rv = raft_apply(&n->raft, &p->req, &buf, 1, proposal_done);
	if (rv != 0) {
		/* libraft 0.22 releases the buffer itself when raft_apply
		 * fails (freeing it here was a double free). */
		hv_debug("raft_apply: %s", raft_errmsg(&n->raft));
		free(p);
		return raft_to_hv(rv);
	}
	return HV_OK;
}

struct barrier {
	struct raft_barrier req;
	struct hv_node *n;
	hv_barrier_cb cb;
	void *data;
};

static void barrier_done(struct raft_barrier *req, int status)
{
	struct barrier *b = req->data;

	b->cb(b->n, b->data, raft_to_hv(status));
	free(b);
}

int hv_node_barrier(struct hv_node *n, hv_barrier_cb cb, void *data)
{
	struct barrier *b;
	int rv;

	if (n->stopping)
		return HV_SHUTDOWN;
	b = calloc(1, sizeof *b);
	if (b == NULL)
		return HV_NOMEM;
	b->n = n;
	b->cb = cb;
	b->data = data;
	b->req.data = b;
	rv = raft_barrier(&n->raft, &b->req, barrier_done);
	if (rv != 0) {
		free(b);
		return raft_to_hv(rv);
	}
	return HV_OK;
}

const char *hv_node_leader_address(struct hv_node *n, raft_id *id)
{
	raft_id lid = 0;
	const char *addr = NULL;

	raft_leader(&n->raft, &lid, &addr);
	if (id != NULL)
		*id = lid;
	return lid != 0 ? addr : NULL;
}

bool hv_node_is_leader(struct hv_node *n)
{
	return raft_state(&n->raft) == RAFT_LEADER;
}

static void transfer_done(struct raft_transfer *req)
{
	struct hv_node *n = req->data;
	raft_id id = 0;
	const char *addr = NULL;

	n->transfer_busy = false;
	raft_leader(&n->raft, &id, &addr);
	if (id != 0 && id != n->id)
		hv_info("leadership handed to %s", addr != NULL ? addr : "?");
	else
		hv_warn("leadership transfer did not complete");
}

/* The voter to hand leadership to: one that holds no lease (with more than
 * one holder, another may reboot next) and reported most lately; 0 lets
 * libraft pick the most up-to-date voter. */
static raft_id transfer_target(struct hv_node *n)
{
	const struct raft_configuration *conf = &n->raft.configuration;
	raft_id best = 0;
	uint64_t best_ms = 0;

	for (unsigned i = 0; i < conf->n; i++) {
		const struct raft_server *sv = &conf->servers[i];
		const struct hv_member *m = hv_state_member_by_id(&n->state, sv->id);
		if (sv->role != RAFT_VOTER || sv->id == n->id || m == NULL ||
		    m->removed || hv_state_holder(&n->state, m->name) != NULL)
			continue;
		if (best == 0 || m->report_ms > best_ms) {
			best = sv->id;
			best_ms = m->report_ms;
		}
	}
	return best;
}

int hv_node_transfer_leadership(struct hv_node *n)
{
	int rv;

	if (!hv_node_is_leader(n) || n->transfer_busy || n->stopping)
		return HV_OK;
	memset(&n->transfer, 0, sizeof n->transfer);
	n->transfer.data = n;
	rv = raft_transfer(&n->raft, &n->transfer, transfer_target(n), transfer_done);
	if (rv != 0) {
		hv_debug("leadership transfer: %s", raft_strerror(rv));
		return rv == RAFT_NOTFOUND ? HV_NOMEMBER : HV_IO;
	}
	n->transfer_busy = true;
	hv_info("handing leadership to another voter");
	return HV_OK;
}

uint64_t hv_node_stale_ms(const struct hv_node *n)
{
	return 3ull * n->cfg.report_interval_ms + 2000;
}

uint64_t hv_node_precheck_stale_ms(const struct hv_node *n)
{
	return 3ull * n->cfg.report_interval_ms + 5000;
}

int hv_node_raft_role(struct hv_node *n, raft_id id)
{
	for (unsigned i = 0; i < n->raft.configuration.n; i++)
		if (n->raft.configuration.servers[i].id == id)
			return n->raft.configuration.servers[i].role;
	return -1;
}

/* ---- periodic work ----------------------------------------------------- */

static void report_done(struct hv_node *n, void *data, int rc, uint64_t index,
                        uint64_t token)
{
	(void)data;
	(void)index;
	(void)token;
	if (rc == HV_OK)
		n->last_report_ms = hv_now_ms();
	else
		hv_debug("report not committed: %s", hv_strerror(rc));
}

/* Each node reports its phase and version into the replicated state,
 * through the leader like every other command it commits. Returns false
 * when there is nobody to report to yet. */
static bool report(struct hv_node *n)
{
	struct hv_member *m = hv_state_member(&n->state, n->cfg.name);
	struct hv_cmd cmd = {.type = HV_CMD_REPORT};

	if (m == NULL || m->id != n->id)
		return false; /* not (yet) a member under this id */
	snprintf(cmd.name, sizeof cmd.name, "%s", n->cfg.name);
	snprintf(cmd.phase, sizeof cmd.phase, "idle");
	snprintf(cmd.version, sizeof cmd.version, "%s", n->cfg.host_version);
	snprintf(cmd.bmc, sizeof cmd.bmc, "%s", n->cfg.bmc);
	if (strcmp(n->cfg.bmc, "none") != 0)
		snprintf(cmd.bmc_address, sizeof cmd.bmc_address, "%s",
		         n->cfg.bmc_address);
	return hv_node_commit(n, &cmd, report_done, NULL) == HV_OK;
}

/* ---- inventory: read libvirt on the thread pool, commit the result ------ */

struct inv_work {
	uv_work_t req;
	struct hv_node *n;
	uint64_t seen_index;
	struct hv_inventory inv;
	int rc;
	char err[1024];
};

static void inv_read(uv_work_t *req)
{
	struct inv_work *w = req->data;
	const struct hv_config *cfg = &w->n->cfg;

	w->rc =
	    w->n->hyp->inventory(cfg->libvirt_uri, cfg->guest_memory_mib, cfg->vcpu_ratio,
	                         cfg->shared_storage, &w->inv, w->err, sizeof w->err);
}

static void inv_committed(struct hv_node *n, void *data, int rc, uint64_t index,
                          uint64_t token)
{
	(void)data;
	(void)index;
	(void)token;
	n->inventory_busy = false;
	if (rc != HV_OK && rc != HV_SHUTDOWN)
		hv_debug("inventory not committed: %s",
		         rc == HV_TIMEOUT ? "stale (a guest moved meanwhile)"
		                          : hv_strerror(rc));
}

static void inv_done(uv_work_t *req, int status)
{
	struct inv_work *w = req->data;
	struct hv_node *n = w->n;
	struct hv_cmd *cmd;

	if (status != 0 || n->stopping || w->rc != HV_OK) {
		if (w->rc != HV_OK && !n->stopping)
			hv_warn("inventory: %s", w->err);
		n->inventory_busy = false;
		free(w); /* the loop runs until this work is done, even when stopping */
		return;
	}
	cmd = calloc(1, sizeof *cmd);
	if (cmd != NULL) {
		cmd->type = HV_CMD_INVENTORY;
		snprintf(cmd->name, sizeof cmd->name, "%s", n->cfg.name);
		cmd->mem_cap_mib = w->inv.mem_cap_mib;
		cmd->vcpus_cap = w->inv.vcpus_cap;
		cmd->seen_index = w->seen_index;
		cmd->n_guests = w->inv.n_guests;
		memcpy(cmd->guests, w->inv.guests,
		       w->inv.n_guests * sizeof w->inv.guests[0]);
		if (hv_node_commit(n, cmd, inv_committed, NULL) != HV_OK)
			n->inventory_busy = false;
		free(cmd);
	} else {
		n->inventory_busy = false;
	}
	free(w);
}

static void inventory_refresh(struct hv_node *n)
{
	struct inv_work *w;
	struct hv_member *m = hv_state_member(&n->state, n->cfg.name);

	if (n->hyp == NULL || n->inventory_busy || m == NULL || m->id != n->id)
		return;
	w = calloc(1, sizeof *w);
	if (w == NULL)
		return;
	w->n = n;
	w->req.data = w;
	w->seen_index = raft_last_applied(&n->raft);
	n->inventory_busy = true;
	if (uv_queue_work(n->loop, &w->req, inv_read, inv_done) != 0) {
		n->inventory_busy = false;
		free(w);
	}
}

/* A full data dir makes Raft fail to write its log and snapshots, which
 * libraft does not tell: say it in the log, once each way. */
static void check_data_space(struct hv_node *n, uint64_t now)
{
	const uint64_t low = 2ull << 20, ok = 4ull << 20; /* two Raft segments */
	struct statvfs vs;
	uint64_t avail;

	if (now < n->space_due_ms)
		return;
	n->space_due_ms = now + 2000;
	if (statvfs(n->cfg.data_dir, &vs) != 0)
		return;
	avail = (uint64_t)vs.f_bavail * vs.f_frsize;
	if (!n->data_full && avail < low) {
		n->data_full = true;
		hv_error("data dir %s is full (%llu KiB free): the Raft log and its "
		         "snapshots cannot be written (No space left on device); "
		         "free space there",
		         n->cfg.data_dir, (unsigned long long)(avail >> 10));
	} else if (n->data_full && avail >= ok) {
		n->data_full = false;
		hv_info("data dir %s has room again (%llu MiB free)", n->cfg.data_dir,
		        (unsigned long long)(avail >> 20));
	}
}

static void on_tick(uv_timer_t *t)
{
	struct hv_node *n = t->data;
	/* local deadlines on the monotonic clock: a wall clock stepped back
	 * must not stop the reports */
	uint64_t now = hv_mono_ms();

	if (n->stopping)
		return;
	hv_node_commit_waits(n, false); /* the late ones */
	if (hv_node_is_leader(n)) {
		hv_membership_reconcile(n);
		hv_watchdog_tick(n);
		hv_policy_tick(n);
	}
	hv_patch_notify(n);
	hv_patch_kick(n);
	check_data_space(n, now);
	if (now >= n->report_due_ms) {
		/* Until a first report lands, try on every tick. */
		if (report(n) && n->last_report_ms != 0)
			n->report_due_ms = now + n->cfg.report_interval_ms;
		else
			n->report_due_ms = now + TICK_MS;
		inventory_refresh(n);
	}
}

/* ---- control socket ---------------------------------------------------- */

static void ctl_client_free(void *h)
{
	free(h);
}

static void ctl_accept(uv_stream_t *server, int status, bool readonly)
{
	struct hv_node *n = server->data;
	uv_pipe_t *client;

	if (status != 0 || n->stopping)
		return;
	client = malloc(sizeof *client);
	if (client == NULL)
		return;
	uv_pipe_init(n->loop, client, 0);
	if (uv_accept(server, (uv_stream_t *)client) != 0) {
		uv_close((uv_handle_t *)client, (uv_close_cb)free);
		return;
	}
	hv_rpc_serve(&n->rpc, (uv_stream_t *)client, true, readonly, ctl_client_free);
}

static void on_ctl_connection(uv_stream_t *server, int status)
{
	ctl_accept(server, status, false);
}

static void on_ctl_ro_connection(uv_stream_t *server, int status)
{
	ctl_accept(server, status, true);
}

/* Listen on a UNIX socket at path, mode 0660, owned by group (if any).
 * *opened is set once the handle needs closing. 0, or -1 with errmsg. */
static int ctl_listen(struct hv_node *n, uv_pipe_t *p, bool *opened, const char *path,
                      const char *group, uv_connection_cb cb)
{
	char dir[HV_PATH_MAX];
	char *slash;
	int rv;
	gid_t gid = (gid_t)-1;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (access(dir, F_OK) != 0) {
			/* Only a directory we create gets our mode. */
			if (hv_mkdir_p(dir, 0700) != 0 || chmod(dir, 0755) != 0) {
				snprintf(n->errmsg, sizeof n->errmsg, "socket dir %s: %s",
				         dir, strerror(errno));
				return -1;
			}
		}
	}
	if (group[0] != '\0') {
		struct group *g = getgrnam(group);
		if (g == NULL) {
			snprintf(n->errmsg, sizeof n->errmsg,
			         "group '%s' (for %s): no such group", group, path);
			return -1;
		}
		gid = g->gr_gid;
	}
	unlink(path); /* left over from a daemon that died */
	uv_pipe_init(n->loop, p, 0);
	p->data = n;
	*opened = true;
	/* The mode and group are set between bind and listen: until listen a
	 * connect is refused whatever the file's mode, so no one connects
	 * through a wider mode than 0660 or the wrong group, and the process's
	 * umask (shared with the thread pool, its children and other nodes in
	 * this process) is never touched. */
	rv = uv_pipe_bind(p, path);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "socket %s: %s", path,
		         uv_strerror(rv));
		return -1;
	}
	if (chmod(path, 0660) != 0 ||
	    (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0)) {
		snprintf(n->errmsg, sizeof n->errmsg, "socket %s: %s", path,
		         strerror(errno));
		return -1;
	}
	rv = uv_listen((uv_stream_t *)p, 64, cb);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "socket %s: %s", path,
		         uv_strerror(rv));
		return -1;
	}
	return 0;
}

/* The control socket and, if configured, the read-only one. */
static int ctl_open(struct hv_node *n)
{
	if (ctl_listen(n, &n->ctl, &n->ctl_open, n->cfg.socket, n->cfg.socket_group,
	               on_ctl_connection) != 0)
		return -1;
	if (n->cfg.readonly_group[0] != '\0' && n->cfg.readonly_socket[0] == '\0' &&
	    hv_readonly_socket_path(n->cfg.socket, n->cfg.readonly_socket,
	                            sizeof n->cfg.readonly_socket) != 0) {
		snprintf(n->errmsg, sizeof n->errmsg,
		         "readonly-socket: the path is too long");
		return -1;
	}
	if (n->cfg.readonly_socket[0] == '\0')
		return 0;
	return ctl_listen(n, &n->ctl_ro, &n->ctl_ro_open, n->cfg.readonly_socket,
	                  n->cfg.readonly_group, on_ctl_ro_connection);
}

/* ---- start / stop ------------------------------------------------------ */

static void on_rpc_stream(void *data, uv_stream_t *stream,
                          const struct hv_transport_peer *peer)
{
	struct hv_node *n = data;

	hv_rpc_serve_peer(&n->rpc, stream, peer->addr, peer->name, peer->id, peer->enroll,
	                  raft_free);
}

/* ---- a leader gone ----------------------------------------------------- */

/*
 * libraft notices a dead leader only when its election timer runs out, and
 * a follower that still knows a leader rejects pre-votes: after a kill the
 * first candidate often loses and the election takes two randomized
 * timeouts. When the connection from the leader ends, its process is likely
 * gone: for a while the election timeout is the heartbeat interval, so every
 * follower that saw the same forgets the leader within one or two heartbeats
 * and the first candidate wins. Pre-vote keeps a live leader in place when
 * the hint is wrong (a connection that merely dropped). The configured
 * timeout comes back as soon as a leader is known (before a new leader's
 * own check-quorum uses it), once the old leader is seen still leading, or
 * after HINT_MAX_MS.
 */
static void hint_end(struct hv_node *n)
{
	n->hint_on = false;
	uv_check_stop(&n->hint);
	raft_set_election_timeout(&n->raft, n->cfg.election_timeout_ms);
}

static void hint_check(uv_check_t *h)
{
	struct hv_node *n = h->data;
	uint64_t since = hv_mono_ms() - n->hint_since_ms;
	int state = raft_state(&n->raft);
	const char *address;
	raft_id lid = 0;

	raft_leader(&n->raft, &lid, &address);
	if (n->stopping || state == RAFT_LEADER || (lid != 0 && lid != n->hint_leader) ||
	    (lid == n->hint_leader && since >= HINT_ALIVE_MS(n)) ||
	    since >= HINT_MAX_MS(n)) {
		hv_debug("election timeout back to %u ms (leader %llu, after %llu ms)",
		         n->cfg.election_timeout_ms, (unsigned long long)lid,
		         (unsigned long long)since);
		hint_end(n);
	}
}

static void on_peer_gone(void *data, raft_id id)
{
	struct hv_node *n = data;
	const char *address;
	raft_id lid = 0;

	if (n->stopping || !n->raft_started || n->hint_on ||
	    raft_state(&n->raft) != RAFT_FOLLOWER)
		return;
	raft_leader(&n->raft, &lid, &address);
	if (lid != id)
		return;
	hv_debug("the connection with the leader (id %llu) ended: election timeout "
	         "%u ms until a leader is known",
	         (unsigned long long)id, n->cfg.heartbeat_timeout_ms);
	n->hint_on = true;
	n->hint_leader = id;
	n->hint_since_ms = hv_mono_ms();
	raft_set_election_timeout(&n->raft, n->cfg.heartbeat_timeout_ms);
	uv_check_start(&n->hint, hint_check);
}

/* The TLS certificate's expiry as text, in a static buffer. */
static const char *tls_expiry(const struct hv_node *n)
{
	static char buf[32];
	struct tm tm;

	if (n->tls.not_after == 0 || gmtime_r(&n->tls.not_after, &tm) == NULL ||
	    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		return "?";
	return buf;
}

void hv_node_reload(struct hv_node *n)
{
	char why[512];
	int closed;

	if (n->tls.ctx == NULL) {
		hv_info("reload: no TLS configured, nothing to read again");
		return;
	}
	if (hv_tls_reload(&n->tls, why, sizeof why) != 0) {
		hv_error("reload: %s; the certificates in use stay", why);
		return;
	}
	hv_info("reload: TLS certificate, key, CA%s read again (valid until %s)",
	        n->tls.crl[0] != '\0' ? " and CRL" : "", tls_expiry(n));
	closed = hv_transport_recheck(&n->transport);
	if (closed > 0)
		hv_warn("reload: closed %d connection%s whose peer's certificate no "
		        "longer passes",
		        closed, closed == 1 ? "" : "s");
}

static void on_kick_cb(uv_timer_t *t)
{
	hv_node_commit_waits(t->data, false);
	hv_patch_notify(t->data);
	hv_patch_kick(t->data);
}

/* After every applied command: let the patch driver look, once the batch
 * of applies is over (a replay after a restart goes through old phases). */
static void on_applied(struct hv_fsm *f, uint64_t index, const struct hv_cmd *cmd, int rc)
{
	struct hv_node *n = f->data;

	/* The counters are of what this process saw committed: not of the
	 * log's tail that a restart applies again. */
	if (index > n->metrics_from)
		hv_metrics_observe(&n->metrics, cmd, rc);
	if (((cmd != NULL && cmd->type >= HV_CMD_PATCH_SUBMIT) ||
	     n->commit_waits != NULL) &&
	    !n->stopping && n->kick.loop != NULL)
		uv_timer_start(&n->kick, on_kick_cb, 0, 0);
}

static int raft_setup(struct hv_node *n)
{
	char dir[HV_PATH_MAX + 8];
	int rv;

	snprintf(dir, sizeof dir, "%s/raft", n->cfg.data_dir);
	if (hv_mkdir_p(dir, 0700) != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "%s: %s", dir, strerror(errno));
		return -1;
	}
	{
		struct hv_transport_config tc = {
		    .tls = n->tls.ctx != NULL ? &n->tls : NULL,
		    .rpc_cb = on_rpc_stream,
		    .gone_cb = on_peer_gone,
		    .data = n,
		    .allow = n->cfg.allow_peers,
		};
		char why[256];
		if (hv_transport_init(&n->transport, n->loop, &tc, why, sizeof why) !=
		    0) {
			snprintf(n->errmsg, sizeof n->errmsg, "transport: %s", why);
			return -1;
		}
		hv_rpc_set_transport(&n->rpc, &n->transport);
	}
	rv = raft_uv_init(&n->io, n->loop, dir, &n->transport);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft storage %s: %s", dir,
		         n->io.errmsg);
		goto err_transport;
	}
	/* Small segments: restart after a crash reads less (RAFT.md). */
	raft_uv_set_segment_size(&n->io, 1024 * 1024);
	raft_uv_set_connect_retry_delay(&n->io, 100);
	hv_fsm_init(&n->fsm, &n->state);
	n->fsm.data = n;
	n->fsm.applied = on_applied;
	rv = raft_init(&n->raft, &n->io, &n->fsm.fsm, n->id, n->cfg.listen);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft init: %s",
		         raft_errmsg(&n->raft));
		goto err_io;
	}
	n->fsm.raft = &n->raft;
	n->raft.data = n;
	raft_set_election_timeout(&n->raft, n->cfg.election_timeout_ms);
	raft_set_heartbeat_timeout(&n->raft, n->cfg.heartbeat_timeout_ms);
	raft_set_pre_vote(&n->raft, true);
	/* libraft refuses new entries when a majority of voters has less
	 * than this much (KiB) prepared for the log; its default is one 8 MiB
	 * default segment's worth, ours is one of our 1 MiB segments. */
	raft_set_capacity_threshold(&n->raft, 1024);
	raft_set_snapshot_threshold(&n->raft, n->cfg.snapshot_threshold);
	raft_set_snapshot_trailing(&n->raft, n->cfg.snapshot_trailing);
	return 0;

err_io:
	raft_uv_close(&n->io);
err_transport:
	hv_transport_release(&n->transport);
	return -1;
}

static int raft_bootstrap_self(struct hv_node *n)
{
	struct raft_configuration conf;
	int rv;

	raft_configuration_init(&conf);
	rv = raft_configuration_add(&conf, n->id, n->cfg.listen, RAFT_VOTER);
	if (rv == 0)
		rv = raft_bootstrap(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
		snprintf(n->errmsg, sizeof n->errmsg, "bootstrap: %s",
		         raft_errmsg(&n->raft));
		return -1;
	}
	return 0;
}

/* TLS: read the files; the certificate must be this node's (its name, and
 * the Raft id of the data dir when it has one). */
static int tls_open(struct hv_node *n, bool have_id)
{
	char why[512];

	if (n->cfg.tls_cert[0] == '\0')
		return 0;
	if (hv_tls_init(&n->tls, n->cfg.tls_cert, n->cfg.tls_key, n->cfg.tls_ca,
	                n->cfg.tls_crl, why, sizeof why) != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "TLS: %s", why);
		hv_tls_close(&n->tls);
		return -1;
	}
	if (strcmp(n->tls.name, n->cfg.name) != 0 || (have_id && n->tls.id != n->id)) {
		snprintf(n->errmsg, sizeof n->errmsg,
		         "TLS: certificate %s is for node %s (id %llu), but this node is "
		         "%s (id %llu%s): issue one with 'hvpeer ca issue --name %s%s'",
		         n->cfg.tls_cert, n->tls.name, (unsigned long long)n->tls.id,
		         n->cfg.name, (unsigned long long)n->id,
		         have_id ? ", from its data dir" : ", not chosen yet",
		         n->cfg.name, have_id ? " --id ID" : "");
		hv_tls_close(&n->tls);
		return -1;
	}
	if (n->tls.not_after != 0 && n->tls.not_after < time(NULL))
		hv_error("TLS: certificate %s expired on %s: peers will refuse this node",
		         n->cfg.tls_cert, tls_expiry(n));
	else if (n->tls.not_after != 0 && n->tls.not_after < time(NULL) + 30 * 86400)
		hv_warn("TLS: certificate %s expires on %s: issue a new one and reload "
		        "(SIGHUP)",
		        n->cfg.tls_cert, tls_expiry(n));
	return 0;
}

int hv_node_start(struct hv_node *n, uv_loop_t *loop, const struct hv_config *cfg,
                  const struct hv_hypervisor *hyp)
{
	int have_id, rv;
	bool fresh;

	memset(n, 0, sizeof *n);
	n->lock_fd = -1;
	n->wd_power = -1;
	n->cfg = *cfg;
	n->hyp = hyp;
	n->loop = loop;
	hv_state_init(&n->state);
	hv_rpc_init(&n->rpc, loop, hv_ops_request, n);
	n->rpc.data = n;

	/* Refuse before touching anything. */
	if (socket_in_use(n->cfg.socket)) {
		snprintf(n->errmsg, sizeof n->errmsg,
		         "control socket %s is in use by another hvpeerd: give this one "
		         "its own --socket",
		         n->cfg.socket);
		return -1;
	}
	if (hv_mkdir_p(n->cfg.data_dir, 0700) != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "data dir %s: %s", n->cfg.data_dir,
		         strerror(errno));
		return -1;
	}
	if (dir_lock(n) != 0)
		return -1;
	have_id = id_load(n);
	if (have_id < 0)
		return -1;
	if (tls_open(n, have_id > 0) != 0)
		return -1;
	if (hv_patch_open(n) != 0)
		return -1;
	fresh = have_id == 0;
	if (fresh) {
		if (!n->cfg.bootstrap && n->cfg.n_join == 0) {
			snprintf(n->errmsg, sizeof n->errmsg,
			         "data dir %s is empty: start the first node with "
			         "--bootstrap and the others with --join ADDRESS:PORT",
			         n->cfg.data_dir);
			return -1;
		}
		/* With TLS, the node is who its certificate says. */
		n->id = n->tls.ctx != NULL ? n->tls.id : new_id();
		n->joined = n->cfg.bootstrap;
		if (id_save(n) != 0)
			return -1;
	}
	if (raft_setup(n) != 0)
		return -1;
	/* Bootstrap only a brand-new data dir: a node that has ever been part
	 * of a cluster never starts a new one. */
	if (fresh && n->cfg.bootstrap && raft_bootstrap_self(n) != 0)
		goto err_raft;
	rv = raft_start(&n->raft);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft start: %s",
		         raft_errmsg(&n->raft));
		goto err_raft;
	}
	n->raft_started = true;
	n->metrics_from = raft_last_index(&n->raft);
	if (ctl_open(n) != 0 || hv_metrics_start(n) != 0)
		goto err_started;
	uv_timer_init(loop, &n->tick);
	n->tick.data = n;
	uv_timer_init(loop, &n->kick);
	n->kick.data = n;
	uv_check_init(loop, &n->hint);
	n->hint.data = n;
	uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
	n->report_due_ms = hv_mono_ms() + 300;
	if (!n->joined)
		hv_node_join_start(n);
	hv_info("node %s (id %llu) on %s%s, data dir %s%s", n->cfg.name,
	        (unsigned long long)n->id, n->cfg.listen,
	        n->tls.ctx != NULL ? " (mutual TLS)" : "", n->cfg.data_dir,
	        fresh ? (n->cfg.bootstrap ? ", new cluster" : ", joining") : "");
	return 0;

err_started:
	/* Unwinding a started raft needs the loop: let stop do it. */
	return -1;
err_raft:
	/* raft_init succeeded: close it through the loop. */
	n->raft_started = true;
	return -1;
}

static void closed_one(struct hv_node *n)
{
	if (--n->closing > 0)
		return;
	hv_transport_release(&n->transport);
	hv_tls_close(&n->tls);
	if (n->lock_fd >= 0) {
		close(n->lock_fd);
		n->lock_fd = -1;
	}
	hv_patch_close(n);
	if (n->stop_cb != NULL)
		n->stop_cb(n);
}

static void tick_closed(uv_handle_t *h)
{
	closed_one(h->data);
}

static void ctl_closed(uv_handle_t *h)
{
	struct hv_node *n = h->data;

	unlink(n->cfg.socket);
	closed_one(n);
}

static void ctl_ro_closed(uv_handle_t *h)
{
	struct hv_node *n = h->data;

	unlink(n->cfg.readonly_socket);
	closed_one(n);
}

static void raft_closed(struct raft *r)
{
	struct hv_node *n = r->data;

	raft_uv_close(&n->io);
	closed_one(n);
}

static void rpc_closed(struct hv_rpc *rpc)
{
	struct hv_node *n = rpc->data;

	/* Raft goes after the RPC side: its pending applies still answer
	 * their (now closed) connections, which frees them. */
	if (n->raft_started) {
		raft_close(&n->raft, raft_closed);
	} else {
		raft_uv_close(&n->io);
		closed_one(n);
	}
}

void hv_node_join_cancel(struct hv_node *n);

void hv_node_stop(struct hv_node *n, hv_node_stop_cb cb)
{
	if (n->stopping)
		return;
	n->stopping = true;
	n->stop_cb = cb;
	n->closing = 1; /* raft (after rpc) */
	hv_node_commit_waits(n, true);
	hv_node_join_cancel(n);
	hv_maint_cancel(n);
	if (uv_is_active((uv_handle_t *)&n->tick) || n->tick.loop != NULL) {
		n->closing++;
		uv_close((uv_handle_t *)&n->tick, tick_closed);
	}
	if (n->kick.loop != NULL) {
		n->closing++;
		uv_close((uv_handle_t *)&n->kick, tick_closed);
	}
	if (n->hint.loop != NULL) {
		n->closing++;
		uv_close((uv_handle_t *)&n->hint, tick_closed);
	}
	if (n->ctl_open) {
		n->closing++;
		uv_close((uv_handle_t *)&n->ctl, ctl_closed);
	}
	n->closing++;
	hv_metrics_stop(n, closed_one);
	if (n->ctl_ro_open) {
		n->closing++;
		uv_close((uv_handle_t *)&n->ctl_ro, ctl_ro_closed);
	}
	hv_rpc_close(&n->rpc, rpc_closed);
}
