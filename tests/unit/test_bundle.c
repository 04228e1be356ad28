/*
 * Patch bundles: version order, the create/sign/verify round trip, and one
 * crafted archive per refusal. The crafted bundles are written here with
 * libarchive and signed here with OpenSSL, not with the code under test, so
 * a bug in the writer cannot hide one in the reader. Each refusal checks the
 * exact code and that the message names what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../../lib/err.h"
#include "../../patchfsm/bundle.h"
#include "../../patchfsm/version.h"

#define CREATED 1704067200 /* 2024-01-01T00:00:00Z */
#define NOW 1717200000     /* 2024-06-01T00:00:00Z */
#define BIG_LEN (64 * 1024)

/* ---- version order ------------------------------------------------------- */

static void version_cmp_table(void **state)
{
	static const struct {
		const char *a, *b;
		int want;
	} t[] = {
	    {"1.2.10", "1.2.9", 1},
	    {"2.0", "1.9.9", 1},
	    {"1.0-rc1", "1.0", -1},
	    {"1.0~rc1", "1.0", -1},
	    {"1.0~rc1", "1.0-rc1", -1},
	    {"1.0-rc1", "1.0-rc2", -1},
	    {"1.0-rc2", "1.0-rc10", -1},
	    {"1.0-rc1", "1.0.0", -1},
	    {"1.0", "1.0.1", -1},
	    {"1.0", "1.0", 0},
	    {"1.00", "1.0", 0},
	    {"01.2", "1.2", 0},
	    {"1.0+lab1", "1.0", 1},
	    {"1.0+lab1", "1.0.1", -1},
	    {"1.0a", "1.0", 1},
	    {"1.0a", "1.0.1", -1},
	    {"1.0.0", "1.0", 1},
	    {"10", "9", 1},
	    {"1.123456789012345678901234567890", "1.123456789012345678901234567889", 1},
	    {"1.2.0", "1.2.0-rc3", 1},
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int ab = hv_version_cmp(t[i].a, t[i].b);
		int ba = hv_version_cmp(t[i].b, t[i].a);

		if ((ab > 0) - (ab < 0) != t[i].want || (ba > 0) - (ba < 0) != -t[i].want)
			fail_msg("cmp(%s, %s) = %d, cmp(%s, %s) = %d; want %d", t[i].a,
			         t[i].b, ab, t[i].b, t[i].a, ba, t[i].want);
	}
}

static void version_valid_table(void **state)
{
	static const char *const good[] = {"1",         "1.2.0",      "1.0-rc1",
	                                   "2.0~beta2", "1.2.0+lab3", "0.9a"};
	static const char *const bad[] = {"",
	                                  "v1",
	                                  ".1",
	                                  "-1",
	                                  "1.0 ",
	                                  "1/0",
	                                  "1_0",
	                                  "1.0\n",
	                                  "1234567890123456789012345678901234567"
	                                  "890123456789012345678901234"};

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (!hv_version_valid(good[i]))
			fail_msg("'%s' should be valid", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (hv_version_valid(bad[i]))
			fail_msg("'%s' should be invalid", bad[i]);
	assert_true(hv_version_valid("1234567890123456789012345678901234567890123456789"
	                             "01234567890123")); /* 63 */
}

/* ---- fixture ------------------------------------------------------------- */

struct key {
	char path[128];
	EVP_PKEY *pk;
	char id[HV_KEY_ID_LEN + 1];
};

struct fx {
	char dir[64];
	char keys[96]; /* the trusted directory: signer's .pub only */
	struct key signer, rogue;
	char path[96];   /* the bundle under test */
	char out[96];    /* an extraction directory */
	char src[4][96]; /* local files for create */
	struct hv_verify_opts o;
	struct hv_manifest m;
	char err[1024];
	unsigned char big[BIG_LEN];
};

static void make_key(struct fx *fx, struct key *k, const char *name)
{
	FILE *f;

	snprintf(k->path, sizeof k->path, "%s/%s.key", fx->dir, name);
	assert_int_equal(hv_bundle_keygen(k->path, k->id, fx->err, sizeof fx->err),
	                 HV_OK);
	f = fopen(k->path, "r");
	assert_non_null(f);
	k->pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k->pk);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	char pub[160], dst[160];

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/hvpeer-test-bundle-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->keys, sizeof fx->keys, "%s/trusted", fx->dir);
	assert_int_equal(mkdir(fx->keys, 0755), 0);
	make_key(fx, &fx->signer, "signer");
	make_key(fx, &fx->rogue, "rogue");
	/* Only the signer's public key is trusted; the rogue's stays outside. */
	snprintf(pub, sizeof pub, "%s.pub", fx->signer.path);
	snprintf(dst, sizeof dst, "%s/signer.pub", fx->keys);
	assert_int_equal(rename(pub, dst), 0);
	/* Something that is not a key must not trouble the lookup. */
	snprintf(dst, sizeof dst, "%s/README.pem", fx->keys);
	write_file(dst, "not a key\n", 10);
	snprintf(fx->path, sizeof fx->path, "%s/b.hvb", fx->dir);
	snprintf(fx->out, sizeof fx->out, "%s/out", fx->dir);
	for (size_t i = 0; i < BIG_LEN; i++)
		fx->big[i] = (unsigned char)(i * 2654435761u >> 24);
	fx->o.trusted_dir = fx->keys;
	fx->o.now = NOW;
	*state = fx;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	EVP_PKEY_free(fx->signer.pk);
	EVP_PKEY_free(fx->rogue.pk);
	free(fx);
	return 0;
}

