#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "codec.h"
#include "mp.h"

/* Fields a command carries; each type lists the ones it requires. */
enum {
	F_ID = 1 << 0,
	F_TOKEN = 1 << 1,
	F_ROLE = 1 << 2,
	F_MAXC = 1 << 3,
	F_NAME = 1 << 4,
	F_ADDRESS = 1 << 5,
	F_BY = 1 << 6,
	F_PHASE = 1 << 7,
	F_VERSION = 1 << 8,
	F_REASON = 1 << 9,
	F_CAP = 1 << 10,
	F_GUESTS = 1 << 11,
	F_MOVES = 1 << 12,
	F_MOVE = 1 << 13,
	F_STATS = 1 << 14,
	F_PATCH = 1 << 15, /* bundle, digest, key_id, source */
	F_EVENT = 1 << 16,
	F_BMC = 1 << 17, /* bmc, bmc_address: optional */
};

/* Fields a type carries but a decoder does not require (added later). */
#define F_OPTIONAL F_BMC

static const struct {
	const char *name;
	unsigned fields;
} types[] = {
    [HV_CMD_MEMBER_ADD] = {"member-add", F_NAME | F_ID | F_ADDRESS | F_ROLE},
    [HV_CMD_MEMBER_ROLE] = {"member-role", F_ID | F_ROLE},
    [HV_CMD_MEMBER_REMOVE] = {"member-remove", F_ID},
    [HV_CMD_REPORT] = {"report", F_NAME | F_PHASE | F_VERSION | F_BMC},
    [HV_CMD_LEASE_ACQUIRE] = {"lease-acquire", F_NAME},
    [HV_CMD_LEASE_RELEASE] = {"lease-release", F_NAME | F_TOKEN},
    [HV_CMD_LEASE_BREAK] = {"lease-break", F_NAME | F_BY | F_REASON},
    [HV_CMD_PAUSE] = {"pause", F_BY | F_REASON},
    [HV_CMD_RESUME] = {"resume", F_BY},
    [HV_CMD_SETTINGS] = {"settings", F_MAXC},
    [HV_CMD_INVENTORY] = {"inventory", F_NAME | F_CAP | F_GUESTS},
    [HV_CMD_MAINT] = {"maint", F_NAME | F_TOKEN | F_PHASE},
    [HV_CMD_PLAN] = {"plan", F_NAME | F_TOKEN | F_MOVES},
    [HV_CMD_MOVED] = {"moved", F_NAME | F_TOKEN | F_MOVE | F_STATS},
    [HV_CMD_PATCH_SUBMIT] = {"patch-submit", F_BY | F_VERSION | F_PATCH},
    [HV_CMD_PATCH_STEP] = {"patch-step", F_NAME | F_TOKEN | F_ID | F_PHASE | F_EVENT |
                                             F_VERSION | F_REASON},
    [HV_CMD_PATCH_ABORT] = {"patch-abort", F_BY | F_REASON},
    [HV_CMD_PATCH_WATCHDOG] = {"patch-watchdog", F_NAME | F_TOKEN | F_ID | F_PHASE |
                                                     F_EVENT | F_BY | F_REASON},
    [HV_CMD_POLICY_SET] = {"policy-set", F_NAME | F_BY | F_REASON},
    [HV_CMD_PATCH_GATE] = {"patch-gate", F_NAME | F_ID | F_BY | F_REASON},
};

const char *hv_cmd_name(int type)
{
	if (type < 1 || type > HV__CMD_LAST)
		return "unknown";
	return types[type].name;
}

const char *hv_role_name(int role)
{
	switch (role) {
	case HV_ROLE_VOTER:
		return "voter";
	case HV_ROLE_STANDBY:
		return "standby";
	case HV_ROLE_SPARE:
		return "spare";
	}
	return "unknown";
}

bool hv_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > HV_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int hv_text_copy(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);
	int rv = hv_mp_text_check(src, len, n);

	if (rv != HV_OK)
		return rv;
	memcpy(dst, src, len + 1);
	return HV_OK;
}

static void pack_str(msgpack_packer *pk, const char *key, const char *val)
{
	hv_mp_pack_str(pk, key);
	hv_mp_pack_str(pk, val);
}

static void pack_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
	hv_mp_pack_str(pk, key);
	msgpack_pack_uint64(pk, val);
}

