/*
 * The command codec: every command type survives an encode/decode round trip
 * field for field, and the decoder refuses everything else without reading
 * past the buffer (each input is copied into an exactly sized heap block, so
 * ASan and valgrind see any overread) and without crashing.
 *
 * Malformed inputs are built with msgpack-c's packer directly, not with the
 * encoder under test.
 */
#include <limits.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../consensus/codec.h"
#include "../../lib/err.h"

/*
 * Under ASan a malloc() that cannot be satisfied aborts the process instead
 * of returning NULL. The decoder must cope with NULL (production libc returns
 * it), so let ASan behave like libc here.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	/* Also fail big requests fast: ASan poisons a freed block's shadow
	 * byte by byte, which makes gigabyte blocks take seconds. */
	return "allocator_may_return_null=1:max_allocation_size_mb=256";
}

/* ---- helpers ----------------------------------------------------------- */

/* Decode a private, exactly sized copy of buf[0..len). */
static int decode_exact(const void *buf, size_t len, struct hv_cmd *cmd)
{
	void *copy = malloc(len > 0 ? len : 1);
	int rv;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	rv = hv_cmd_decode(copy, len, cmd);
	free(copy);
	return rv;
}

static void fill(char *dst, size_t n, char c)
{
	memset(dst, c, n);
	dst[n] = '\0';
}

/* A command of the given type with distinctive values in its own fields
 * only, as the decoder hands it back. */
static struct hv_cmd make_cmd(int type)
{
	struct hv_cmd c;

	memset(&c, 0, sizeof c);
	c.type = type;
	c.time_ms = 1700000000000ull + (uint64_t)type;
	switch (type) {
	case HV_CMD_MEMBER_ADD:
		strcpy(c.name, "hv-01.rack_3");
		c.id = 0x1234567890abcdefull;
		strcpy(c.address, "10.0.0.1:7000");
		c.role = HV_ROLE_VOTER;
		break;
	case HV_CMD_MEMBER_ROLE:
		c.id = 42;
		c.role = HV_ROLE_SPARE;
		break;
	case HV_CMD_MEMBER_REMOVE:
		c.id = 7;
		break;
	case HV_CMD_REPORT:
		strcpy(c.name, "hv2");
		strcpy(c.phase, "draining");
		strcpy(c.version, "6.1.0-18 (kernel) / qemu 8.2");
		break;
	case HV_CMD_LEASE_ACQUIRE:
		strcpy(c.name, "hv3");
		break;
	case HV_CMD_LEASE_RELEASE:
		strcpy(c.name, "hv4");
		c.token = 99;
		break;
	case HV_CMD_LEASE_BREAK:
		strcpy(c.name, "hv5");
		strcpy(c.by, "operator alice");
		strcpy(c.reason, "host hv5 is dead, power cycled by BMC");
		break;
	case HV_CMD_PAUSE:
		strcpy(c.by, "bob");
		strcpy(c.reason, "change freeze: quarterly close");
		break;
	case HV_CMD_RESUME:
		strcpy(c.by, "carol");
		break;
	case HV_CMD_SETTINGS:
		c.max_concurrent = 3;
		break;
	default:
		fail_msg("no such type %d", type);
	}
	return c;
}

static void assert_cmd_equal(const struct hv_cmd *a, const struct hv_cmd *b)
{
	assert_int_equal(a->type, b->type);
	assert_true(a->time_ms == b->time_ms);
	assert_true(a->id == b->id);
	assert_true(a->token == b->token);
	assert_int_equal(a->role, b->role);
	assert_int_equal(a->max_concurrent, b->max_concurrent);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->address, b->address);
	assert_string_equal(a->by, b->by);
	assert_string_equal(a->phase, b->phase);
	assert_string_equal(a->version, b->version);
	assert_string_equal(a->reason, b->reason);
}

static unsigned n_custom_allocs;

static void *custom_alloc(size_t n)
{
	n_custom_allocs++;
	return malloc(n);
}

static void encode_ok(const struct hv_cmd *c, void **buf, size_t *len)
{
	int rv = hv_cmd_encode(c, NULL, buf, len);

	assert_int_equal(rv, HV_OK);
	assert_non_null(*buf);
	assert_true(*len > 0 && *len <= HV_CMD_MAX);
	/* Padded for libraft's disk log (see codec.h). */
	assert_int_equal(*len % 8, 0);
}

/*
 * Crafted msgpack. A command is described as a list of fields, each a key
 * and a value of some msgpack kind; variants of a valid list (a field
 * dropped, a value of the wrong kind) make the malformed inputs.
 */
enum kind {
	K_U64, /* positive integer u */
	K_STR, /* string s (NUL-terminated) */
	K_RAW, /* string of n bytes at s (may hold NUL) */
	K_NEG, /* negative integer */
	K_NIL,
	K_TRUE,
	K_FLOAT, /* 1.5 */
	K_BIN,   /* bin with the bytes of s */
	K_ARRAY, /* [1] */
	K_MAP,   /* {"a": 1} */
	K_SKIP,  /* leave this field out */
};

struct field {
	const char *key;
	enum kind kind;
	uint64_t u;
	const char *s;
	size_t n;
};

#define MAX_FIELDS 16

struct spec {
	unsigned n;
	struct field f[MAX_FIELDS];
};