/* Fail unless the message names s. */
static void assert_says(const struct fx *fx, const char *s)
{
	if (strstr(fx->err, s) == NULL)
		fail_msg("message \"%s\" does not name \"%s\"", fx->err, s);
}

static int verify(struct fx *fx)
{
	fx->err[0] = '\0';
	return hv_bundle_verify(fx->path, &fx->o, &fx->m, fx->err, sizeof fx->err);
}

/* Entries in a directory tree, recursively; -1 when it does not exist. */
static int count_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char sub[512];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_tree(sub);
	}
	closedir(d);
	return n;
}

/* ---- crafting bundles ---------------------------------------------------- */

struct tent {
	const char *name;
	const void *data;
	size_t len;
	unsigned type;    /* AE_IF*; 0: regular file */
	const char *link; /* symlink or hardlink target */
	bool hardlink;
};

static struct tent reg(const char *name, const void *data, size_t len)
{
	return (struct tent){.name = name, .data = data, .len = len};
}

static void write_tar(const char *path, const struct tent *t, size_t n, bool gzip)
{
	struct archive *w = archive_write_new();

	assert_non_null(w);
	assert_int_equal(archive_write_set_format_pax_restricted(w), ARCHIVE_OK);
	if (gzip)
		assert_int_equal(archive_write_add_filter_gzip(w), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(w, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		unsigned type = t[i].type != 0 ? t[i].type : AE_IFREG;
		bool data = type == AE_IFREG && !t[i].hardlink;

		archive_entry_set_pathname(e, t[i].name);
		archive_entry_set_filetype(e, type);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_mtime(e, CREATED, 0);
		archive_entry_set_size(e, data ? (la_int64_t)t[i].len : 0);
		if (type == AE_IFLNK)
			archive_entry_set_symlink(e, t[i].link);
		if (t[i].hardlink)
			archive_entry_set_hardlink(e, t[i].link);
		if (type == AE_IFCHR)
			archive_entry_set_rdev(e, makedev(1, 3));
		assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
		if (data && t[i].len > 0)
			assert_int_equal(archive_write_data(w, t[i].data, t[i].len),
			                 (la_ssize_t)t[i].len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(w), ARCHIVE_OK);
	archive_write_free(w);
}

static void sha256_hex(const void *data, size_t len, char out[HV_DIGEST_LEN + 1])
{
	static const char x[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;

	assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = x[md[i] >> 4];
		out[2 * i + 1] = x[md[i] & 15];
	}
	out[64] = '\0';
}

struct cfile {
	const char *path;
	const void *data; /* what the archive holds */
	size_t len;
	const char *listed; /* what the manifest's sha256 is of; NULL: data */
	long long size;     /* what the manifest declares; -1: len */
	bool omit;          /* listed, but left out of the archive */
};

struct craft {
	int format;
	const char *version, *min_version, *host_class, *expires;
	struct cfile files[4];
	size_t n_files;
	const char *validate;      /* the validate hook's path, or NULL */
	const char *manifest_text; /* instead of the generated one */
	const struct key *key;     /* NULL: unsigned */
	const char *signed_text;   /* sign these bytes instead of the manifest */
	const char *raw_sig;       /* manifest.sig's text, instead of signing */
	bool manifest_not_first;
	struct tent extra[4]; /* appended raw entries */
	size_t n_extra;
	bool gzip;
};

static void craft_init(struct fx *fx, struct craft *c)
{
	memset(c, 0, sizeof *c);
	c->format = 1;
	c->version = "1.2.0";
	c->host_class = "lab-x86_64";
	c->files[0] = (struct cfile){"payload/a.txt", "hello\n", 6, NULL, -1, false};
	c->files[1] =
	    (struct cfile){"hooks/health.sh", "#!/bin/sh\nexit 0\n", 17, NULL, -1, false};
	c->n_files = 2;
	c->validate = "hooks/health.sh";
	c->key = &fx->signer;
}

static char *manifest_text(const struct craft *c)
{
	struct json_object *o = json_object_new_object(),
	                   *files = json_object_new_array();
	char *text;

	json_object_object_add(o, "format", json_object_new_int(c->format));
	json_object_object_add(o, "name", json_object_new_string("kernel-fix"));
	json_object_object_add(o, "version", json_object_new_string(c->version));
	if (c->min_version != NULL)
		json_object_object_add(o, "min-version",
		                       json_object_new_string(c->min_version));
	json_object_object_add(o, "host-class", json_object_new_string(c->host_class));
	json_object_object_add(o, "created",
	                       json_object_new_string("2024-01-01T00:00:00Z"));
	if (c->expires != NULL)
		json_object_object_add(o, "expires", json_object_new_string(c->expires));
	for (size_t i = 0; i < c->n_files; i++) {
		const struct cfile *f = &c->files[i];
		struct json_object *j = json_object_new_object();
		char hex[HV_DIGEST_LEN + 1];

		if (f->listed != NULL)
			sha256_hex(f->listed, strlen(f->listed), hex);
		else
			sha256_hex(f->data, f->len, hex);
		json_object_object_add(j, "path", json_object_new_string(f->path));
		json_object_object_add(
		    j, "size",
		    json_object_new_int64(f->size >= 0 ? f->size : (int64_t)f->len));
		json_object_object_add(j, "sha256", json_object_new_string(hex));
		json_object_array_add(files, j);
	}
	json_object_object_add(o, "files", files);
	if (c->validate != NULL) {
		struct json_object *h = json_object_new_object();

		json_object_object_add(h, "validate",
		                       json_object_new_string(c->validate));
		json_object_object_add(o, "hooks", h);
	}
	text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	assert_non_null(text);
	return text;
}

/* manifest.sig for text, signed with k. */
static void sign_text(const struct key *k, const char *text, char *out, size_t n)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char sig[64], b64[89];
	size_t len = sizeof sig;

	assert_non_null(c);
	assert_int_equal(EVP_DigestSignInit(c, NULL, NULL, NULL, k->pk), 1);
	assert_int_equal(
	    EVP_DigestSign(c, sig, &len, (const unsigned char *)text, strlen(text)), 1);
	EVP_MD_CTX_free(c);
	assert_int_equal(EVP_EncodeBlock(b64, sig, 64), 88);
	snprintf(out, n,
	         "{\"algorithm\":\"ed25519\",\"key-id\":\"%s\",\"signature\":\"%s\"}",
	         k->id, (const char *)b64);
}

static void build(struct fx *fx, const struct craft *c)
{
	char *gen = c->manifest_text == NULL ? manifest_text(c) : NULL;
	const char *man = gen != NULL ? gen : c->manifest_text;
	struct tent t[16];
	char sig[256];
	size_t n = 0;

	if (c->manifest_not_first)
		t[n++] = reg(c->files[0].path, c->files[0].data, c->files[0].len);
	t[n++] = reg("manifest.json", man, strlen(man));
	if (c->raw_sig != NULL) {
		t[n++] = reg("manifest.sig", c->raw_sig, strlen(c->raw_sig));
	} else if (c->key != NULL) {
		sign_text(c->key, c->signed_text != NULL ? c->signed_text : man, sig,
		          sizeof sig);
		t[n++] = reg("manifest.sig", sig, strlen(sig));
	}
	for (size_t i = 0; i < c->n_files; i++)
		if (!c->files[i].omit && !(c->manifest_not_first && i == 0))
			t[n++] = reg(c->files[i].path, c->files[i].data, c->files[i].len);
	for (size_t i = 0; i < c->n_extra; i++)
		t[n++] = c->extra[i];
	write_tar(fx->path, t, n, c->gzip);
	free(gen);
}

/* Build c and expect verify to refuse it with code, naming each of what. */
static void refused(struct fx *fx, const struct craft *c, int code, const char *what1,
                    const char *what2)
{
	build(fx, c);
	fx->o.extract_dir = fx->out;
	if (verify(fx) != code)
		fail_msg("want %s, got: %s", hv_errname(code), fx->err);
	assert_says(fx, fx->path);
	if (what1 != NULL)
		assert_says(fx, what1);
	if (what2 != NULL)
		assert_says(fx, what2);
	/* Nothing extracted, not even the directory. */
	assert_int_equal(count_tree(fx->out), -1);
}

/* ---- the happy paths ----------------------------------------------------- */

static void crafted_bundle_verifies(void **state)
{
	struct fx *fx = *state;
	struct craft c;
	char digest[HV_DIGEST_LEN + 1];

	craft_init(fx, &c);
	build(fx, &c);
	fx->o.installed_version = "1.2.0"; /* equal is the caller's call */
	fx->o.floor_version = "1.1.0";
	fx->o.host_class = "lab-x86_64";
	assert_int_equal(verify(fx), HV_OK);
	assert_string_equal(fx->m.name, "kernel-fix");
	assert_string_equal(fx->m.version, "1.2.0");
	assert_string_equal(fx->m.key_id, fx->signer.id);
	assert_int_equal(fx->m.n_files, 2);
	assert_int_equal(fx->m.total_size, 23);
	assert_int_equal(fx->m.created, CREATED);
	assert_int_equal(fx->m.expires, 0);
	assert_string_equal(fx->m.hooks[HV_HOOK_VALIDATE], "hooks/health.sh");
	assert_string_equal(fx->m.hooks[HV_HOOK_PRE_APPLY], "");
	assert_int_equal(hv_bundle_digest(fx->path, digest, fx->err, sizeof fx->err),
	                 HV_OK);
	assert_string_equal(fx->m.digest, digest);
}

static void gzip_bundle_verifies(void **state)
{
	struct fx *fx = *state;
	struct craft c;
	char digest[HV_DIGEST_LEN + 1];

	craft_init(fx, &c);
	c.gzip = true;
	build(fx, &c);
	assert_int_equal(verify(fx), HV_OK);
	/* The digest is of the file as it is, compressed. */
	assert_int_equal(hv_bundle_digest(fx->path, digest, fx->err, sizeof fx->err),
	                 HV_OK);
	assert_string_equal(fx->m.digest, digest);
}

/* The first entry's bytes, as a reader sees them. */
static char *first_entry(const char *path, size_t *len)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char *buf;

	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(e), "manifest.json");
	*len = (size_t)archive_entry_size(e);
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(archive_read_data(a, buf, *len), (la_ssize_t)*len);
	archive_read_free(a);
	return buf;
}