void hv_cmd_pack_guest(msgpack_packer *pk, const struct hv_cmd_guest *g)
{
	msgpack_pack_array(pk, 8);
	hv_mp_pack_str(pk, g->name);
	msgpack_pack_uint64(pk, g->mem_mib);
	msgpack_pack_uint64(pk, g->vcpus);
	msgpack_pack_uint64(pk, (uint64_t)g->level);
	if (g->running)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	hv_mp_pack_str(pk, g->hostdev);
	hv_mp_pack_str(pk, g->local_disk);
	if (g->persistent)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void hv_cmd_pack_move(msgpack_packer *pk, const struct hv_cmd_move *m)
{
	msgpack_pack_array(pk, 6);
	hv_mp_pack_str(pk, m->guest);
	hv_mp_pack_str(pk, m->source);
	hv_mp_pack_str(pk, m->target);
	msgpack_pack_uint64(pk, m->mem_mib);
	msgpack_pack_uint64(pk, m->vcpus);
	msgpack_pack_uint64(pk, (uint64_t)m->action);
}

static int get_small(const msgpack_object *v, uint64_t max, uint64_t *out)
{
	int rv = hv_mp_u64(v, out);

	if (rv == HV_OK && *out > max)
		rv = HV_MALFORMED;
	return rv;
}

int hv_cmd_unpack_move(const msgpack_object *v, struct hv_cmd_move *m)
{
	const msgpack_object *t;
	uint64_t u = 0;
	int rv;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 6)
		return HV_MALFORMED;
	t = v->via.array.ptr;
	if ((rv = hv_mp_str(&t[0], m->guest, sizeof m->guest)) != HV_OK ||
	    (rv = hv_mp_str(&t[1], m->source, sizeof m->source)) != HV_OK ||
	    (rv = hv_mp_str(&t[2], m->target, sizeof m->target)) != HV_OK)
		return rv;
	if (!hv_name_valid(m->guest) || !hv_name_valid(m->source) ||
	    (m->target[0] != '\0' && !hv_name_valid(m->target)))
		return HV_MALFORMED;
	if ((rv = get_small(&t[3], UINT32_MAX, &u)) != HV_OK)
		return rv;
	m->mem_mib = (uint32_t)u;
	if ((rv = get_small(&t[4], 4096, &u)) != HV_OK)
		return rv;
	m->vcpus = (uint32_t)u;
	if ((rv = get_small(&t[5], 2, &u)) != HV_OK)
		return rv;
	m->action = (int)u;
	return HV_OK;
}

int hv_cmd_unpack_guest(const msgpack_object *v, struct hv_cmd_guest *g)
{
	const msgpack_object *t;
	uint64_t u = 0;
	int rv;

	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 8)
		return HV_MALFORMED;
	t = v->via.array.ptr;
	if ((rv = hv_mp_str(&t[0], g->name, sizeof g->name)) != HV_OK)
		return rv;
	if (!hv_name_valid(g->name))
		return HV_MALFORMED;
	if ((rv = get_small(&t[1], UINT32_MAX, &u)) != HV_OK)
		return rv;
	g->mem_mib = (uint32_t)u;
	if ((rv = get_small(&t[2], 4096, &u)) != HV_OK)
		return rv;
	g->vcpus = (uint32_t)u;
	if ((rv = get_small(&t[3], 2, &u)) != HV_OK)
		return rv;
	g->level = (int)u;
	if ((rv = hv_mp_bool(&t[4], &g->running)) != HV_OK)
		return rv;
	if ((rv = hv_mp_str(&t[5], g->hostdev, sizeof g->hostdev)) != HV_OK)
		return rv;
	if ((rv = hv_mp_str(&t[6], g->local_disk, sizeof g->local_disk)) != HV_OK)
		return rv;
	return hv_mp_bool(&t[7], &g->persistent);
}