struct mp {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void mp_init(struct mp *m)
{
	msgpack_sbuffer_init(&m->sb);
	msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_done(struct mp *m)
{
	msgpack_sbuffer_destroy(&m->sb);
}

static void mp_str(struct mp *m, const char *s, size_t n)
{
	msgpack_pack_str(&m->pk, n);
	msgpack_pack_str_body(&m->pk, s, n);
}

static void mp_value(struct mp *m, const struct field *f)
{
	switch (f->kind) {
	case K_U64:
		msgpack_pack_uint64(&m->pk, f->u);
		break;
	case K_STR:
		mp_str(m, f->s, strlen(f->s));
		break;
	case K_RAW:
		mp_str(m, f->s, f->n);
		break;
	case K_NEG:
		msgpack_pack_int64(&m->pk, -1);
		break;
	case K_NIL:
		msgpack_pack_nil(&m->pk);
		break;
	case K_TRUE:
		msgpack_pack_true(&m->pk);
		break;
	case K_FLOAT:
		msgpack_pack_double(&m->pk, 1.5);
		break;
	case K_BIN:
		msgpack_pack_bin(&m->pk, strlen(f->s));
		msgpack_pack_bin_body(&m->pk, f->s, strlen(f->s));
		break;
	case K_ARRAY:
		msgpack_pack_array(&m->pk, 1);
		msgpack_pack_uint64(&m->pk, 1);
		break;
	case K_MAP:
		msgpack_pack_map(&m->pk, 1);
		mp_str(m, "a", 1);
		msgpack_pack_uint64(&m->pk, 1);
		break;
	case K_SKIP:
		break;
	}
}

static void mp_spec(struct mp *m, const struct spec *sp)
{
	unsigned n = 0;

	for (unsigned i = 0; i < sp->n; i++)
		if (sp->f[i].kind != K_SKIP)
			n++;
	msgpack_pack_map(&m->pk, n);
	for (unsigned i = 0; i < sp->n; i++) {
		if (sp->f[i].kind == K_SKIP)
			continue;
		mp_str(m, sp->f[i].key, strlen(sp->f[i].key));
		mp_value(m, &sp->f[i]);
	}
}

static void add_u64(struct spec *sp, const char *key, uint64_t u)
{
	assert_true(sp->n < MAX_FIELDS);
	sp->f[sp->n++] = (struct field){.key = key, .kind = K_U64, .u = u};
}

static void add_str(struct spec *sp, const char *key, const char *s)
{
	assert_true(sp->n < MAX_FIELDS);
	sp->f[sp->n++] = (struct field){.key = key, .kind = K_STR, .s = s};
}

static struct field *field_of(struct spec *sp, const char *key)
{
	for (unsigned i = 0; i < sp->n; i++)
		if (strcmp(sp->f[i].key, key) == 0)
			return &sp->f[i];
	fail_msg("no field %s", key);
	return NULL;
}

/* The valid field list for c, written independently of the encoder. The
 * string fields point into c, which must outlive the spec. */
static struct spec spec_of(const struct hv_cmd *c)
{
	struct spec sp = {0};

	add_u64(&sp, "v", HV_CMD_FORMAT);
	add_u64(&sp, "t", (uint64_t)c->type);
	add_u64(&sp, "ts", c->time_ms);
	switch (c->type) {
	case HV_CMD_MEMBER_ADD:
		add_str(&sp, "name", c->name);
		add_u64(&sp, "id", c->id);
		add_str(&sp, "address", c->address);
		add_u64(&sp, "role", (uint64_t)c->role);
		break;
	case HV_CMD_MEMBER_ROLE:
		add_u64(&sp, "id", c->id);
		add_u64(&sp, "role", (uint64_t)c->role);
		break;
	case HV_CMD_MEMBER_REMOVE:
		add_u64(&sp, "id", c->id);
		break;
	case HV_CMD_REPORT:
		add_str(&sp, "name", c->name);
		add_str(&sp, "phase", c->phase);
		add_str(&sp, "version", c->version);
		break;
	case HV_CMD_LEASE_ACQUIRE:
		add_str(&sp, "name", c->name);
		break;
	case HV_CMD_LEASE_RELEASE:
		add_str(&sp, "name", c->name);
		add_u64(&sp, "token", c->token);
		break;
	case HV_CMD_LEASE_BREAK:
		add_str(&sp, "name", c->name);
		add_str(&sp, "by", c->by);
		add_str(&sp, "reason", c->reason);
		break;
	case HV_CMD_PAUSE:
		add_str(&sp, "by", c->by);
		add_str(&sp, "reason", c->reason);
		break;
	case HV_CMD_RESUME:
		add_str(&sp, "by", c->by);
		break;
	case HV_CMD_SETTINGS:
		add_u64(&sp, "max_concurrent", c->max_concurrent);
		break;
	}
	return sp;
}

static int decode_spec(const struct spec *sp, struct hv_cmd *out)
{
	struct mp m;
	int rv;

	mp_init(&m);
	mp_spec(&m, sp);
	rv = decode_exact(m.sb.data, m.sb.size, out);
	mp_done(&m);
	return rv;
}

/* The string fields a command type carries, and each one's capacity. */
struct str_field {
	const char *key;
	size_t cap; /* longest accepted string + 1 */
	bool is_name;
};

static const struct str_field str_fields[] = {
    {"name", HV_NAME_MAX + 1, true},        {"address", HV_ADDR_MAX + 1, false},
    {"by", HV_NAME_MAX + 1, false},         {"phase", HV_PHASE_MAX + 1, false},
    {"version", HV_VERSION_MAX + 1, false}, {"reason", HV_REASON_MAX + 1, false},
};

static bool spec_has(const struct spec *sp, const char *key)
{
	for (unsigned i = 0; i < sp->n; i++)
		if (strcmp(sp->f[i].key, key) == 0)
			return true;
	return false;
}

/* ---- round trips ------------------------------------------------------- */

static void test_roundtrip_every_type(void **state)
{
	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd in = make_cmd(type), out;
		void *buf = NULL;
		size_t len = 0;

		encode_ok(&in, &buf, &len);
		memset(&out, 0xa5, sizeof out);
		assert_int_equal(decode_exact(buf, len, &out), HV_OK);
		assert_cmd_equal(&in, &out);
		free(buf);

		/* The crafted encoding of the same command decodes the same. */
		struct spec sp = spec_of(&in);
		assert_int_equal(decode_spec(&sp, &out), HV_OK);
		assert_cmd_equal(&in, &out);
	}
}

static void test_roundtrip_limits(void **state)
{
	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd in = make_cmd(type), out;
		void *buf = NULL;
		size_t len = 0;

		in.time_ms = UINT64_MAX;
		if (in.id != 0)
			in.id = UINT64_MAX;
		if (in.token != 0)
			in.token = UINT64_MAX;
		if (in.name[0] != '\0')
			fill(in.name, HV_NAME_MAX, 'n');
		if (in.address[0] != '\0')
			fill(in.address, HV_ADDR_MAX, 'a');
		if (in.by[0] != '\0')
			fill(in.by, HV_NAME_MAX, 'b');
		if (in.phase[0] != '\0')
			fill(in.phase, HV_PHASE_MAX, 'p');
		if (in.version[0] != '\0')
			fill(in.version, HV_VERSION_MAX, 'v');
		if (in.reason[0] != '\0')
			fill(in.reason, HV_REASON_MAX, 'r');
		if (type == HV_CMD_SETTINGS)
			in.max_concurrent = 16;
		encode_ok(&in, &buf, &len);
		assert_int_equal(decode_exact(buf, len, &out), HV_OK);
		assert_cmd_equal(&in, &out);
		free(buf);
	}