static void round_trip(void **state)
{
	struct fx *fx = *state;
	struct hv_bundle_input in[3];
	struct hv_bundle_spec spec = {
	    .name = "kernel-fix",
	    .version = "1.3.0",
	    .min_version = "1.0.0",
	    .host_class = "lab-x86_64",
	    .created = CREATED,
	    .expires = NOW + 86400,
	    .files = in,
	    .n_files = 3,
	};
	char id[HV_KEY_ID_LEN + 1], digest[HV_DIGEST_LEN + 1], p[160];
	char *before, *after;
	size_t blen, alen;
	struct stat st;

	for (int i = 0; i < 3; i++)
		snprintf(fx->src[i], sizeof fx->src[i], "%s/src%d", fx->dir, i);
	write_file(fx->src[0], "hello\n", 6);
	write_file(fx->src[1], fx->big, BIG_LEN);
	write_file(fx->src[2], "#!/bin/sh\nexit 0\n", 17);
	in[0] = (struct hv_bundle_input){"payload/a.txt", fx->src[0]};
	in[1] = (struct hv_bundle_input){"payload/sub/big.bin", fx->src[1]};
	in[2] = (struct hv_bundle_input){"hooks/health.sh", fx->src[2]};
	spec.hooks[HV_HOOK_VALIDATE] = "hooks/health.sh";
	assert_int_equal(hv_bundle_create(fx->path, &spec, fx->err, sizeof fx->err),
	                 HV_OK);

	/* Unsigned: refused, with the way to sign it. */
	fx->o.extract_dir = fx->out;
	assert_int_equal(verify(fx), HV_BADSIG);
	assert_says(fx, "is not signed");
	assert_says(fx, "hvpeer bundle sign --key KEY");
	assert_int_equal(count_tree(fx->out), -1);

	/* The unverified view reads it all the same. */
	assert_int_equal(hv_bundle_inspect(fx->path, &fx->m, fx->err, sizeof fx->err),
	                 HV_OK);
	assert_string_equal(fx->m.key_id, "");
	assert_int_equal(fx->m.n_files, 3);

	before = first_entry(fx->path, &blen);
	assert_int_equal(
	    hv_bundle_sign(fx->path, fx->signer.path, id, fx->err, sizeof fx->err),
	    HV_OK);
	assert_string_equal(id, fx->signer.id);
	after = first_entry(fx->path, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(before, after, blen);
	free(before);
	free(after);

	fx->o.installed_version = "1.2.0";
	fx->o.floor_version = "1.3.0";
	fx->o.host_class = "lab-x86_64";
	assert_int_equal(verify(fx), HV_OK);
	assert_string_equal(fx->m.name, "kernel-fix");
	assert_string_equal(fx->m.version, "1.3.0");
	assert_string_equal(fx->m.min_version, "1.0.0");
	assert_string_equal(fx->m.key_id, fx->signer.id);
	assert_int_equal(fx->m.expires, NOW + 86400);
	assert_int_equal(fx->m.total_size, 6 + BIG_LEN + 17);
	assert_int_equal(hv_bundle_digest(fx->path, digest, fx->err, sizeof fx->err),
	                 HV_OK);
	assert_string_equal(fx->m.digest, digest);

	/* Exactly the files, with their modes: payload 0644, hooks 0755. */
	assert_int_equal(count_tree(fx->out), 6); /* 3 files, payload/{,sub/}, hooks/ */
	snprintf(p, sizeof p, "%s/payload/sub/big.bin", fx->out);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, BIG_LEN);
	assert_int_equal(st.st_mode & 07777, 0644);
	snprintf(p, sizeof p, "%s/hooks/health.sh", fx->out);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	snprintf(p, sizeof p, "%s/payload/a.txt", fx->out);
	{
		char buf[16] = {0};
		FILE *f = fopen(p, "r");

		assert_non_null(f);
		assert_int_equal(fread(buf, 1, sizeof buf, f), 6);
		fclose(f);
		assert_string_equal(buf, "hello\n");
	}

	/* Signing again replaces the signature: same bytes, same digest
	 * (Ed25519 is deterministic); by another key, that key is named. */
	assert_int_equal(
	    hv_bundle_sign(fx->path, fx->signer.path, NULL, fx->err, sizeof fx->err),
	    HV_OK);
	fx->o.extract_dir = NULL;
	assert_int_equal(verify(fx), HV_OK);
	assert_string_equal(fx->m.digest, digest);
	assert_int_equal(
	    hv_bundle_sign(fx->path, fx->rogue.path, NULL, fx->err, sizeof fx->err),
	    HV_OK);
	assert_int_equal(verify(fx), HV_UNKNOWNKEY);
	assert_says(fx, fx->rogue.id);
}