int hv_cmd_encode(const struct hv_cmd *cmd, void *(*alloc)(size_t), void **buf,
                  size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	unsigned f, n = 3;
	int rv = HV_OK;

	if (cmd->type < 1 || cmd->type > HV__CMD_LAST)
		return HV_UNKNOWNCMD;
	f = types[cmd->type].fields;
	/* Refuse here what every replica would refuse at apply time. */
	if ((f & F_NAME) && !hv_name_valid(cmd->name) &&
	    !(cmd->type == HV_CMD_LEASE_BREAK && cmd->name[0] == '\0'))
		return HV_INVAL;
	if (((f & F_ROLE) && (cmd->role < 0 || cmd->role > HV_ROLE_SPARE)) ||
	    ((f & F_MAXC) && (cmd->max_concurrent < 1 || cmd->max_concurrent > 16)))
		return HV_INVAL;
	if (hv_mp_text_check(cmd->address, strlen(cmd->address), sizeof cmd->address) ||
	    hv_mp_text_check(cmd->by, strlen(cmd->by), sizeof cmd->by) ||
	    hv_mp_text_check(cmd->phase, strlen(cmd->phase), sizeof cmd->phase) ||
	    hv_mp_text_check(cmd->version, strlen(cmd->version), sizeof cmd->version) ||
	    hv_mp_text_check(cmd->reason, strlen(cmd->reason), sizeof cmd->reason) ||
	    hv_mp_text_check(cmd->bmc, strlen(cmd->bmc), sizeof cmd->bmc) ||
	    hv_mp_text_check(cmd->bmc_address, strlen(cmd->bmc_address),
	                     sizeof cmd->bmc_address))
		return HV_INVAL;
	for (unsigned b = f; b != 0; b &= b - 1)
		n++;
	if (f & F_CAP)
		n += 2; /* mem_cap, vcpus_cap and seen */
	if (f & F_STATS)
		n += 4; /* result, downtime_ms, elapsed_ms, bytes, error */
	if (f & F_PATCH)
		n += 3; /* bundle, digest, key_id, source */
	if (f & F_BMC)
		n += 1; /* bmc, bmc_address */
	if (((f & F_GUESTS) && cmd->n_guests > HV_MAX_GUESTS) ||
	    ((f & F_MOVES) && cmd->n_moves > HV_MAX_PLAN))
		return HV_TOOBIG;
	for (unsigned i = 0; (f & F_GUESTS) && i < cmd->n_guests; i++)
		if (!hv_name_valid(cmd->guests[i].name) ||
		    hv_mp_text_check(cmd->guests[i].hostdev,
		                     strlen(cmd->guests[i].hostdev),
		                     sizeof cmd->guests[i].hostdev) ||
		    hv_mp_text_check(cmd->guests[i].local_disk,
		                     strlen(cmd->guests[i].local_disk),
		                     sizeof cmd->guests[i].local_disk))
			return HV_INVAL;
	if ((f & F_STATS) &&
	    hv_mp_text_check(cmd->error, strlen(cmd->error), sizeof cmd->error))
		return HV_INVAL;
	if ((f & F_PATCH) &&
	    (!hv_name_valid(cmd->bundle) || !hv_name_valid(cmd->source) ||
	     hv_mp_text_check(cmd->digest, strlen(cmd->digest), sizeof cmd->digest) ||
	     hv_mp_text_check(cmd->key_id, strlen(cmd->key_id), sizeof cmd->key_id)))
		return HV_INVAL;
	if ((f & F_EVENT) && (cmd->event < 0 || cmd->event > 255))
		return HV_INVAL;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	pack_u64(&pk, "v", HV_CMD_FORMAT);
	pack_u64(&pk, "t", (uint64_t)cmd->type);
	pack_u64(&pk, "ts", cmd->time_ms);
	if (f & F_ID)
		pack_u64(&pk, "id", cmd->id);
	if (f & F_TOKEN)
		pack_u64(&pk, "token", cmd->token);
	if (f & F_ROLE)
		pack_u64(&pk, "role", (uint64_t)cmd->role);
	if (f & F_MAXC)
		pack_u64(&pk, "max_concurrent", cmd->max_concurrent);
	if (f & F_NAME)
		pack_str(&pk, "name", cmd->name);
	if (f & F_ADDRESS)
		pack_str(&pk, "address", cmd->address);
	if (f & F_BY)
		pack_str(&pk, "by", cmd->by);
	if (f & F_PHASE)
		pack_str(&pk, "phase", cmd->phase);
	if (f & F_VERSION)
		pack_str(&pk, "version", cmd->version);
	if (f & F_REASON)
		pack_str(&pk, "reason", cmd->reason);
	if (f & F_CAP) {
		pack_u64(&pk, "mem_cap", cmd->mem_cap_mib);
		pack_u64(&pk, "vcpus_cap", cmd->vcpus_cap);
		pack_u64(&pk, "seen", cmd->seen_index);
	}
	if (f & F_GUESTS) {
		hv_mp_pack_str(&pk, "guests");
		msgpack_pack_array(&pk, cmd->n_guests);
		for (unsigned i = 0; i < cmd->n_guests; i++)
			hv_cmd_pack_guest(&pk, &cmd->guests[i]);
	}
	if (f & F_MOVES) {
		hv_mp_pack_str(&pk, "moves");
		msgpack_pack_array(&pk, cmd->n_moves);
		for (unsigned i = 0; i < cmd->n_moves; i++)
			hv_cmd_pack_move(&pk, &cmd->moves[i]);
	}
	if (f & F_MOVE) {
		hv_mp_pack_str(&pk, "move");
		hv_cmd_pack_move(&pk, &cmd->move);
	}
	if (f & F_STATS) {
		pack_u64(&pk, "result", (uint64_t)cmd->result);
		pack_u64(&pk, "downtime_ms", cmd->downtime_ms);
		pack_u64(&pk, "elapsed_ms", cmd->elapsed_ms);
		pack_u64(&pk, "bytes", cmd->bytes);
		pack_str(&pk, "error", cmd->error);
	}
	if (f & F_PATCH) {
		pack_str(&pk, "bundle", cmd->bundle);
		pack_str(&pk, "digest", cmd->digest);
		pack_str(&pk, "key_id", cmd->key_id);
		pack_str(&pk, "source", cmd->source);
	}
	if (f & F_EVENT)
		pack_u64(&pk, "event", (uint64_t)cmd->event);
	if (f & F_BMC) {
		pack_str(&pk, "bmc", cmd->bmc);
		pack_str(&pk, "bmc_address", cmd->bmc_address);
	}

	if (sb.size > HV_CMD_MAX) {
		rv = HV_TOOBIG;
		goto out;
	}
	/* libraft's disk log wants entry sizes in multiples of 8 bytes: pad
	 * with zero bytes, which the decoder skips. */
	rv = hv_mp_finish(&sb, alloc, 8, buf, len);
out:
	msgpack_sbuffer_destroy(&sb);
	return rv;
}