	/* The small ends: time 0, role 0 (standby), one-letter names,
	 * max_concurrent 1, token 0. */
	struct hv_cmd in = make_cmd(HV_CMD_MEMBER_ADD), out;
	void *buf;
	size_t len;

	in.time_ms = 0;
	in.role = HV_ROLE_STANDBY;
	strcpy(in.name, "x");
	in.id = 1;
	in.address[0] = '\0';
	encode_ok(&in, &buf, &len);
	assert_int_equal(decode_exact(buf, len, &out), HV_OK);
	assert_cmd_equal(&in, &out);
	free(buf);

	in = make_cmd(HV_CMD_LEASE_RELEASE);
	in.token = 0;
	encode_ok(&in, &buf, &len);
	assert_int_equal(decode_exact(buf, len, &out), HV_OK);
	assert_cmd_equal(&in, &out);
	free(buf);

	in = make_cmd(HV_CMD_SETTINGS);
	in.max_concurrent = 1;
	encode_ok(&in, &buf, &len);
	assert_int_equal(decode_exact(buf, len, &out), HV_OK);
	assert_cmd_equal(&in, &out);
	free(buf);

	/* Every role. */
	for (int role = HV_ROLE_STANDBY; role <= HV_ROLE_SPARE; role++) {
		in = make_cmd(HV_CMD_MEMBER_ROLE);
		in.role = role;
		encode_ok(&in, &buf, &len);
		assert_int_equal(decode_exact(buf, len, &out), HV_OK);
		assert_cmd_equal(&in, &out);
		free(buf);
	}
}

/* A lease break with an empty name means "every holder" and must survive. */
static void test_roundtrip_break_all(void **state)
{
	struct hv_cmd in = make_cmd(HV_CMD_LEASE_BREAK), out;
	void *buf;
	size_t len;

	(void)state;
	in.name[0] = '\0';
	encode_ok(&in, &buf, &len);
	assert_int_equal(decode_exact(buf, len, &out), HV_OK);
	assert_cmd_equal(&in, &out);
	assert_string_equal(out.name, "");
	free(buf);
}

/* Fields a type does not carry are not encoded: they decode as zero. */
/* A report may carry the host's BMC; one without it (an older proposer)
 * decodes with none. The watchdog's command round-trips. */
static void test_roundtrip_bmc_and_watchdog(void **state)
{
	struct hv_cmd in = make_cmd(HV_CMD_REPORT), out;
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	strcpy(in.bmc, "redfish");
	strcpy(in.bmc_address, "[fd00::21]:8443");
	encode_ok(&in, &buf, &len);
	assert_int_equal(decode_exact(buf, len, &out), HV_OK);
	assert_string_equal(out.bmc, "redfish");
	assert_string_equal(out.bmc_address, "[fd00::21]:8443");
	free(buf);
	in.bmc_address[0] = '\x01';
	assert_int_equal(hv_cmd_encode(&in, NULL, &buf, &len), HV_INVAL);

	memset(&in, 0, sizeof in);
	in.type = HV_CMD_PATCH_WATCHDOG;
	in.time_ms = 5;
	in.token = 42;
	in.id = 40;
	in.event = HV_WD_GAVE_UP;
	strcpy(in.name, "h2");
	strcpy(in.phase, "reboot");
	strcpy(in.by, "h1");
	strcpy(in.reason, "h2 has not come back");
	encode_ok(&in, &buf, &len);
	memset(&out, 0, sizeof out);
	assert_int_equal(decode_exact(buf, len, &out), HV_OK);
	assert_int_equal(out.type, HV_CMD_PATCH_WATCHDOG);
	assert_int_equal(out.token, 42);
	assert_int_equal(out.id, 40);
	assert_int_equal(out.event, HV_WD_GAVE_UP);
	assert_string_equal(out.name, "h2");
	assert_string_equal(out.phase, "reboot");
	assert_string_equal(out.by, "h1");
	assert_string_equal(out.reason, "h2 has not come back");
	free(buf);
}