static void keygen_and_key_ids(void **state)
{
	struct fx *fx = *state;
	char id[HV_KEY_ID_LEN + 1], pub[160], want[HV_DIGEST_LEN + 1];
	unsigned char *der = NULL;
	struct stat st;
	int n;

	/* The id is the first 16 bytes of SHA-256 over the SPKI DER. */
	n = i2d_PUBKEY(fx->signer.pk, &der);
	assert_true(n > 0);
	sha256_hex(der, (size_t)n, want);
	OPENSSL_free(der);
	want[HV_KEY_ID_LEN] = '\0';
	assert_string_equal(fx->signer.id, want);

	assert_int_equal(stat(fx->rogue.path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(pub, sizeof pub, "%s.pub", fx->rogue.path);
	assert_int_equal(hv_bundle_key_id(pub, id, fx->err, sizeof fx->err), HV_OK);
	assert_string_equal(id, fx->rogue.id);
	assert_int_equal(hv_bundle_key_id(fx->rogue.path, id, fx->err, sizeof fx->err),
	                 HV_OK);
	assert_string_equal(id, fx->rogue.id);

	/* Never overwrite a key, nor leave half a pair behind. */
	assert_int_equal(hv_bundle_keygen(fx->rogue.path, id, fx->err, sizeof fx->err),
	                 HV_EXISTS);
	assert_says(fx, fx->rogue.path);
	assert_int_equal(hv_bundle_key_id(fx->rogue.path, id, fx->err, sizeof fx->err),
	                 HV_OK);
	assert_string_equal(id, fx->rogue.id);
	snprintf(pub, sizeof pub, "%s/lone.key.pub", fx->dir);
	write_file(pub, "x", 1);
	snprintf(pub, sizeof pub, "%s/lone.key", fx->dir);
	assert_int_equal(hv_bundle_keygen(pub, id, fx->err, sizeof fx->err), HV_EXISTS);
	assert_int_equal(access(pub, F_OK), -1);

	/* A public key cannot sign. */
	snprintf(pub, sizeof pub, "%s/signer.pub", fx->keys);
	{
		struct craft c;

		craft_init(fx, &c);
		c.key = NULL;
		build(fx, &c);
	}
	assert_int_equal(hv_bundle_sign(fx->path, pub, NULL, fx->err, sizeof fx->err),
	                 HV_INVAL);
	assert_says(fx, pub);
}

/* ---- refusals ------------------------------------------------------------ */

static void refuses_unsigned(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.key = NULL;
	refused(fx, &c, HV_BADSIG, "is not signed", "hvpeer bundle sign --key KEY");
}

static void refuses_untrusted_key(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.key = &fx->rogue;
	refused(fx, &c, HV_UNKNOWNKEY, fx->rogue.id, fx->keys);
}

static void refuses_signature_over_other_bytes(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.signed_text = "{\"format\":1}";
	refused(fx, &c, HV_BADSIG, "does not match manifest.json", fx->signer.id);
}

static void refuses_garbled_signature(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.raw_sig = "{\"algorithm\":\"rsa\",\"key-id\":\"00\",\"signature\":\"AA==\"}";
	refused(fx, &c, HV_BADSIG, "manifest.sig", "\"rsa\"");
	c.raw_sig = "not json";
	refused(fx, &c, HV_BADSIG, "manifest.sig is not a JSON object", NULL);
	/* A signature anywhere but second is no signature. */
	c.raw_sig = NULL;
	c.key = NULL;
	c.extra[c.n_extra++] = reg("manifest.sig", "{}", 2);
	refused(fx, &c, HV_BADSIG, "is not signed", NULL);
}

static void refuses_tampered_payload(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.files[1].listed = "#!/bin/sh\nexit 1\n"; /* same length, other bytes */
	refused(fx, &c, HV_DIGEST, "hooks/health.sh", "SHA-256");
}

static void refuses_missing_file(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.files[0].omit = true;
	refused(fx, &c, HV_DIGEST, "payload/a.txt", "not in the archive");
}

static void refuses_unlisted_file(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.extra[c.n_extra++] = reg("payload/evil.sh", "rm -rf /\n", 9);
	refused(fx, &c, HV_DIGEST, "payload/evil.sh", "not listed");
}

static void refuses_short_file(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.files[0].size = 7; /* the archive holds 6 */
	refused(fx, &c, HV_DIGEST, "payload/a.txt", "6 bytes");
}

static void refuses_file_larger_than_declared(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.files[0].size = 5; /* the archive holds 6 */
	refused(fx, &c, HV_OVERSIZE, "payload/a.txt", "larger than the 5 bytes");
}

static void refuses_older_than_installed(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.version = "1.1.9";
	fx->o.installed_version = "1.2.0";
	refused(fx, &c, HV_ROLLBACK, "1.1.9", "installed version 1.2.0");
}

static void refuses_older_than_floor(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.version = "1.2.0-rc1";
	fx->o.floor_version = "1.2.0";
	refused(fx, &c, HV_ROLLBACK, "1.2.0-rc1", "older than 1.2.0");
}

static void refuses_installed_below_min_version(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.min_version = "1.1.0";
	fx->o.installed_version = "1.0.5";
	refused(fx, &c, HV_ROLLBACK, "applies on 1.1.0 or later", "has 1.0.5");
}

static void refuses_expired(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.expires = "2024-03-01T00:00:00Z";
	refused(fx, &c, HV_EXPIRED, "expired on 2024-03-01T00:00:00Z", NULL);
	/* Before that moment it is good. */
	fx->o.now = 1709251199; /* 2024-02-29T23:59:59Z */
	fx->o.extract_dir = NULL;
	assert_int_equal(verify(fx), HV_OK);
}

static void refuses_other_host_class(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	fx->o.host_class = "prod-arm64";
	refused(fx, &c, HV_HOSTCLASS, "host class lab-x86_64", "class prod-arm64");
}

static void refuses_truncated_archive(void **state)
{
	struct fx *fx = *state;
	struct craft c;
	struct stat st;

	craft_init(fx, &c);
	c.files[0] = (struct cfile){"payload/big.bin", fx->big, BIG_LEN, NULL, -1, false};
	build(fx, &c);
	fx->o.extract_dir = fx->out;
	assert_int_equal(verify(fx), HV_OK);
	assert_int_equal(count_tree(fx->out), 4);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(truncate(fx->path, st.st_size / 2), 0);
	fx->o.extract_dir = NULL;
	assert_int_equal(verify(fx), HV_TRUNCATED);
	assert_says(fx, fx->path);
	assert_says(fx, "truncated");
}

static void refuses_dotdot_path(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.extra[c.n_extra++] = reg("payload/../../x", "x", 1);
	refused(fx, &c, HV_UNSAFEPATH, "payload/../../x", "'..'");
}

static void refuses_absolute_path(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.extra[c.n_extra++] = reg("/etc/cron.d/x", "x", 1);
	refused(fx, &c, HV_UNSAFEPATH, "/etc/cron.d/x", "absolute");
}

static void refuses_symlink(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.extra[c.n_extra++] = (struct tent){.name = "payload/link",
	                                     .type = AE_IFLNK,
	                                     .link = "/etc/shadow",
	                                     .hardlink = false};
	refused(fx, &c, HV_UNSAFEPATH, "payload/link", "symbolic link to /etc/shadow");
}

static void refuses_hardlink(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.extra[c.n_extra++] = (struct tent){.name = "payload/hl",
	                                     .type = AE_IFREG,
	                                     .link = "payload/a.txt",
	                                     .hardlink = true};
	refused(fx, &c, HV_UNSAFEPATH, "payload/hl", "hard link");
}

static void refuses_device(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.extra[c.n_extra++] = (struct tent){
	    .name = "payload/null", .type = AE_IFCHR, .link = NULL, .hardlink = false};
	refused(fx, &c, HV_UNSAFEPATH, "payload/null", "device");
}

static void refuses_duplicate_entry(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.extra[c.n_extra++] = reg("payload/a.txt", "hello\n", 6);
	refused(fx, &c, HV_UNSAFEPATH, "payload/a.txt", "twice");
}

static void refuses_unsafe_manifest_path(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.files[0].path = "payload/../../etc/passwd";
	refused(fx, &c, HV_UNSAFEPATH, "payload/../../etc/passwd", "'..'");
}

static void refuses_oversized_payload(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	fx->o.max_payload = 22; /* the payload is 23 bytes */
	refused(fx, &c, HV_OVERSIZE, "23 bytes", "limit of 22");
	fx->o.max_payload = 23;
	fx->o.extract_dir = NULL;
	assert_int_equal(verify(fx), HV_OK);
}

static void refuses_manifest_not_first(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.manifest_not_first = true;
	refused(fx, &c, HV_MALFORMED, "payload/a.txt", "not manifest.json");
}

static void refuses_unknown_format(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.format = 2;
	refused(fx, &c, HV_MALFORMED, "format 2", "newer hvpeer");
}

static void refuses_malformed_manifest(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	craft_init(fx, &c);
	c.manifest_text = "{\"format\":1,\"name\":\"x\",";
	refused(fx, &c, HV_MALFORMED, "manifest.json", NULL);
	c.manifest_text = "{\"format\":1,\"name\":\"x\",\"version\":\"v2\"}";
	refused(fx, &c, HV_MALFORMED, "\"version\"", NULL);
}

/* ---- extraction ---------------------------------------------------------- */

static void failed_extraction_leaves_nothing(void **state)
{
	struct fx *fx = *state;
	struct craft c;

	/* a.txt is good and extracted before the bad big.bin is read. */
	craft_init(fx, &c);
	c.files[1] =
	    (struct cfile){"payload/sub/big.bin", fx->big, BIG_LEN, "other", -1, false};
	c.files[1].size = BIG_LEN;
	c.validate = NULL;
	build(fx, &c);
	assert_int_equal(mkdir(fx->out, 0755), 0);
	fx->o.extract_dir = fx->out;
	assert_int_equal(verify(fx), HV_DIGEST);
	assert_says(fx, "payload/sub/big.bin");
	/* The directory was there before: it stays, empty. */
	assert_int_equal(count_tree(fx->out), 0);
}

static void extraction_never_follows_links(void **state)
{
	struct fx *fx = *state;
	char elsewhere[160], link[160];
	struct craft c;

	/* hooks/ first, so that there is something to take back. */
	craft_init(fx, &c);
	c.files[2] = c.files[0];
	c.files[0] = c.files[1];
	c.files[1] = c.files[2];
	build(fx, &c);
	snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", fx->dir);
	assert_int_equal(mkdir(elsewhere, 0755), 0);
	assert_int_equal(mkdir(fx->out, 0755), 0);
	snprintf(link, sizeof link, "%s/payload", fx->out);
	assert_int_equal(symlink(elsewhere, link), 0);
	fx->o.extract_dir = fx->out;
	assert_int_equal(verify(fx), HV_IO);
	assert_says(fx, "payload");
	assert_int_equal(count_tree(elsewhere), 0);
	/* What it had made (hooks/) is gone; the operator's link stays. */
	assert_int_equal(count_tree(fx->out), 1);
}

static void sign_refuses_a_tampered_bundle(void **state)
{
	struct fx *fx = *state;
	struct craft c;
	int n;

	craft_init(fx, &c);
	c.key = NULL;
	c.files[0].listed = "jello\n";
	build(fx, &c);
	n = count_tree(fx->dir);
	assert_int_equal(
	    hv_bundle_sign(fx->path, fx->signer.path, NULL, fx->err, sizeof fx->err),
	    HV_DIGEST);
	assert_says(fx, "payload/a.txt");
	assert_int_equal(count_tree(fx->dir), n); /* no temporary file left */
	/* Unchanged: still unsigned. */
	assert_int_equal(verify(fx), HV_BADSIG);
	assert_says(fx, "not signed");
}

static void manifest_json_output(void **state)
{
	struct fx *fx = *state;
	struct json_object *j, *v;
	struct craft c;

	craft_init(fx, &c);
	c.expires = "2024-12-31T23:59:59Z";
	build(fx, &c);
	assert_int_equal(verify(fx), HV_OK);
	j = hv_manifest_to_json(&fx->m);
	assert_non_null(j);
	assert_true(json_object_object_get_ex(j, "key-id", &v));
	assert_string_equal(json_object_get_string(v), fx->signer.id);
	assert_true(json_object_object_get_ex(j, "expires", &v));
	assert_string_equal(json_object_get_string(v), "2024-12-31T23:59:59Z");
	assert_true(json_object_object_get_ex(j, "files", &v));
	assert_int_equal(json_object_array_length(v), 2);
	assert_true(json_object_object_get_ex(j, "digest", &v));
	assert_string_equal(json_object_get_string(v), fx->m.digest);
	json_object_put(j);
}

static void rfc3339(void **state)
{
	time_t t = 0;
	char s[21];

	assert_int_equal(hv_rfc3339_parse("2024-06-01T00:00:00Z", &t), HV_OK);
	assert_int_equal(t, NOW);
	hv_rfc3339_format(NOW, s);
	assert_string_equal(s, "2024-06-01T00:00:00Z");
	assert_int_equal(hv_rfc3339_parse("2024-02-30T00:00:00Z", &t), HV_INVAL);
	assert_int_equal(hv_rfc3339_parse("2024-06-01T00:00:00+02:00", &t), HV_INVAL);
	assert_int_equal(hv_rfc3339_parse("2024-06-01 00:00:00Z", &t), HV_INVAL);
	assert_int_equal(hv_rfc3339_parse("2024-06-01T00:00:00", &t), HV_INVAL);
}

/* A declared size above INT64_MAX shows as itself, not as a negative
 * number, and the JSON shown parses back to the same manifest (found by
 * fuzz/fuzz_manifest.c; the input is in fuzz/regressions/manifest). */
static void manifest_huge_size_round_trip(void **state)
{
	static const char text[] =
	    "{\"format\": 1, \"name\": \"big\", \"version\": \"1.0\", "
	    "\"host-class\": \"lab\", \"created\": \"2024-05-01T12:00:00Z\", "
	    "\"files\": [{\"path\": \"payload/a\", \"size\": 18446744073709551615, "
	    "\"sha256\": "
	    "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]}";
	struct hv_manifest *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	struct json_object *o, *files, *size;
	const char *shown;
	char err[512];

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(hv_bundle_manifest_parse("big.bundle", text, strlen(text), a,
	                                          err, sizeof err),
	                 HV_OK);
	assert_true(a->files[0].size == UINT64_MAX && a->total_size == UINT64_MAX);
	o = hv_manifest_to_json(a);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "files", &files));
	size = json_object_object_get(json_object_array_get_idx(files, 0), "size");
	assert_non_null(size);
	assert_true(json_object_get_uint64(size) == UINT64_MAX);
	shown = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_non_null(strstr(shown, "\"size\":18446744073709551615"));
	assert_int_equal(hv_bundle_manifest_parse("big.bundle", shown, strlen(shown), b,
	                                          err, sizeof err),
	                 HV_OK);
	assert_memory_equal(a, b, sizeof *a);
	json_object_put(o);
	free(a);
	free(b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(version_cmp_table),
	    cmocka_unit_test(version_valid_table),
	    cmocka_unit_test(rfc3339),
	    cmocka_unit_test(manifest_huge_size_round_trip),
	    T(crafted_bundle_verifies),
	    T(gzip_bundle_verifies),
	    T(round_trip),
	    T(keygen_and_key_ids),
	    T(refuses_unsigned),
	    T(refuses_untrusted_key),
	    T(refuses_signature_over_other_bytes),
	    T(refuses_garbled_signature),
	    T(refuses_tampered_payload),
	    T(refuses_missing_file),
	    T(refuses_unlisted_file),
	    T(refuses_short_file),
	    T(refuses_file_larger_than_declared),
	    T(refuses_older_than_installed),
	    T(refuses_older_than_floor),
	    T(refuses_installed_below_min_version),
	    T(refuses_expired),
	    T(refuses_other_host_class),
	    T(refuses_truncated_archive),
	    T(refuses_dotdot_path),
	    T(refuses_absolute_path),
	    T(refuses_symlink),
	    T(refuses_hardlink),
	    T(refuses_device),
	    T(refuses_duplicate_entry),
	    T(refuses_unsafe_manifest_path),
	    T(refuses_oversized_payload),
	    T(refuses_manifest_not_first),
	    T(refuses_unknown_format),
	    T(refuses_malformed_manifest),
	    T(failed_extraction_leaves_nothing),
	    T(extraction_never_follows_links),
	    T(sign_refuses_a_tampered_bundle),
	    T(manifest_json_output),
	};

	return cmocka_run_group_tests_name("bundle", tests, NULL, NULL);
}