static int decode_map(const msgpack_object *root, struct hv_cmd *cmd)
{
	uint64_t version = 0, type = 0, u = 0;
	unsigned seen = 0, need;
	bool have_v = false, have_t = false, have_ts = false;
	int rv = HV_OK;

	if (root->type != MSGPACK_OBJECT_MAP || root->via.map.size > 32)
		return HV_MALFORMED;
	for (uint32_t i = 0; i < root->via.map.size && rv == HV_OK; i++) {
		const msgpack_object *k = &root->via.map.ptr[i].key;
		const msgpack_object *v = &root->via.map.ptr[i].val;

		if (hv_mp_key_is(k, "v")) {
			rv = hv_mp_u64(v, &version);
			have_v = true;
		} else if (hv_mp_key_is(k, "t")) {
			rv = hv_mp_u64(v, &type);
			have_t = true;
		} else if (hv_mp_key_is(k, "ts")) {
			rv = hv_mp_u64(v, &cmd->time_ms);
			have_ts = true;
		} else if (hv_mp_key_is(k, "id")) {
			rv = hv_mp_u64(v, &cmd->id);
			seen |= F_ID;
		} else if (hv_mp_key_is(k, "token")) {
			rv = hv_mp_u64(v, &cmd->token);
			seen |= F_TOKEN;
		} else if (hv_mp_key_is(k, "role")) {
			rv = hv_mp_u64(v, &u);
			if (rv == HV_OK && u > HV_ROLE_SPARE)
				rv = HV_MALFORMED;
			cmd->role = (int)u;
			seen |= F_ROLE;
		} else if (hv_mp_key_is(k, "max_concurrent")) {
			rv = hv_mp_u64(v, &u);
			if (rv == HV_OK && (u < 1 || u > 16))
				rv = HV_MALFORMED;
			cmd->max_concurrent = (unsigned)u;
			seen |= F_MAXC;
		} else if (hv_mp_key_is(k, "name")) {
			rv = hv_mp_str(v, cmd->name, sizeof cmd->name);
			seen |= F_NAME;
		} else if (hv_mp_key_is(k, "address")) {
			rv = hv_mp_str(v, cmd->address, sizeof cmd->address);
			seen |= F_ADDRESS;
		} else if (hv_mp_key_is(k, "by")) {
			rv = hv_mp_str(v, cmd->by, sizeof cmd->by);
			seen |= F_BY;
		} else if (hv_mp_key_is(k, "phase")) {
			rv = hv_mp_str(v, cmd->phase, sizeof cmd->phase);
			seen |= F_PHASE;
		} else if (hv_mp_key_is(k, "version")) {
			rv = hv_mp_str(v, cmd->version, sizeof cmd->version);
			seen |= F_VERSION;
		} else if (hv_mp_key_is(k, "reason")) {
			rv = hv_mp_str(v, cmd->reason, sizeof cmd->reason);
			seen |= F_REASON;
		} else if (hv_mp_key_is(k, "mem_cap")) {
			rv = get_small(v, UINT32_MAX, &u);
			cmd->mem_cap_mib = (uint32_t)u;
			seen |= F_CAP;
		} else if (hv_mp_key_is(k, "seen")) {
			rv = hv_mp_u64(v, &cmd->seen_index);
		} else if (hv_mp_key_is(k, "vcpus_cap")) {
			rv = get_small(v, UINT32_MAX, &u);
			cmd->vcpus_cap = (uint32_t)u;
		} else if (hv_mp_key_is(k, "guests")) {
			if (v->type != MSGPACK_OBJECT_ARRAY ||
			    v->via.array.size > HV_MAX_GUESTS) {
				rv = HV_MALFORMED;
				continue;
			}
			cmd->n_guests = v->via.array.size;
			for (uint32_t j = 0; j < v->via.array.size && rv == HV_OK; j++)
				rv = hv_cmd_unpack_guest(&v->via.array.ptr[j],
				                         &cmd->guests[j]);
			seen |= F_GUESTS;
		} else if (hv_mp_key_is(k, "moves")) {
			if (v->type != MSGPACK_OBJECT_ARRAY ||
			    v->via.array.size > HV_MAX_PLAN) {
				rv = HV_MALFORMED;
				continue;
			}
			cmd->n_moves = v->via.array.size;
			for (uint32_t j = 0; j < v->via.array.size && rv == HV_OK; j++)
				rv = hv_cmd_unpack_move(&v->via.array.ptr[j],
				                        &cmd->moves[j]);
			seen |= F_MOVES;
		} else if (hv_mp_key_is(k, "move")) {
			rv = hv_cmd_unpack_move(v, &cmd->move);
			seen |= F_MOVE;
		} else if (hv_mp_key_is(k, "result")) {
			rv = get_small(v, 255, &u);
			cmd->result = (int)u;
			seen |= F_STATS;
		} else if (hv_mp_key_is(k, "downtime_ms")) {
			rv = hv_mp_u64(v, &cmd->downtime_ms);
		} else if (hv_mp_key_is(k, "elapsed_ms")) {
			rv = hv_mp_u64(v, &cmd->elapsed_ms);
		} else if (hv_mp_key_is(k, "bytes")) {
			rv = hv_mp_u64(v, &cmd->bytes);
		} else if (hv_mp_key_is(k, "error")) {
			rv = hv_mp_str(v, cmd->error, sizeof cmd->error);
		} else if (hv_mp_key_is(k, "bundle")) {
			rv = hv_mp_str(v, cmd->bundle, sizeof cmd->bundle);
			seen |= F_PATCH;
		} else if (hv_mp_key_is(k, "digest")) {
			rv = hv_mp_str(v, cmd->digest, sizeof cmd->digest);
		} else if (hv_mp_key_is(k, "key_id")) {
			rv = hv_mp_str(v, cmd->key_id, sizeof cmd->key_id);
		} else if (hv_mp_key_is(k, "source")) {
			rv = hv_mp_str(v, cmd->source, sizeof cmd->source);
		} else if (hv_mp_key_is(k, "event")) {
			rv = get_small(v, 255, &u);
			cmd->event = (int)u;
			seen |= F_EVENT;
		} else if (hv_mp_key_is(k, "bmc")) {
			rv = hv_mp_str(v, cmd->bmc, sizeof cmd->bmc);
		} else if (hv_mp_key_is(k, "bmc_address")) {
			rv = hv_mp_str(v, cmd->bmc_address, sizeof cmd->bmc_address);
		} else if (k->type != MSGPACK_OBJECT_STR) {
			rv = HV_MALFORMED;
		}
		/* Other string keys: fields of a newer format, ignored. */
	}
	if (rv != HV_OK)
		return rv;
	if (!have_v || !have_t || !have_ts)
		return HV_MALFORMED;
	if (version != HV_CMD_FORMAT)
		return HV_VERSION;
	if (type < 1 || type > HV__CMD_LAST)
		return HV_UNKNOWNCMD;
	cmd->type = (int)type;
	need = types[type].fields & ~F_OPTIONAL;
	if ((seen & need) != need)
		return HV_MALFORMED;
	if ((need & F_NAME) && !hv_name_valid(cmd->name) &&
	    !(type == HV_CMD_LEASE_BREAK && cmd->name[0] == '\0'))
		return HV_MALFORMED;
	if ((need & F_PATCH) &&
	    (!hv_name_valid(cmd->bundle) || !hv_name_valid(cmd->source)))
		return HV_MALFORMED;
	return HV_OK;
}