static void test_encode_only_own_fields(void **state)
{
	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd want = make_cmd(type), in = want, out;
		void *buf;
		size_t len;

		if (in.id == 0 && type != HV_CMD_MEMBER_ADD)
			in.id = 5;
		if (in.token == 0)
			in.token = 6;
		if (type != HV_CMD_MEMBER_ADD && type != HV_CMD_MEMBER_ROLE)
			in.role = HV_ROLE_SPARE;
		if (in.max_concurrent == 0)
			in.max_concurrent = 4;
		if (in.name[0] == '\0' && type != HV_CMD_LEASE_BREAK)
			strcpy(in.name, "other");
		if (in.address[0] == '\0')
			strcpy(in.address, "addr");
		if (in.by[0] == '\0')
			strcpy(in.by, "someone");
		if (in.phase[0] == '\0')
			strcpy(in.phase, "phase");
		if (in.version[0] == '\0')
			strcpy(in.version, "1.0");
		if (in.reason[0] == '\0')
			strcpy(in.reason, "why");
		encode_ok(&in, &buf, &len);
		assert_int_equal(decode_exact(buf, len, &out), HV_OK);
		assert_cmd_equal(&want, &out);
		free(buf);
	}
}

static void test_encode_allocator(void **state)
{
	struct hv_cmd in = make_cmd(HV_CMD_LEASE_ACQUIRE), out;
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	n_custom_allocs = 0;
	assert_int_equal(hv_cmd_encode(&in, custom_alloc, &buf, &len), HV_OK);
	assert_int_equal(n_custom_allocs, 1);
	assert_int_equal(decode_exact(buf, len, &out), HV_OK);
	assert_cmd_equal(&in, &out);
	free(buf);
}

static void test_encode_refuses(void **state)
{
	struct hv_cmd c;
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	c = make_cmd(HV_CMD_LEASE_ACQUIRE);
	c.type = 0;
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_UNKNOWNCMD);
	c.type = HV__CMD_LAST + 1;
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_UNKNOWNCMD);
	c.type = -1;
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_UNKNOWNCMD);

	c = make_cmd(HV_CMD_LEASE_ACQUIRE);
	strcpy(c.name, "bad name");
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_INVAL);
	strcpy(c.name, "a/b");
	assert_int_equal(hv_cmd_encode(&c, NULL, &buf, &len), HV_INVAL);
	assert_null(buf);
}

/* ---- truncation, trailing bytes, size ----------------------------------- */

/* Where the msgpack map of an encoding ends (the rest is zero padding). */
static size_t map_end(const void *buf, size_t len)
{
	msgpack_unpacked up;
	size_t off = 0;

	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, buf, len, &off),
	                 MSGPACK_UNPACK_SUCCESS);
	msgpack_unpacked_destroy(&up);
	return off;
}

/* A prefix that cuts into the map fails; one that only cuts padding is the
 * same command with less padding. */
static void test_truncated_prefixes(void **state)
{
	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd in = make_cmd(type), out;
		size_t len, end;
		void *buf;

		encode_ok(&in, &buf, &len);
		end = map_end(buf, len);
		assert_true(end <= len && len - end < 8);
		for (size_t i = 0; i < end; i++) {
			int rv = decode_exact(buf, i, &out);
			if (rv != HV_MALFORMED)
				fail_msg("type %d, prefix %zu of %zu: %s", type, i, end,
				         hv_errname(rv));
		}
		for (size_t i = end; i <= len; i++) {
			assert_int_equal(decode_exact(buf, i, &out), HV_OK);
			assert_cmd_equal(&in, &out);
		}
		free(buf);
	}
	struct hv_cmd out;
	assert_int_equal(hv_cmd_decode(NULL, 0, &out), HV_MALFORMED);
}

static void test_trailing_garbage(void **state)
{
	static const unsigned char tails[] = {0x01, 0xc0, 0xff, 0x80, 0x91};

	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd in = make_cmd(type), out;
		unsigned char *two;
		size_t len, end;
		void *buf;

		encode_ok(&in, &buf, &len);
		end = map_end(buf, len);
		two = calloc(1, 2 * len + 16);
		assert_non_null(two);
		memcpy(two, buf, end);

		/* Up to 7 zero bytes of padding, whatever the alignment. */
		for (size_t pad = 0; pad <= 7; pad++) {
			assert_int_equal(decode_exact(two, end + pad, &out), HV_OK);
			assert_cmd_equal(&in, &out);
		}
		/* Eight are too many. */
		assert_int_equal(decode_exact(two, end + 8, &out), HV_MALFORMED);
		assert_int_equal(decode_exact(two, end + 15, &out), HV_MALFORMED);

		/* Any non-zero byte after the map, at any place in the
		 * padding. */
		for (size_t at = 0; at < 7; at++) {
			for (size_t i = 0; i < sizeof tails; i++) {
				memset(two + end, 0, 8);
				two[end + at] = tails[i];
				assert_int_equal(decode_exact(two, end + 7, &out),
				                 HV_MALFORMED);
				assert_int_equal(decode_exact(two, end + at + 1, &out),
				                 HV_MALFORMED);
			}
		}

		/* Two whole commands back to back are not one command. */
		memcpy(two, buf, len);
		memcpy(two + len, buf, len);
		assert_int_equal(decode_exact(two, 2 * len, &out), HV_MALFORMED);
		memcpy(two + end, buf, end);
		assert_int_equal(decode_exact(two, 2 * end, &out), HV_MALFORMED);
		free(two);
		free(buf);
	}
}

static void test_size_limit(void **state)
{
	struct hv_cmd c = make_cmd(HV_CMD_LEASE_ACQUIRE), out;
	struct spec sp = spec_of(&c);
	char pad[HV_CMD_MAX];
	unsigned char *junk;
	char *big;
	struct mp m;
	size_t base;

	(void)state;
	/* Exactly HV_CMD_MAX bytes is accepted (unknown key "pad" ignored). */
	mp_init(&m);
	sp.f[sp.n++] = (struct field){.key = "pad", .kind = K_RAW, .s = pad, .n = 0};
	mp_spec(&m, &sp);
	base = m.sb.size;
	mp_done(&m);
	/* str16 header: 3 bytes instead of fixstr's 1 */
	memset(pad, 'x', sizeof pad);
	sp.f[sp.n - 1].n = HV_CMD_MAX - base - 2;
	mp_init(&m);
	mp_spec(&m, &sp);
	assert_int_equal(m.sb.size, HV_CMD_MAX);
	assert_int_equal(decode_exact(m.sb.data, m.sb.size, &out), HV_OK);
	assert_cmd_equal(&c, &out);
	mp_done(&m);

	/* One byte more is refused as too big. */
	sp.f[sp.n - 1].n = HV_CMD_MAX - base - 1;
	mp_init(&m);
	mp_spec(&m, &sp);
	assert_int_equal(m.sb.size, HV_CMD_MAX + 1);
	assert_int_equal(decode_exact(m.sb.data, m.sb.size, &out), HV_TOOBIG);
	mp_done(&m);

	/* Far bigger, valid msgpack. */
	big = malloc(100000);
	assert_non_null(big);
	memset(big, 'x', 100000);
	sp.f[sp.n - 1].s = big;
	sp.f[sp.n - 1].n = 100000;
	mp_init(&m);
	mp_spec(&m, &sp);
	free(big);
	assert_int_equal(decode_exact(m.sb.data, m.sb.size, &out), HV_TOOBIG);
	mp_done(&m);

	/* Any content over the limit, even garbage, is TOOBIG. */
	junk = malloc(HV_CMD_MAX + 1);
	assert_non_null(junk);
	memset(junk, 0xc1, HV_CMD_MAX + 1);
	assert_int_equal(decode_exact(junk, HV_CMD_MAX + 1, &out), HV_TOOBIG);
	assert_int_equal(hv_cmd_decode(junk, SIZE_MAX, &out), HV_TOOBIG);
	free(junk);
}

/* ---- version, type, fields ---------------------------------------------- */

static void test_wrong_version(void **state)
{
	static const uint64_t versions[] = {0, 2, 3, 255, UINT64_MAX};

	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd c = make_cmd(type), out;

		for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
			struct spec sp = spec_of(&c);
			field_of(&sp, "v")->u = versions[i];
			assert_int_equal(decode_spec(&sp, &out), HV_VERSION);
		}
	}
}

static void test_unknown_type(void **state)
{
	static const uint64_t types[] = {0,   HV__CMD_LAST + 1,      100,
	                                 256, (uint64_t)INT_MAX + 1, UINT64_MAX};
	struct hv_cmd c = make_cmd(HV_CMD_LEASE_ACQUIRE), out;

	(void)state;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		struct spec sp = spec_of(&c);
		field_of(&sp, "t")->u = types[i];
		assert_int_equal(decode_spec(&sp, &out), HV_UNKNOWNCMD);
	}
}

static void test_missing_fields(void **state)
{
	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd c = make_cmd(type), out;
		struct spec base = spec_of(&c);

		for (unsigned i = 0; i < base.n; i++) {
			struct spec sp = base;
			int rv;

			sp.f[i].kind = K_SKIP;
			rv = decode_spec(&sp, &out);
			if (rv != HV_MALFORMED)
				fail_msg("type %d without %s: %s", type, base.f[i].key,
				         hv_errname(rv));
		}
	}

	/* Nothing at all. */
	struct spec empty = {0};
	struct hv_cmd out;
	assert_int_equal(decode_spec(&empty, &out), HV_MALFORMED);
}

static void test_wrong_value_types(void **state)
{
	static const enum kind bad_for_int[] = {K_STR,   K_NEG, K_NIL,   K_TRUE,
	                                        K_FLOAT, K_BIN, K_ARRAY, K_MAP};
	static const enum kind bad_for_str[] = {K_U64,   K_NEG, K_NIL,   K_TRUE,
	                                        K_FLOAT, K_BIN, K_ARRAY, K_MAP};

	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd c = make_cmd(type), out;
		struct spec base = spec_of(&c);

		for (unsigned i = 0; i < base.n; i++) {
			bool is_int = base.f[i].kind == K_U64;
			const enum kind *bad = is_int ? bad_for_int : bad_for_str;
			size_t nbad = is_int ? sizeof bad_for_int / sizeof *bad
			                     : sizeof bad_for_str / sizeof *bad;

			for (size_t k = 0; k < nbad; k++) {
				struct spec sp = base;
				int rv;

				sp.f[i].kind = bad[k];
				sp.f[i].s = "abc";
				sp.f[i].u = 1;
				rv = decode_spec(&sp, &out);
				if (rv != HV_MALFORMED)
					fail_msg("type %d, %s of kind %d: %s", type,
					         base.f[i].key, bad[k], hv_errname(rv));
			}
		}
	}
}

static void test_strings_too_long(void **state)
{
	static char s[HV_CMD_MAX];

	(void)state;
	memset(s, 'a', sizeof s);
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd c = make_cmd(type), out;
		struct spec base = spec_of(&c);

		for (size_t j = 0; j < sizeof str_fields / sizeof *str_fields; j++) {
			const struct str_field *sf = &str_fields[j];
			struct spec sp = base;
			struct field *f;
			int rv;

			if (!spec_has(&base, sf->key))
				continue;
			f = field_of(&sp, sf->key);
			f->kind = K_RAW;
			f->s = s;

			/* The longest that fits is accepted... */
			f->n = sf->cap - 1;
			assert_int_equal(decode_spec(&sp, &out), HV_OK);

			/* ...one more byte, or far more, is not. */
			for (size_t extra = 0; extra < 3; extra++) {
				f->n = extra == 2 ? 2000 : sf->cap + extra;
				rv = decode_spec(&sp, &out);
				if (rv != HV_TOOBIG && rv != HV_MALFORMED)
					fail_msg("type %d, %s of %zu bytes: %s", type,
					         sf->key, f->n, hv_errname(rv));
			}
		}
	}
}