static uint64_t be_n(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

size_t hv_msgpack_check(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t off = 0;
	uint64_t need = 1; /* objects still to read; each takes >= 1 byte */

	while (need > 0) {
		unsigned char b;
		uint64_t skip = 0, elems = 0; /* header + payload; children */
		unsigned hdr;

		if (off >= len || need > len - off)
			return 0;
		b = p[off];
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
			skip = 1;
		} else if (b >= 0x80 && b <= 0x8f) {
			skip = 1;
			elems = 2u * (b & 0x0f);
		} else if (b >= 0x90 && b <= 0x9f) {
			skip = 1;
			elems = b & 0x0f;
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = 1u + (b & 0x1f);
		} else {
			/* Sized forms: header length, then what follows it. */
			static const struct {
				unsigned char lo, hi, lenbytes, fixed;
			} forms[] = {
			    {0xc4, 0xc4, 1, 0}, {0xc5, 0xc5, 2, 0}, {0xc6, 0xc6, 4, 0},
			    {0xc7, 0xc7, 1, 1}, {0xc8, 0xc8, 2, 1}, {0xc9, 0xc9, 4, 1},
			    {0xd9, 0xd9, 1, 0}, {0xda, 0xda, 2, 0}, {0xdb, 0xdb, 4, 0},
			};
			size_t i;

			switch (b) {
			case 0xca:
			case 0xce:
			case 0xd2:
				skip = 5;
				break;
			case 0xcb:
			case 0xcf:
			case 0xd3:
				skip = 9;
				break;
			case 0xcc:
			case 0xd0:
				skip = 2;
				break;
			case 0xcd:
			case 0xd1:
				skip = 3;
				break;
			case 0xd4:
				skip = 3;
				break;
			case 0xd5:
				skip = 4;
				break;
			case 0xd6:
				skip = 6;
				break;
			case 0xd7:
				skip = 10;
				break;
			case 0xd8:
				skip = 18;
				break;
			case 0xdc:
			case 0xde:
			case 0xdd:
			case 0xdf:
				hdr = (b == 0xdc || b == 0xde) ? 2 : 4;
				if (len - off < 1 + hdr)
					return 0;
				elems = be_n(p + off + 1, hdr);
				if (b >= 0xde)
					elems *= 2;
				skip = 1 + hdr;
				break;
			default:
				for (i = 0; i < sizeof forms / sizeof forms[0]; i++)
					if (b == forms[i].lo)
						break;
				if (i == sizeof forms / sizeof forms[0])
					return 0; /* 0xc1: never used */
				hdr = forms[i].lenbytes;
				if (len - off < 1 + hdr)
					return 0;
				skip = 1 + hdr + forms[i].fixed + be_n(p + off + 1, hdr);
				break;
			}
		}
		if (skip > len - off)
			return 0;
		off += skip;
		need = need - 1 + elems;
		if (need > len - off && need > 0)
			return 0;
	}
	return off;
}

/* After the map: nothing, or up to 7 zero bytes of padding. */
static bool padding_ok(const void *buf, size_t off, size_t len)
{
	if (len - off > 7)
		return false;
	for (size_t i = off; i < len; i++)
		if (((const unsigned char *)buf)[i] != 0)
			return false;
	return true;
}

int hv_cmd_decode(const void *buf, size_t len, struct hv_cmd *cmd)
{
	msgpack_unpacked up;
	size_t off = 0;
	int rv;

	memset(cmd, 0, sizeof *cmd);
	if (len > HV_CMD_MAX)
		return HV_TOOBIG;
	if (buf == NULL || len == 0 || hv_msgpack_check(buf, len) == 0)
		return HV_MALFORMED;
	msgpack_unpacked_init(&up);
	switch (msgpack_unpack_next(&up, buf, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		rv = padding_ok(buf, off, len) ? decode_map(&up.data, cmd) : HV_MALFORMED;
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		rv = HV_NOMEM;
		break;
	default:
		rv = HV_MALFORMED;
		break;
	}
	msgpack_unpacked_destroy(&up);
	if (rv != HV_OK)
		memset(cmd, 0, sizeof *cmd);
	return rv;
}