static void test_control_chars(void **state)
{
	static const char *bad[] = {"a\x01z", "a\nz",   "\tz",
	                            "a\x1f",  "a\x7fz", "a\x1b[31mz"};

	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd c = make_cmd(type), out;
		struct spec base = spec_of(&c);

		for (size_t j = 0; j < sizeof str_fields / sizeof *str_fields; j++) {
			const char *key = str_fields[j].key;
			struct spec sp = base;
			struct field *f;

			if (!spec_has(&base, key))
				continue;
			f = field_of(&sp, key);
			for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
				f->kind = K_STR;
				f->s = bad[k];
				assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
			}
			/* An embedded NUL would silently cut the string. */
			f->kind = K_RAW;
			f->s = "ab\0cd";
			f->n = 5;
			assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
			f->s = "\0";
			f->n = 1;
			assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
		}
	}
}

static void test_invalid_names(void **state)
{
	static const char *bad[] = {"a b",       "a/b", "a:b", "hv1;rm",
	                            "h\xc3\xa9", "*",   "a@b", "..\\x"};
	static const int types[] = {HV_CMD_MEMBER_ADD, HV_CMD_REPORT,
	                            HV_CMD_LEASE_ACQUIRE, HV_CMD_LEASE_RELEASE,
	                            HV_CMD_LEASE_BREAK};

	(void)state;
	for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
		struct hv_cmd c = make_cmd(types[t]), out;
		struct spec sp = spec_of(&c);
		struct field *f = field_of(&sp, "name");

		for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
			f->s = bad[k];
			assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
		}
		/* Empty: only a lease break may name no one ("every
		 * holder"). */
		f->s = "";
		assert_int_equal(decode_spec(&sp, &out),
		                 types[t] == HV_CMD_LEASE_BREAK ? HV_OK : HV_MALFORMED);
		/* Every allowed character. */
		f->s = "AZaz09._-";
		assert_int_equal(decode_spec(&sp, &out), HV_OK);
		assert_string_equal(out.name, "AZaz09._-");
	}
}

static void test_ranges(void **state)
{
	struct hv_cmd c, out;
	struct spec sp;

	(void)state;
	c = make_cmd(HV_CMD_MEMBER_ROLE);
	sp = spec_of(&c);
	field_of(&sp, "role")->u = HV_ROLE_SPARE + 1;
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
	field_of(&sp, "role")->u = UINT64_MAX;
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);

	c = make_cmd(HV_CMD_MEMBER_ADD);
	sp = spec_of(&c);
	field_of(&sp, "role")->u = 1u << 31;
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);

	c = make_cmd(HV_CMD_SETTINGS);
	sp = spec_of(&c);
	field_of(&sp, "max_concurrent")->u = 0;
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
	field_of(&sp, "max_concurrent")->u = 17;
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
	field_of(&sp, "max_concurrent")->u = (1ull << 32) + 1;
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
	field_of(&sp, "max_concurrent")->u = 16;
	assert_int_equal(decode_spec(&sp, &out), HV_OK);
	assert_int_equal(out.max_concurrent, 16);
}

static void test_non_map_root(void **state)
{
	struct hv_cmd out;
	struct mp m;

	(void)state;
	/* An array holding a valid command's fields in order. */
	mp_init(&m);
	msgpack_pack_array(&m.pk, 4);
	msgpack_pack_uint64(&m.pk, HV_CMD_FORMAT);
	msgpack_pack_uint64(&m.pk, HV_CMD_LEASE_ACQUIRE);
	msgpack_pack_uint64(&m.pk, 1);
	mp_str(&m, "hv1", 3);
	assert_int_equal(decode_exact(m.sb.data, m.sb.size, &out), HV_MALFORMED);
	mp_done(&m);

	for (int k = K_U64; k < K_SKIP; k++) {
		struct field f = {
		    .key = "", .kind = (enum kind)k, .u = 5, .s = "abc", .n = 3};
		if (k == K_MAP)
			continue; /* {"a": 1} is a map, missing fields */
		mp_init(&m);
		mp_value(&m, &f);
		assert_int_equal(decode_exact(m.sb.data, m.sb.size, &out), HV_MALFORMED);
		mp_done(&m);
	}
}

static void test_bad_keys(void **state)
{
	struct hv_cmd c = make_cmd(HV_CMD_LEASE_ACQUIRE), out;
	struct mp m;

	(void)state;
	/* An integer key among valid fields. */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 5);
	mp_str(&m, "v", 1);
	msgpack_pack_uint64(&m.pk, HV_CMD_FORMAT);
	mp_str(&m, "t", 1);
	msgpack_pack_uint64(&m.pk, HV_CMD_LEASE_ACQUIRE);
	mp_str(&m, "ts", 2);
	msgpack_pack_uint64(&m.pk, 1);
	mp_str(&m, "name", 4);
	mp_str(&m, "hv1", 3);
	msgpack_pack_uint64(&m.pk, 1);
	msgpack_pack_uint64(&m.pk, 2);
	assert_int_equal(decode_exact(m.sb.data, m.sb.size, &out), HV_MALFORMED);
	mp_done(&m);

	/* Keys are compared whole: "names" and "nam" are not "name". */
	struct spec sp = spec_of(&c);
	field_of(&sp, "name")->key = "names";
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
	field_of(&sp, "names")->key = "nam";
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
	field_of(&sp, "nam")->key = "NAME";
	assert_int_equal(decode_spec(&sp, &out), HV_MALFORMED);
}

/* Unknown string keys are a newer proposer's fields: ignored. */
static void test_unknown_keys_ignored(void **state)
{
	(void)state;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd c = make_cmd(type), out;
		struct spec sp = spec_of(&c);

		sp.f[sp.n++] = (struct field){.key = "future", .kind = K_MAP};
		sp.f[sp.n++] = (struct field){.key = "zz", .kind = K_FLOAT};
		sp.f[sp.n++] = (struct field){.key = "", .kind = K_NIL};
		/* Order does not matter: put the version last. */
		struct field v = sp.f[0];
		sp.f[0] = sp.f[sp.n - 1];
		sp.f[sp.n - 1] = v;
		assert_int_equal(decode_spec(&sp, &out), HV_OK);
		assert_cmd_equal(&c, &out);
	}
}

/*
 * A container header claims far more elements than the buffer could hold.
 * The decoder must refuse such a buffer as malformed, whatever memory is
 * available: every replica has to reach the same verdict, and a few bytes of
 * input must not make it ask for gigabytes.
 */
static void test_huge_container_counts(void **state)
{
	static const unsigned char cases[][8] = {
	    {0xdd, 0xff, 0xff, 0xff, 0xff},                  /* array32, 2^32-1 */
	    {0xdf, 0xff, 0xff, 0xff, 0xff},                  /* map32, 2^32-1 */
	    {0xdd, 0x40, 0x00, 0x00, 0x00},                  /* array32, 2^30 */
	    {0xdf, 0x20, 0x00, 0x00, 0x00},                  /* map32, 2^29 */
	    {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff}, /* nested */
	};
	static const size_t lens[] = {5, 5, 5, 5, 8};

	(void)state;
	for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
		struct hv_cmd out;
		int rv = decode_exact(cases[i], lens[i], &out);

		if (rv != HV_MALFORMED)
			fail_msg("case %zu (%zu bytes claiming a huge container)"
			         ": %s, want MALFORMED",
			         i, lens[i], hv_errname(rv));
	}
}

/* ---- fuzz-ish ----------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static bool text_ok(const char *s, size_t cap)
{
	const char *end = memchr(s, '\0', cap);

	if (end == NULL)
		return false;
	for (const char *p = s; p < end; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* The command with only the fields its type carries (the decoder may also
 * fill in known keys that another type uses; the encoder drops them). */
static struct hv_cmd own_fields(const struct hv_cmd *c)
{
	struct hv_cmd o;

	memset(&o, 0, sizeof o);
	o.type = c->type;
	o.time_ms = c->time_ms;
	switch (c->type) {
	case HV_CMD_MEMBER_ADD:
		o.id = c->id;
		o.role = c->role;
		strcpy(o.name, c->name);
		strcpy(o.address, c->address);
		break;
	case HV_CMD_MEMBER_ROLE:
		o.id = c->id;
		o.role = c->role;
		break;
	case HV_CMD_MEMBER_REMOVE:
		o.id = c->id;
		break;
	case HV_CMD_REPORT:
		strcpy(o.name, c->name);
		strcpy(o.phase, c->phase);
		strcpy(o.version, c->version);
		break;
	case HV_CMD_LEASE_ACQUIRE:
		strcpy(o.name, c->name);
		break;
	case HV_CMD_LEASE_RELEASE:
		strcpy(o.name, c->name);
		o.token = c->token;
		break;
	case HV_CMD_LEASE_BREAK:
		strcpy(o.name, c->name);
		strcpy(o.by, c->by);
		strcpy(o.reason, c->reason);
		break;
	case HV_CMD_PAUSE:
		strcpy(o.by, c->by);
		strcpy(o.reason, c->reason);
		break;
	case HV_CMD_RESUME:
		strcpy(o.by, c->by);
		break;
	case HV_CMD_SETTINGS:
		o.max_concurrent = c->max_concurrent;
		break;
	}
	return o;
}

/* What a successful decode promises about its output. */
static void assert_cmd_valid(const struct hv_cmd *c)
{
	void *buf;
	size_t len;
	struct hv_cmd again, own;

	assert_in_range(c->type, HV_CMD_MEMBER_ADD, HV__CMD_LAST);
	assert_true(text_ok(c->name, sizeof c->name));
	assert_true(text_ok(c->address, sizeof c->address));
	assert_true(text_ok(c->by, sizeof c->by));
	assert_true(text_ok(c->phase, sizeof c->phase));
	assert_true(text_ok(c->version, sizeof c->version));
	assert_true(text_ok(c->reason, sizeof c->reason));
	assert_in_range(c->role, HV_ROLE_STANDBY, HV_ROLE_SPARE);
	switch (c->type) {
	case HV_CMD_MEMBER_ADD:
	case HV_CMD_REPORT:
	case HV_CMD_LEASE_ACQUIRE:
	case HV_CMD_LEASE_RELEASE:
		assert_true(hv_name_valid(c->name));
		break;
	case HV_CMD_LEASE_BREAK:
		assert_true(c->name[0] == '\0' || hv_name_valid(c->name));
		break;
	case HV_CMD_SETTINGS:
		assert_in_range(c->max_concurrent, 1, 16);
		break;
	}
	/* A valid command survives a round trip unchanged. */
	assert_int_equal(hv_cmd_encode(c, NULL, &buf, &len), HV_OK);
	assert_int_equal(decode_exact(buf, len, &again), HV_OK);
	free(buf);
	own = own_fields(c);
	assert_cmd_equal(&own, &again);
}

static void check_any(const unsigned char *buf, size_t len, unsigned *n_ok)
{
	struct hv_cmd out;
	int rv = decode_exact(buf, len, &out);

	assert_in_range(rv, 0, HV__NERR - 1);
	if (rv == HV_OK) {
		assert_cmd_valid(&out);
		(*n_ok)++;
	}
}

static void test_random_bytes(void **state)
{
	unsigned char buf[256];
	unsigned n_ok = 0;

	(void)state;
	rng_state = 0x9e3779b97f4a7c15ull;
	for (unsigned iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rng() % sizeof buf);

		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rng();
		/* Bias half of them towards maps of string keys. */
		if (len > 0 && (iter & 1))
			buf[0] = (unsigned char)(0x80 | (rng() % 16));
		check_any(buf, len, &n_ok);
	}
	print_message("random: %u of 20000 decoded\n", n_ok);
}

/* Valid encodings with a few bytes changed, inserted or removed: these get
 * much deeper into the decoder than random bytes. */
static void test_mutated_encodings(void **state)
{
	unsigned n_ok = 0;

	(void)state;
	rng_state = 12345;
	for (int type = HV_CMD_MEMBER_ADD; type <= HV_CMD_SETTINGS; type++) {
		struct hv_cmd in = make_cmd(type);
		unsigned char *mut;
		void *buf;
		size_t len;

		encode_ok(&in, &buf, &len);
		mut = malloc(len + 8);
		assert_non_null(mut);
		for (unsigned iter = 0; iter < 3000; iter++) {
			size_t mlen = len;
			unsigned n = 1 + (unsigned)(rng() % 3);

			memcpy(mut, buf, len);
			for (unsigned k = 0; k < n; k++) {
				size_t at = (size_t)(rng() % mlen);
				switch (rng() % 4) {
				case 0: /* flip a bit */
					mut[at] ^= (unsigned char)(1u << (rng() % 8));
					break;
				case 1: /* any byte */
					mut[at] = (unsigned char)rng();
					break;
				case 2: /* delete */
					if (mlen > 1) {
						memmove(mut + at, mut + at + 1,
						        mlen - at - 1);
						mlen--;
					}
					break;
				case 3: /* insert */
					if (mlen < len + 8) {
						memmove(mut + at + 1, mut + at,
						        mlen - at);
						mut[at] = (unsigned char)rng();
						mlen++;
					}
					break;
				}
			}
			check_any(mut, mlen, &n_ok);
		}
		free(mut);
		free(buf);
	}
	print_message("mutated: %u of 30000 decoded\n", n_ok);
}

/* ---- small helpers ------------------------------------------------------- */

static void test_name_valid(void **state)
{
	char s[HV_NAME_MAX + 2];

	(void)state;
	assert_true(hv_name_valid("a"));
	assert_true(hv_name_valid("hv-01.rack_3"));
	assert_false(hv_name_valid(""));
	assert_false(hv_name_valid("a b"));
	assert_false(hv_name_valid("a\n"));
	assert_false(hv_name_valid("\xc3\xa9"));
	fill(s, HV_NAME_MAX, 'n');
	assert_true(hv_name_valid(s));
	fill(s, HV_NAME_MAX + 1, 'n');
	assert_false(hv_name_valid(s));
}

static void test_text_copy(void **state)
{
	char dst[8];

	(void)state;
	memset(dst, 'z', sizeof dst);
	assert_int_equal(hv_text_copy(dst, sizeof dst, "1234567"), HV_OK);
	assert_string_equal(dst, "1234567");
	assert_int_not_equal(hv_text_copy(dst, sizeof dst, "12345678"), HV_OK);
	assert_string_equal(dst, "1234567");
	assert_int_not_equal(hv_text_copy(dst, sizeof dst, "a\tb"), HV_OK);
	assert_int_not_equal(hv_text_copy(dst, sizeof dst, "a\x7f"), HV_OK);
	assert_string_equal(dst, "1234567");
	assert_int_equal(hv_text_copy(dst, sizeof dst, ""), HV_OK);
	assert_string_equal(dst, "");
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(hv_cmd_name(HV_CMD_LEASE_ACQUIRE), "lease-acquire");
	assert_string_equal(hv_cmd_name(0), "unknown");
	assert_string_equal(hv_cmd_name(HV__CMD_LAST + 1), "unknown");
	for (int t = HV_CMD_MEMBER_ADD; t <= HV__CMD_LAST; t++) {
		assert_non_null(hv_cmd_name(t));
		assert_string_not_equal(hv_cmd_name(t), "unknown");
		for (int u = HV_CMD_MEMBER_ADD; u < t; u++)
			assert_string_not_equal(hv_cmd_name(t), hv_cmd_name(u));
	}
	assert_string_equal(hv_role_name(HV_ROLE_VOTER), "voter");
	assert_string_equal(hv_role_name(HV_ROLE_STANDBY), "standby");
	assert_string_equal(hv_role_name(HV_ROLE_SPARE), "spare");
	assert_string_equal(hv_role_name(3), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_every_type),
	    cmocka_unit_test(test_roundtrip_limits),
	    cmocka_unit_test(test_roundtrip_break_all),
	    cmocka_unit_test(test_roundtrip_bmc_and_watchdog),
	    cmocka_unit_test(test_encode_only_own_fields),
	    cmocka_unit_test(test_encode_allocator),
	    cmocka_unit_test(test_encode_refuses),
	    cmocka_unit_test(test_truncated_prefixes),
	    cmocka_unit_test(test_trailing_garbage),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_wrong_version),
	    cmocka_unit_test(test_unknown_type),
	    cmocka_unit_test(test_missing_fields),
	    cmocka_unit_test(test_wrong_value_types),
	    cmocka_unit_test(test_strings_too_long),
	    cmocka_unit_test(test_control_chars),
	    cmocka_unit_test(test_invalid_names),
	    cmocka_unit_test(test_ranges),
	    cmocka_unit_test(test_non_map_root),
	    cmocka_unit_test(test_bad_keys),
	    cmocka_unit_test(test_unknown_keys_ignored),
	    cmocka_unit_test(test_huge_container_counts),
	    cmocka_unit_test(test_random_bytes),
	    cmocka_unit_test(test_mutated_encodings),
	    cmocka_unit_test(test_name_valid),
	    cmocka_unit_test(test_text_copy),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
