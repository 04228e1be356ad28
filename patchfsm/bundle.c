/*
 * Signed patch bundles (the format is in bundle.h).
 *
 * A bundle is read once, front to back, through libarchive; the read
 * callback hashes the raw bytes on the way, so the archive's digest comes
 * with the pass. The order of the checks is the security argument: nothing
 * the manifest says is believed before its signature checked out against a
 * trusted key, and nothing is written to disk before the policy passed and
 * the entry is known to be a listed regular file of the declared size.
 * Payload is hashed in 64 KiB pieces, never held whole.
 *
 * Failure modes: every refusal is its own HV_* code with a message naming
 * the bundle, the entry and what to do. An extraction that fails half-way
 * removes what it wrote; create and sign write a temporary file next to the
 * target and rename it, so a crash leaves the old file or the new one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../lib/err.h"
#include "bundle.h"

#define BUF_SIZE (64 * 1024)
#define SIG_LEN HV_BUNDLE_SIG_LEN
#define SIG_B64_LEN 88 /* base64 of 64 bytes, with "==" */
#define KEY_FILE_MAX (64 * 1024)
#define SHOWN_MAX 300 /* an archive name as printed in a message */

static const char *const hook_names[HV__HOOK_N] = {
    [HV_HOOK_PRE_APPLY] = "pre-apply",
    [HV_HOOK_POST_APPLY] = "post-apply",
    [HV_HOOK_VALIDATE] = "validate",
};

const char *hv_hook_name(int hook)
{
	return hook >= 0 && hook < HV__HOOK_N ? hook_names[hook] : "unknown";
}

int hv_hook_parse(const char *s)
{
	for (int i = 0; i < HV__HOOK_N; i++)
		if (strcmp(hook_names[i], s) == 0)
			return i;
	return -1;
}

/* ---- small helpers ------------------------------------------------------- */

#define fail hv_errf /* lib/err.h */

/* The reason of the last OpenSSL error, for a message; clears the queue so
 * that a later caller does not see a stale error. */
static const char *ssl_reason(char *buf, size_t n)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, n, "%s", r != NULL ? r : "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}

/* A name from an archive as it may appear in a message: control and
 * non-ASCII bytes become '?', so a crafted name cannot drive the terminal. */
static const char *clean(const char *s, char *buf, size_t n)
{
	size_t i = 0;

	if (s == NULL)
		s = "(unreadable name)";
	for (; *s != '\0' && i + 4 < n; s++) {
		unsigned char c = (unsigned char)*s;
		buf[i++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	if (*s != '\0')
		memcpy(buf + i, "...", 4);
	else
		buf[i] = '\0';
	return buf;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
	static const char x[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = x[b[i] >> 4];
		out[2 * i + 1] = x[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == n;
}

static bool is_alnum(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Bundle names and host classes: 1..63 of [A-Za-z0-9._-]. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > HV_BUNDLE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && strchr("._-", s[i]) == NULL)
			return false;
	return true;
}

/* Why p would land outside the directory it is extracted to, or NULL. */
static const char *escape_problem(const char *p)
{
	if (p[0] == '/')
		return "is an absolute path";
	for (const char *c = p; *c != '\0';) {
		size_t n = strcspn(c, "/");

		if (n == 2 && c[0] == '.' && c[1] == '.')
			return "has a '..' component";
		c += n;
		if (*c == '/')
			c++;
	}
	return NULL;
}

/* Why p is not a well-formed bundle path (other than escaping), or NULL. */
static const char *path_problem(const char *p)
{
	size_t n = strlen(p);

	if (n == 0)
		return "is empty";
	if (n > HV_BUNDLE_PATH_MAX)
		return "is longer than 255 characters";
	for (const char *c = p; *c != '\0';) {
		size_t k = strcspn(c, "/");

		if (k == 0)
			return "has an empty component";
		if (k == 1 && c[0] == '.')
			return "has a '.' component";
		for (size_t i = 0; i < k; i++)
			if (!is_alnum(c[i]) && strchr("._+~@=,:-", c[i]) == NULL)
				return "has a character outside [A-Za-z0-9._+~@=,:-/]";
		c += k;
		if (*c == '/' && *++c == '\0')
			return "ends with '/'";
	}
	if (strncmp(p, "payload/", 8) != 0 && strncmp(p, "hooks/", 6) != 0)
		return "is not under payload/ or hooks/";
	return NULL;
}

static bool is_hook_path(const char *p)
{
	return strncmp(p, "hooks/", 6) == 0;
}

int hv_rfc3339_parse(const char *s, time_t *t)
{
	struct tm tm = {0};
	const char *end;
	char back[21];

	if (s == NULL || strlen(s) != 20)
		return HV_INVAL;
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return HV_INVAL;
	*t = timegm(&tm);
	/* strptime takes a 31st of February; the round trip does not. */
	hv_rfc3339_format(*t, back);
	return strcmp(back, s) == 0 ? HV_OK : HV_INVAL;
}

void hv_rfc3339_format(time_t t, char out[21])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
		snprintf(out, 21, "(bad time)");
}

/* Write all of buf to fd. */
static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t read_some(int fd, void *buf, size_t n)
{
	ssize_t r;

	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* ---- keys ---------------------------------------------------------------- */

/* Never prompt: a bundle tool runs unattended, and an encrypted key is an
 * error to report, not a question to ask on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int key_id_of(EVP_PKEY *key, char id[HV_KEY_ID_LEN + 1])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n = i2d_PUBKEY(key, &der);
	int rv = HV_NOMEM;

	if (n > 0 && EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen >= HV_KEY_ID_LEN / 2) {
		to_hex(md, HV_KEY_ID_LEN / 2, id);
		rv = HV_OK;
	}
	OPENSSL_free(der);
	ERR_clear_error();
	return rv;
}

/* Read the first key of the wanted kind from a PEM file. */
static EVP_PKEY *read_key(FILE *f, bool private)
{
	EVP_PKEY *key = private ? PEM_read_PrivateKey(f, NULL, no_passphrase, NULL)
	                        : PEM_read_PUBKEY(f, NULL, no_passphrase, NULL);

	if (key != NULL && EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	return key;
}

static int load_private(const char *path, EVP_PKEY **key, char *err, size_t errlen)
{
	char why[128];
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return fail(err, errlen, HV_IO, "cannot open signing key %s: %s", path,
		            strerror(errno));
	*key = read_key(f, true);
	fclose(f);
	if (*key == NULL)
		return fail(err, errlen, HV_INVAL,
		            "%s is not an unencrypted Ed25519 private key in PEM (%s): "
		            "sign with a key made by 'hvpeer bundle keygen'",
		            path, ssl_reason(why, sizeof why));
	return HV_OK;
}

int hv_bundle_key_id(const char *key_path, char key_id[HV_KEY_ID_LEN + 1], char *err,
                     size_t errlen)
{
	EVP_PKEY *key;
	FILE *f = fopen(key_path, "re");
	int rv;

	if (f == NULL)
		return fail(err, errlen, HV_IO, "cannot open key %s: %s", key_path,
		            strerror(errno));
	key = read_key(f, false);
	if (key == NULL) {
		rewind(f);
		key = read_key(f, true);
	}
	fclose(f);
	ERR_clear_error();
	if (key == NULL)
		return fail(err, errlen, HV_INVAL,
		            "%s holds no Ed25519 key in PEM: give a file made by 'hvpeer "
		            "bundle keygen' (the key or its .pub)",
		            key_path);
	rv = key_id_of(key, key_id);
	EVP_PKEY_free(key);
	if (rv != HV_OK)
		return fail(err, errlen, rv, "%s: cannot encode the key: out of memory",
		            key_path);
	return HV_OK;
}

/* Open path for a new key file; HV_EXISTS rather than overwrite a key. */
static int create_key_file(const char *path, mode_t mode, FILE **f, char *err,
                           size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);

	if (fd < 0 && errno == EEXIST)
		return fail(
		    err, errlen, HV_EXISTS,
		    "%s already exists: refusing to overwrite a key; pick another "
		    "name or move the old key away first",
		    path);
	if (fd < 0)
		return fail(err, errlen, HV_IO, "cannot create %s: %s", path,
		            strerror(errno));
	/* The umask may have taken bits away; these modes are the contract. */
	if (fchmod(fd, mode) != 0 || (*f = fdopen(fd, "w")) == NULL) {
		int e = errno;

		close(fd);
		unlink(path);
		return fail(err, errlen, HV_IO, "cannot create %s: %s", path,
		            strerror(e));
	}
	return HV_OK;
}

/* Flush and close f; non-zero when anything failed on the way. */
static int close_synced(FILE *f)
{
	int rv = fflush(f) != 0 || fsync(fileno(f)) != 0;

	return (fclose(f) != 0) | rv;
}

int hv_bundle_keygen(const char *private_path, char key_id[HV_KEY_ID_LEN + 1], char *err,
                     size_t errlen)
{
	char pub_path[PATH_MAX], why[128];
	char id[HV_KEY_ID_LEN + 1];
	EVP_PKEY *key;
	FILE *priv, *pub;
	int rv;

	if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", private_path) >=
	    sizeof pub_path)
		return fail(err, errlen, HV_INVAL, "key path %s is too long",
		            private_path);
	key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (key == NULL)
		return fail(err, errlen, HV_NOMEM, "cannot make an Ed25519 key: %s",
		            ssl_reason(why, sizeof why));
	rv = key_id_of(key, id);
	if (rv != HV_OK) {
		fail(err, errlen, rv, "cannot encode the new key: out of memory");
		goto err_key;
	}
	rv = create_key_file(private_path, 0600, &priv, err, errlen);
	if (rv != HV_OK)
		goto err_key;
	rv = create_key_file(pub_path, 0644, &pub, err, errlen);
	if (rv != HV_OK)
		goto err_priv;
	if (PEM_write_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_PUBKEY(pub, key) != 1) {
		rv = fail(err, errlen, HV_IO, "cannot write the key to %s: %s",
		          private_path, ssl_reason(why, sizeof why));
		goto err_pub;
	}
	if (close_synced(pub) != 0) {
		rv = fail(err, errlen, HV_IO, "cannot write %s: %s", pub_path,
		          strerror(errno));
		pub = NULL;
		goto err_pub;
	}
	pub = NULL;
	if (close_synced(priv) != 0) {
		rv = fail(err, errlen, HV_IO, "cannot write %s: %s", private_path,
		          strerror(errno));
		priv = NULL;
		goto err_pub;
	}
	EVP_PKEY_free(key);
	if (key_id != NULL)
		memcpy(key_id, id, sizeof id);
	return HV_OK;

err_pub:
	if (pub != NULL)
		fclose(pub);
	unlink(pub_path);
err_priv:
	if (priv != NULL)
		fclose(priv);
	unlink(private_path);
err_key:
	EVP_PKEY_free(key);
	return rv;
}

/* The Ed25519 key with this id among dir's *.pub and *.pem files. Files that
 * hold no such public key are skipped: the directory may hold notes. */
static int find_trusted(const char *dir, const char *id, const char *bundle,
                        EVP_PKEY **found, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n_keys = 0;

	if (d == NULL)
		return fail(err, errlen, HV_IO,
		            "bundle %s: cannot read the trusted keys directory %s: %s",
		            bundle, dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char kid[HV_KEY_ID_LEN + 1];
		struct stat st;
		EVP_PKEY *key;
		FILE *f;
		int fd;

		if (de->d_name[0] == '.' || n < 5 ||
		    (strcmp(de->d_name + n - 4, ".pub") != 0 &&
		     strcmp(de->d_name + n - 4, ".pem") != 0))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    st.st_size > KEY_FILE_MAX || (f = fdopen(fd, "r")) == NULL) {
			close(fd);
			continue;
		}
		key = read_key(f, false);
		fclose(f);
		ERR_clear_error();
		if (key == NULL)
			continue;
		n_keys++;
		if (key_id_of(key, kid) == HV_OK && strcmp(kid, id) == 0) {
			closedir(d);
			*found = key;
			return HV_OK;
		}
		EVP_PKEY_free(key);
	}
	closedir(d);
	return fail(
	    err, errlen, HV_UNKNOWNKEY,
	    "bundle %s is signed by key %s, which is not among the %u trusted "
	    "keys in %s: if you trust that key, copy its public key (.pub) into %s",
	    bundle, id, n_keys, dir, dir);
}

/* ---- manifest.json and manifest.sig -------------------------------------- */

/* Exactly one JSON value in buf, nothing but white space after it. */
static struct json_object *parse_json(const char *buf, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (len == 0 || len > INT_MAX || memchr(buf, '\0', len) != NULL)
		return NULL;
	tok = json_tokener_new_ex(8);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	                  json_tokener_get_parse_end(tok) != len)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* Where a manifest's fields are read, for messages. */
struct reading {
	const char *bundle;
	const char *file; /* "manifest.json" */
	char *err;
	size_t errlen;
};

/* The string at key: HV_OK with *out (NULL when absent and optional). */
static int get_string(const struct reading *rd, struct json_object *o, const char *key,
                      bool required, const char **out)
{
	struct json_object *v;
	const char *s;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || v == NULL) {
		if (!required)
			return HV_OK;
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s has no \"%s\": get a fresh copy of the bundle",
		            rd->bundle, rd->file, key);
	}
	s = json_object_get_string(v);
	if (!json_object_is_type(v, json_type_string) ||
	    (size_t)json_object_get_string_len(v) != strlen(s))
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: \"%s\" is not a string", rd->bundle, rd->file,
		            key);
	*out = s;
	return HV_OK;
}

/* Copy a checked string into a field (the checks bound its length). */
static void set(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src);
}

static int get_name(const struct reading *rd, struct json_object *o, const char *key,
                    char *dst, size_t n)
{
	const char *s;
	int rv = get_string(rd, o, key, true, &s);

	if (rv != HV_OK)
		return rv;
	if (!name_ok(s))
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: \"%s\" is not 1..63 of [A-Za-z0-9._-]",
		            rd->bundle, rd->file, key);
	set(dst, n, s);
	return HV_OK;
}

static int get_version(const struct reading *rd, struct json_object *o, const char *key,
                       bool required, char *dst, size_t n)
{
	const char *s;
	int rv = get_string(rd, o, key, required, &s);

	if (rv != HV_OK || s == NULL)
		return rv;
	if (!hv_version_valid(s))
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: \"%s\" is not a version (1..63 of "
		            "[0-9A-Za-z.+~-], starting with a digit)",
		            rd->bundle, rd->file, key);
	set(dst, n, s);
	return HV_OK;
}

static int get_time(const struct reading *rd, struct json_object *o, const char *key,
                    bool required, time_t *t)
{
	const char *s;
	int rv = get_string(rd, o, key, required, &s);

	*t = 0;
	if (rv != HV_OK || s == NULL)
		return rv;
	if (hv_rfc3339_parse(s, t) != HV_OK || *t == 0)
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: \"%s\" is not a UTC time like "
		            "2024-05-01T12:00:00Z",
		            rd->bundle, rd->file, key);
	return HV_OK;
}

/* Checks on the file list as a whole, shared by create (code HV_INVAL) and
 * the readers (HV_MALFORMED): no path twice, none both a file and a
 * directory, every hook one of the files and under hooks/. */
static int check_file_set(const struct hv_manifest *m, int code, const char *where,
                          char *err, size_t errlen)
{
	for (unsigned i = 0; i < m->n_files; i++)
		for (unsigned j = 0; j < m->n_files; j++) {
			const char *a = m->files[i].path, *b = m->files[j].path;
			size_t n = strlen(a);

			if (i != j && strcmp(a, b) == 0)
				return fail(err, errlen, code, "%s: %s is listed twice",
				            where, a);
			if (strncmp(a, b, n) == 0 && b[n] == '/')
				return fail(
				    err, errlen, code,
				    "%s: %s is both a file and the directory of %s",
				    where, a, b);
		}
	for (int h = 0; h < HV__HOOK_N; h++) {
		bool listed = false;

		if (m->hooks[h][0] == '\0')
			continue;
		for (unsigned i = 0; i < m->n_files && !listed; i++)
			listed = strcmp(m->files[i].path, m->hooks[h]) == 0;
		if (!listed)
			return fail(err, errlen, code,
			            "%s: the %s hook %s is not one of the bundle's files",
			            where, hook_names[h], m->hooks[h]);
		if (!is_hook_path(m->hooks[h]))
			return fail(err, errlen, code,
			            "%s: the %s hook %s is not under hooks/", where,
			            hook_names[h], m->hooks[h]);
	}
	return HV_OK;
}

static int get_file(const struct reading *rd, struct json_object *v, unsigned i,
                    struct hv_bundle_file *f)
{
	struct json_object *size;
	const char *path, *sha, *why;
	int rv;

	if (!json_object_is_type(v, json_type_object))
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: files[%u] is not an object", rd->bundle,
		            rd->file, i);
	rv = get_string(rd, v, "path", true, &path);
	if (rv == HV_OK)
		rv = get_string(rd, v, "sha256", true, &sha);
	if (rv != HV_OK)
		return rv;
	if ((why = escape_problem(path)) != NULL)
		return fail(
		    rd->err, rd->errlen, HV_UNSAFEPATH,
		    "bundle %s: %s: files[%u], %.255s, %s: refusing a path outside "
		    "the bundle; do not install it",
		    rd->bundle, rd->file, i, path, why);
	if ((why = path_problem(path)) != NULL)
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: files[%u], %.255s, %s", rd->bundle, rd->file,
		            i, path, why);
	if (!is_hex(sha, HV_DIGEST_LEN))
		return fail(
		    rd->err, rd->errlen, HV_MALFORMED,
		    "bundle %s: %s: %s: \"sha256\" is not 64 lowercase hex digits",
		    rd->bundle, rd->file, path);
	if (!json_object_object_get_ex(v, "size", &size) ||
	    !json_object_is_type(size, json_type_int) || json_object_get_int64(size) < 0)
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: %s: \"size\" is missing or not a byte count",
		            rd->bundle, rd->file, path);
	set(f->path, sizeof f->path, path);
	set(f->sha256, sizeof f->sha256, sha);
	f->size = json_object_get_uint64(size);
	return HV_OK;
}

static int get_hooks(const struct reading *rd, struct json_object *o,
                     struct hv_manifest *m)
{
	struct json_object *hooks;
	int known = 0;

	if (!json_object_object_get_ex(o, "hooks", &hooks) || hooks == NULL)
		return HV_OK;
	if (!json_object_is_type(hooks, json_type_object))
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: \"hooks\" is not an object", rd->bundle,
		            rd->file);
	for (int h = 0; h < HV__HOOK_N; h++) {
		const char *s;
		int rv = get_string(rd, hooks, hook_names[h], false, &s);

		if (rv != HV_OK)
			return rv;
		if (s == NULL)
			continue;
		if (strlen(s) > HV_BUNDLE_PATH_MAX)
			return fail(rd->err, rd->errlen, HV_MALFORMED,
			            "bundle %s: %s: the %s hook's path is too long",
			            rd->bundle, rd->file, hook_names[h]);
		set(m->hooks[h], sizeof m->hooks[h], s);
		known++;
	}
	/* An unknown hook would silently not run: a bundle that needs it must
	 * not be applied by a reader that does not know it. */
	if (json_object_object_length(hooks) != known)
		return fail(rd->err, rd->errlen, HV_MALFORMED,
		            "bundle %s: %s: \"hooks\" names a hook other than pre-apply, "
		            "post-apply and validate: use a newer hvpeer",
		            rd->bundle, rd->file);
	return HV_OK;
}

int hv_bundle_manifest_parse(const char *bundle, const char *buf, size_t len,
                             struct hv_manifest *m, char *err, size_t errlen)
{
	const struct reading rd = {bundle, "manifest.json", err, errlen};
	struct json_object *o = parse_json(buf, len), *v;
	char where[PATH_MAX + 32];
	int rv = HV_MALFORMED;
	size_t n;

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		fail(err, errlen, HV_MALFORMED,
		     "bundle %s: manifest.json is not a JSON object: get a fresh copy",
		     bundle);
		goto out;
	}
	if (!json_object_object_get_ex(o, "format", &v) ||
	    !json_object_is_type(v, json_type_int)) {
		fail(err, errlen, HV_MALFORMED,
		     "bundle %s: manifest.json has no \"format\" number: it is not an "
		     "hvpeer bundle manifest",
		     bundle);
		goto out;
	}
	if (json_object_get_int64(v) != HV_BUNDLE_FORMAT) {
		fail(err, errlen, HV_MALFORMED,
		     "bundle %s: manifest.json has format %lld, which this hvpeer does "
		     "not "
		     "know (it reads format %d): use a newer hvpeer",
		     bundle, (long long)json_object_get_int64(v), HV_BUNDLE_FORMAT);
		goto out;
	}
	if ((rv = get_name(&rd, o, "name", m->name, sizeof m->name)) != HV_OK ||
	    (rv = get_version(&rd, o, "version", true, m->version, sizeof m->version)) !=
	        HV_OK ||
	    (rv = get_version(&rd, o, "min-version", false, m->min_version,
	                      sizeof m->min_version)) != HV_OK ||
	    (rv = get_name(&rd, o, "host-class", m->host_class, sizeof m->host_class)) !=
	        HV_OK ||
	    (rv = get_time(&rd, o, "created", true, &m->created)) != HV_OK ||
	    (rv = get_time(&rd, o, "expires", false, &m->expires)) != HV_OK)
		goto out;
	rv = HV_MALFORMED;
	if (!json_object_object_get_ex(o, "files", &v) ||
	    !json_object_is_type(v, json_type_array)) {
		fail(err, errlen, HV_MALFORMED,
		     "bundle %s: manifest.json has no \"files\" list: get a fresh copy",
		     bundle);
		goto out;
	}
	n = json_object_array_length(v);
	if (n > HV_BUNDLE_MAX_FILES) {
		fail(err, errlen, HV_MALFORMED,
		     "bundle %s: manifest.json lists %zu files, above the limit of %d",
		     bundle, n, HV_BUNDLE_MAX_FILES);
		goto out;
	}
	m->total_size = 0;
	for (size_t i = 0; i < n; i++) {
		struct hv_bundle_file *f = &m->files[i];

		rv = get_file(&rd, json_object_array_get_idx(v, i), (unsigned)i, f);
		if (rv != HV_OK)
			goto out;
		/* Saturate: a total that does not fit is over any limit. */
		m->total_size = f->size > UINT64_MAX - m->total_size
		                    ? UINT64_MAX
		                    : m->total_size + f->size;
		m->n_files++;
	}
	rv = get_hooks(&rd, o, m);
	if (rv != HV_OK)
		goto out;
	snprintf(where, sizeof where, "bundle %s: manifest.json", bundle);
	rv = check_file_set(m, HV_MALFORMED, where, err, errlen);
out:
	json_object_put(o);
	return rv;
}

/* Add v under k; v is consumed either way. */
static int put(struct json_object *o, const char *k, struct json_object *v)
{
	if (v == NULL)
		return -1;
	if (json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

static int put_time(struct json_object *o, const char *k, time_t t)
{
	char s[21];

	hv_rfc3339_format(t, s);
	return put(o, k, json_object_new_string(s));
}

/* The manifest as JSON; with extra, also what a reader learned. */
static struct json_object *manifest_json(const struct hv_manifest *m, bool extra)
{
	struct json_object *o = json_object_new_object(), *files, *hooks;
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= put(o, "format", json_object_new_int(HV_BUNDLE_FORMAT));
	bad |= put(o, "name", json_object_new_string(m->name));
	bad |= put(o, "version", json_object_new_string(m->version));
	if (m->min_version[0] != '\0')
		bad |= put(o, "min-version", json_object_new_string(m->min_version));
	bad |= put(o, "host-class", json_object_new_string(m->host_class));
	bad |= put_time(o, "created", m->created);
	if (m->expires != 0)
		bad |= put_time(o, "expires", m->expires);
	files = json_object_new_array();
	bad |= put(o, "files", files);
	for (unsigned i = 0; files != NULL && i < m->n_files; i++) {
		struct json_object *f = json_object_new_object();

		if (f == NULL || json_object_array_add(files, f) != 0) {
			json_object_put(f);
			bad = 1;
			break;
		}
		bad |= put(f, "path", json_object_new_string(m->files[i].path));
		bad |= put(f, "size", json_object_new_uint64(m->files[i].size));
		bad |= put(f, "sha256", json_object_new_string(m->files[i].sha256));
	}
	hooks = NULL;
	for (int h = 0; h < HV__HOOK_N; h++) {
		if (m->hooks[h][0] == '\0')
			continue;
		if (hooks == NULL) {
			hooks = json_object_new_object();
			bad |= put(o, "hooks", hooks);
			if (hooks == NULL)
				break;
		}
		bad |= put(hooks, hook_names[h], json_object_new_string(m->hooks[h]));
	}
	if (extra) {
		bad |= put(o, "total-size", json_object_new_uint64(m->total_size));
		/* json-c's null is a NULL value: "key-id": null when unsigned. */
		if (m->key_id[0] != '\0')
			bad |= put(o, "key-id", json_object_new_string(m->key_id));
		else if (json_object_object_add(o, "key-id", NULL) != 0)
			bad = 1;
		if (m->digest[0] != '\0')
			bad |= put(o, "digest", json_object_new_string(m->digest));
	}
	if (bad) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *hv_manifest_to_json(const struct hv_manifest *m)
{
	return manifest_json(m, true);
}

int hv_bundle_sig_parse(const char *bundle, const char *buf, size_t len,
                        char kid[HV_KEY_ID_LEN + 1], unsigned char sig[SIG_LEN],
                        char *err, size_t errlen)
{
	const struct reading rd = {bundle, "manifest.sig", err, errlen};
	struct json_object *o = parse_json(buf, len);
	unsigned char raw[SIG_B64_LEN];
	const char *alg, *id, *b64;
	int rv = HV_BADSIG;

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		fail(
		    err, errlen, HV_BADSIG,
		    "bundle %s: manifest.sig is not a JSON object: sign the bundle again",
		    bundle);
		goto out;
	}
	if (get_string(&rd, o, "algorithm", true, &alg) != HV_OK ||
	    get_string(&rd, o, "key-id", true, &id) != HV_OK ||
	    get_string(&rd, o, "signature", true, &b64) != HV_OK) {
		/* get_string wrote the message; the code is a signature's. */
		goto out;
	}
	if (strcmp(alg, "ed25519") != 0) {
		fail(
		    err, errlen, HV_BADSIG,
		    "bundle %s: manifest.sig uses the algorithm \"%.32s\"; hvpeer checks "
		    "ed25519 signatures only",
		    bundle, alg);
		goto out;
	}
	if (!is_hex(id, HV_KEY_ID_LEN)) {
		fail(err, errlen, HV_BADSIG,
		     "bundle %s: manifest.sig: \"key-id\" is not 32 lowercase hex digits",
		     bundle);
		goto out;
	}
	/* 64 bytes are 88 base64 characters ending in "=="; EVP_DecodeBlock
	 * counts the padding in its result. */
	if (strlen(b64) != SIG_B64_LEN || b64[SIG_B64_LEN - 1] != '=' ||
	    b64[SIG_B64_LEN - 2] != '=' ||
	    EVP_DecodeBlock(raw, (const unsigned char *)b64, SIG_B64_LEN) !=
	        SIG_LEN + 2) {
		ERR_clear_error();
		fail(err, errlen, HV_BADSIG,
		     "bundle %s: manifest.sig: \"signature\" is not the base64 of a "
		     "64-byte "
		     "Ed25519 signature: sign the bundle again",
		     bundle);
		goto out;
	}
	memcpy(sig, raw, SIG_LEN);
	memcpy(kid, id, HV_KEY_ID_LEN + 1);
	rv = HV_OK;
out:
	json_object_put(o);
	return rv;
}

/* ---- reading archives ---------------------------------------------------- */

struct reader {
	const char *path;
	int fd;
	int io_errno; /* a read(2) failure, told apart from a bad archive */
	struct archive *a;
	EVP_MD_CTX *raw; /* SHA-256 of the archive file as it streams */
	unsigned entry_no;
	unsigned char in[BUF_SIZE];
	unsigned char data[BUF_SIZE];
};

static la_ssize_t reader_read(struct archive *a, void *data, const void **out)
{
	struct reader *r = data;
	ssize_t n = read_some(r->fd, r->in, sizeof r->in);

	if (n < 0) {
		r->io_errno = errno;
		archive_set_error(a, errno, "read: %s", strerror(errno));
		return -1;
	}
	if (n > 0 && EVP_DigestUpdate(r->raw, r->in, (size_t)n) != 1) {
		r->io_errno = ENOMEM;
		archive_set_error(a, ENOMEM, "SHA-256 failed");
		return -1;
	}
	*out = r->in;
	return n;
}

static void reader_close(struct reader *r)
{
	if (r == NULL)
		return;
	if (r->a != NULL)
		archive_read_free(r->a);
	if (r->fd >= 0)
		close(r->fd);
	EVP_MD_CTX_free(r->raw);
	free(r);
}

/* A libarchive failure as an HV_* code and message. */
static int reader_error(struct reader *r, const char *what, char *err, size_t errlen)
{
	const char *why = archive_error_string(r->a);

	if (r->io_errno != 0)
		return fail(err, errlen, HV_IO, "bundle %s: cannot read %s: %s", r->path,
		            what, strerror(r->io_errno));
	return fail(err, errlen, HV_TRUNCATED,
	            "bundle %s is truncated or corrupt (%s: %s): get a fresh copy",
	            r->path, what, why != NULL ? why : "unknown error");
}

static int reader_open(const char *path, struct reader **out, char *err, size_t errlen)
{
	struct reader *r = calloc(1, sizeof *r);
	struct stat st;
	int rv;

	*out = NULL;
	if (r == NULL)
		return fail(err, errlen, HV_NOMEM, "bundle %s: out of memory", path);
	r->path = path;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		rv = fail(err, errlen, HV_IO, "cannot open bundle %s: %s", path,
		          strerror(errno));
		goto err;
	}
	if (fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rv = fail(err, errlen, HV_IO, "bundle %s is not a regular file", path);
		goto err;
	}
	r->raw = EVP_MD_CTX_new();
	r->a = archive_read_new();
	if (r->raw == NULL || r->a == NULL ||
	    EVP_DigestInit_ex(r->raw, EVP_sha256(), NULL) != 1) {
		rv = fail(err, errlen, HV_NOMEM, "bundle %s: out of memory", path);
		goto err;
	}
	/* tar only, and the usual compressors: not _all(), whose rarer filters
	 * would run external programs on untrusted input. */
	archive_read_support_format_tar(r->a);
	archive_read_support_filter_gzip(r->a);
	archive_read_support_filter_bzip2(r->a);
	archive_read_support_filter_xz(r->a);
	archive_read_support_filter_zstd(r->a);
	if (archive_read_open(r->a, r, NULL, reader_read, NULL) != ARCHIVE_OK) {
		rv = reader_error(r, "the archive's first bytes", err, errlen);
		goto err;
	}
	*out = r;
	return HV_OK;
err:
	reader_close(r);
	return rv;
}

/* The next entry in *e, or *end at the end of the archive. */
static int reader_next(struct reader *r, struct archive_entry **e, bool *end, char *err,
                       size_t errlen)
{
	char what[32];
	int rv = archive_read_next_header(r->a, e);

	*end = false;
	if (rv == ARCHIVE_EOF) {
		*end = true;
		return HV_OK;
	}
	if (rv == ARCHIVE_OK || rv == ARCHIVE_WARN) {
		r->entry_no++;
		return HV_OK;
	}
	snprintf(what, sizeof what, "entry %u", r->entry_no + 1);
	return reader_error(r, what, err, errlen);
}

/* Refuse an entry that could land outside the bundle or is not a plain
 * file, whatever its name: this runs on every entry before anything else. */
static int entry_safe(struct reader *r, struct archive_entry *e, char *err, size_t errlen)
{
	const char *name = archive_entry_pathname(e), *why, *link;
	char shown[SHOWN_MAX], target[SHOWN_MAX];

	if (name == NULL || name[0] == '\0')
		return fail(err, errlen, HV_UNSAFEPATH,
		            "bundle %s: entry %u has no readable name: do not install it",
		            r->path, r->entry_no);
	clean(name, shown, sizeof shown);
	if ((why = escape_problem(name)) != NULL)
		return fail(err, errlen, HV_UNSAFEPATH,
		            "bundle %s: entry %u, %s, %s: refusing a path outside the "
		            "bundle; do not install it",
		            r->path, r->entry_no, shown, why);
	if ((link = archive_entry_hardlink(e)) != NULL)
		return fail(
		    err, errlen, HV_UNSAFEPATH,
		    "bundle %s: %s is a hard link to %s: bundles hold regular files "
		    "only; do not install it",
		    r->path, shown, clean(link, target, sizeof target));
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return HV_OK;
	case AE_IFLNK:
		link = archive_entry_symlink(e);
		return fail(
		    err, errlen, HV_UNSAFEPATH,
		    "bundle %s: %s is a symbolic link to %s: bundles hold regular "
		    "files only; do not install it",
		    r->path, shown, clean(link, target, sizeof target));
	case AE_IFDIR:
		why = "a directory";
		break;
	case AE_IFCHR:
	case AE_IFBLK:
		why = "a device node";
		break;
	case AE_IFIFO:
		why = "a FIFO";
		break;
	default:
		why = "not a regular file";
		break;
	}
	return fail(
	    err, errlen, HV_UNSAFEPATH,
	    "bundle %s: %s is %s: bundles hold regular files only; do not install "
	    "it",
	    r->path, shown, why);
}

static bool entry_is(struct archive_entry *e, const char *name)
{
	const char *p = archive_entry_pathname(e);

	return p != NULL && strcmp(p, name) == 0;
}

/* Read a small entry (manifest, signature) whole; too_big is the code for
 * one above max. *buf is malloc()ed and NUL-terminated; the caller frees it. */
static int reader_slurp(struct reader *r, struct archive_entry *e, const char *name,
                        size_t max, int too_big, char **buf, size_t *len, char *err,
                        size_t errlen)
{
	la_int64_t size = archive_entry_size(e);
	size_t got = 0;
	char *b;

	*buf = NULL;
	if (!archive_entry_size_is_set(e) || size < 0 || (uint64_t)size > max)
		return fail(err, errlen, too_big,
		            "bundle %s: %s is %lld bytes, above its limit of %zu: get a "
		            "fresh copy",
		            r->path, name, (long long)size, max);
	b = malloc((size_t)size + 1);
	if (b == NULL)
		return fail(err, errlen, HV_NOMEM, "bundle %s: out of memory", r->path);
	while (got < (size_t)size) {
		la_ssize_t n = archive_read_data(r->a, b + got, (size_t)size - got);

		if (n <= 0) {
			free(b);
			if (n == 0)
				return fail(
				    err, errlen, HV_TRUNCATED,
				    "bundle %s is truncated: %s is cut short; get a "
				    "fresh copy",
				    r->path, name);
			return reader_error(r, name, err, errlen);
		}
		got += (size_t)n;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return HV_OK;
}

/* The first entry, which must be manifest.json. */
static int read_manifest(struct reader *r, char **buf, size_t *len, char *err,
                         size_t errlen)
{
	struct archive_entry *e;
	char shown[SHOWN_MAX];
	bool end;
	int rv = reader_next(r, &e, &end, err, errlen);

	if (rv != HV_OK)
		return rv;
	if (end)
		return fail(
		    err, errlen, HV_TRUNCATED,
		    "bundle %s is an empty archive: it has no manifest.json; get a "
		    "fresh copy",
		    r->path);
	rv = entry_safe(r, e, err, errlen);
	if (rv != HV_OK)
		return rv;
	if (!entry_is(e, "manifest.json"))
		return fail(
		    err, errlen, HV_MALFORMED,
		    "bundle %s: the first entry is %s, not manifest.json: it is not "
		    "an hvpeer bundle, or it was repacked; get a fresh copy",
		    r->path, clean(archive_entry_pathname(e), shown, sizeof shown));
	return reader_slurp(r, e, "manifest.json", HV_BUNDLE_MANIFEST_MAX, HV_MALFORMED,
	                    buf, len, err, errlen);
}

/* Read what is left of the file and give the archive's SHA-256: libarchive
 * stops at the end-of-archive blocks, the digest covers every byte. */
static int reader_finish(struct reader *r, char hex[HV_DIGEST_LEN + 1], char *err,
                         size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	ssize_t k;

	while ((k = read_some(r->fd, r->in, sizeof r->in)) > 0)
		if (EVP_DigestUpdate(r->raw, r->in, (size_t)k) != 1)
			return fail(err, errlen, HV_NOMEM, "bundle %s: SHA-256 failed",
			            r->path);
	if (k < 0)
		return fail(err, errlen, HV_IO, "bundle %s: read: %s", r->path,
		            strerror(errno));
	if (EVP_DigestFinal_ex(r->raw, md, &n) != 1 || n != HV_DIGEST_LEN / 2)
		return fail(err, errlen, HV_NOMEM, "bundle %s: SHA-256 failed", r->path);
	to_hex(md, n, hex);
	return HV_OK;
}

/* ---- payload ------------------------------------------------------------- */

/* Where checked payload goes: the extraction directory, or a new archive. */
struct sink {
	int (*begin)(void *ctx, const struct hv_bundle_file *f, char *err, size_t errlen);
	int (*write)(void *ctx, const void *buf, size_t n, char *err, size_t errlen);
	int (*end)(void *ctx, char *err, size_t errlen); /* the file checked out */
	void *ctx;
};

/* The manifest's index of entry e, after the checks that need no data. */
static int check_entry(struct reader *r, struct archive_entry *e,
                       const struct hv_manifest *m, const bool *seen, unsigned *idx,
                       char *err, size_t errlen)
{
	const char *name = archive_entry_pathname(e);
	char shown[SHOWN_MAX];
	la_int64_t size;
	unsigned i;
	int rv = entry_safe(r, e, err, errlen);

	if (rv != HV_OK)
		return rv;
	clean(name, shown, sizeof shown);
	if (strcmp(name, "manifest.json") == 0 || strcmp(name, "manifest.sig") == 0)
		return fail(err, errlen, HV_UNSAFEPATH,
		            "bundle %s: %s appears again at entry %u: a bundle has one "
		            "manifest and one signature; do not install it",
		            r->path, shown, r->entry_no);
	for (i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].path, name) == 0)
			break;
	if (i == m->n_files)
		return fail(
		    err, errlen, HV_DIGEST,
		    "bundle %s: %s (entry %u) is in the archive but not listed in "
		    "the manifest: it was added after signing; do not install it",
		    r->path, shown, r->entry_no);
	if (seen[i])
		return fail(
		    err, errlen, HV_UNSAFEPATH,
		    "bundle %s: %s appears twice in the archive (again at entry %u): "
		    "refusing an ambiguous bundle; do not install it",
		    r->path, shown, r->entry_no);
	size = archive_entry_size(e);
	if (!archive_entry_size_is_set(e) || size < 0)
		return fail(err, errlen, HV_TRUNCATED,
		            "bundle %s: %s has no size in its header: get a fresh copy",
		            r->path, shown);
	if ((uint64_t)size > m->files[i].size)
		return fail(err, errlen, HV_OVERSIZE,
		            "bundle %s: %s is %lld bytes, larger than the %llu bytes the "
		            "manifest says: do not install it",
		            r->path, shown, (long long)size,
		            (unsigned long long)m->files[i].size);
	if ((uint64_t)size < m->files[i].size)
		return fail(
		    err, errlen, HV_DIGEST,
		    "bundle %s: %s is %lld bytes, but the manifest says %llu: the "
		    "file was changed after signing; do not install it",
		    r->path, shown, (long long)size,
		    (unsigned long long)m->files[i].size);
	*idx = i;
	return HV_OK;
}

/* Stream one checked entry through SHA-256 (and the sink). */
static int stream_entry(struct reader *r, const struct hv_bundle_file *f, EVP_MD_CTX *md,
                        const struct sink *s, char *err, size_t errlen)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	char hex[HV_DIGEST_LEN + 1];
	unsigned int n = 0;
	uint64_t got = 0;
	int rv;

	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		return fail(err, errlen, HV_NOMEM, "bundle %s: SHA-256 failed", r->path);
	if (s != NULL && (rv = s->begin(s->ctx, f, err, errlen)) != HV_OK)
		return rv;
	for (;;) {
		la_ssize_t k = archive_read_data(r->a, r->data, sizeof r->data);

		if (k == 0)
			break;
		if (k < 0)
			return reader_error(r, f->path, err, errlen);
		/* The header's size bounds this already; never trust one layer. */
		if ((uint64_t)k > f->size - got)
			return fail(
			    err, errlen, HV_OVERSIZE,
			    "bundle %s: %s has more than the %llu bytes the manifest "
			    "says: do not install it",
			    r->path, f->path, (unsigned long long)f->size);
		got += (uint64_t)k;
		if (EVP_DigestUpdate(md, r->data, (size_t)k) != 1)
			return fail(err, errlen, HV_NOMEM, "bundle %s: SHA-256 failed",
			            r->path);
		if (s != NULL &&
		    (rv = s->write(s->ctx, r->data, (size_t)k, err, errlen)) != HV_OK)
			return rv;
	}
	if (got != f->size)
		return fail(
		    err, errlen, HV_TRUNCATED,
		    "bundle %s is truncated: %s is cut short at %llu of %llu bytes; "
		    "get a fresh copy",
		    r->path, f->path, (unsigned long long)got,
		    (unsigned long long)f->size);
	if (EVP_DigestFinal_ex(md, dg, &n) != 1 || n != HV_DIGEST_LEN / 2)
		return fail(err, errlen, HV_NOMEM, "bundle %s: SHA-256 failed", r->path);
	to_hex(dg, n, hex);
	if (strcmp(hex, f->sha256) != 0)
		return fail(
		    err, errlen, HV_DIGEST,
		    "bundle %s: %s has SHA-256 %s, but the manifest says %s: the file "
		    "was changed after signing; do not install it",
		    r->path, f->path, hex, f->sha256);
	return s != NULL ? s->end(s->ctx, err, errlen) : HV_OK;
}

/* Every entry after the manifest and signature, e the first (NULL at the
 * end): each listed file exactly once, nothing else. */
static int walk_payload(struct reader *r, struct archive_entry *e,
                        const struct hv_manifest *m, const struct sink *s, char *err,
                        size_t errlen)
{
	bool seen[HV_BUNDLE_MAX_FILES] = {false};
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool end = e == NULL;
	int rv = HV_OK;

	if (md == NULL)
		return fail(err, errlen, HV_NOMEM, "bundle %s: out of memory", r->path);
	while (!end) {
		unsigned i = 0;

		rv = check_entry(r, e, m, seen, &i, err, errlen);
		if (rv != HV_OK)
			goto out;
		seen[i] = true;
		rv = stream_entry(r, &m->files[i], md, s, err, errlen);
		if (rv != HV_OK)
			goto out;
		rv = reader_next(r, &e, &end, err, errlen);
		if (rv != HV_OK)
			goto out;
	}
	for (unsigned i = 0; i < m->n_files; i++)
		if (!seen[i]) {
			rv =
			    fail(err, errlen, HV_DIGEST,
			         "bundle %s: %s is listed in the manifest but not in the "
			         "archive: the bundle is incomplete (a cut copy?); get a "
			         "fresh "
			         "copy",
			         r->path, m->files[i].path);
			goto out;
		}
out:
	EVP_MD_CTX_free(md);
	return rv;
}

/* ---- extraction ---------------------------------------------------------- */

struct made {
	char path[HV_BUNDLE_PATH_MAX + 1];
	bool dir;
};

struct extract {
	const char *dir;
	int root; /* dir, opened */
	bool made_root;
	int fd; /* the file being written, or -1 */
	mode_t mode;
	struct made *made; /* what to remove if the bundle fails */
	size_t n_made, cap;
};

static int extract_record(struct extract *x, const char *path, bool dir, char *err,
                          size_t errlen)
{
	if (x->n_made == x->cap) {
		size_t cap = x->cap != 0 ? 2 * x->cap : 16;
		struct made *p = realloc(x->made, cap * sizeof *p);

		if (p == NULL)
			return fail(err, errlen, HV_NOMEM,
			            "extracting to %s: out of memory", x->dir);
		x->made = p;
		x->cap = cap;
	}
	set(x->made[x->n_made].path, sizeof x->made[0].path, path);
	x->made[x->n_made++].dir = dir;
	return HV_OK;
}

static int extract_open(struct extract *x, const char *dir, char *err, size_t errlen)
{
	x->dir = dir;
	x->root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (x->root < 0 && errno == ENOENT && mkdir(dir, 0755) == 0) {
		x->made_root = true;
		x->root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (x->root < 0)
		return fail(err, errlen, HV_IO,
		            "cannot open the extraction directory %s: %s", dir,
		            strerror(errno));
	return HV_OK;
}

/* Create f's directories and the file itself, never following a link:
 * each component is opened relative to its parent with O_NOFOLLOW. */
static int extract_begin(void *ctx, const struct hv_bundle_file *f, char *err,
                         size_t errlen)
{
	struct extract *x = ctx;
	char rel[HV_BUNDLE_PATH_MAX + 1];
	char *p, *slash;
	int dfd = x->root, e, rv;

	set(rel, sizeof rel, f->path);
	for (p = rel; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		int next;

		*slash = '\0';
		next = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && errno == ENOENT) {
			if (mkdirat(dfd, p, 0755) == 0) {
				rv = extract_record(x, rel, true, err, errlen);
				if (rv != HV_OK) {
					unlinkat(dfd, p, AT_REMOVEDIR);
					goto err;
				}
				next = openat(dfd, p,
				              O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				                  O_CLOEXEC);
				if (next >= 0)
					fchmod(next, 0755);
			}
		}
		if (next < 0) {
			e = errno;
			rv = fail(err, errlen, HV_IO, "cannot create directory %s/%s: %s",
			          x->dir, rel, strerror(e));
			goto err;
		}
		*slash = '/';
		if (dfd != x->root)
			close(dfd);
		dfd = next;
	}
	x->fd =
	    openat(dfd, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (x->fd < 0) {
		e = errno;
		rv = fail(err, errlen, HV_IO, "cannot create %s/%s: %s%s", x->dir,
		          f->path, strerror(e),
		          e == EEXIST ? ": extract into an empty directory" : "");
		goto err;
	}
	rv = extract_record(x, f->path, false, err, errlen);
	if (rv != HV_OK) {
		close(x->fd);
		unlinkat(dfd, p, 0);
		x->fd = -1;
		goto err;
	}
	x->mode = is_hook_path(f->path) ? 0755 : 0644;
err:
	if (dfd != x->root)
		close(dfd);
	return rv;
}

static int extract_write(void *ctx, const void *buf, size_t n, char *err, size_t errlen)
{
	struct extract *x = ctx;

	if (write_all(x->fd, buf, n) != 0)
		return fail(err, errlen, HV_IO, "cannot write under %s: %s", x->dir,
		            strerror(errno));
	return HV_OK;
}

/* The file's digest matched: only now may a hook become executable. */
static int extract_end(void *ctx, char *err, size_t errlen)
{
	struct extract *x = ctx;
	int rv = fchmod(x->fd, x->mode);

	rv |= close(x->fd);
	x->fd = -1;
	if (rv != 0)
		return fail(err, errlen, HV_IO, "cannot write under %s: %s", x->dir,
		            strerror(errno));
	return HV_OK;
}

/* Remove what was extracted, newest first (files before their dirs). */
static void extract_undo(struct extract *x)
{
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
	for (size_t i = x->n_made; i-- > 0;)
		unlinkat(x->root, x->made[i].path, x->made[i].dir ? AT_REMOVEDIR : 0);
	x->n_made = 0;
	if (x->made_root) {
		close(x->root);
		x->root = -1;
		rmdir(x->dir);
	}
}

static void extract_close(struct extract *x)
{
	if (x->fd >= 0)
		close(x->fd);
	if (x->root >= 0)
		close(x->root);
	free(x->made);
}

/* ---- verify, inspect, digest --------------------------------------------- */

static int check_opts(const struct hv_verify_opts *o, char *err, size_t errlen)
{
	if (o == NULL || o->trusted_dir == NULL)
		return fail(err, errlen, HV_INVAL,
		            "bundle verification needs a trusted keys directory");
	if (o->now == 0)
		return fail(err, errlen, HV_INVAL,
		            "bundle verification needs the current time");
	if (o->installed_version != NULL && !hv_version_valid(o->installed_version))
		return fail(err, errlen, HV_INVAL,
		            "installed version '%s' is not a version",
		            o->installed_version);
	if (o->floor_version != NULL && !hv_version_valid(o->floor_version))
		return fail(err, errlen, HV_INVAL, "floor version '%s' is not a version",
		            o->floor_version);
	if (o->host_class != NULL && !name_ok(o->host_class))
		return fail(err, errlen, HV_INVAL,
		            "host class '%s' is not 1..63 of [A-Za-z0-9._-]",
		            o->host_class);
	return HV_OK;
}

static int check_policy(const char *path, const struct hv_manifest *m,
                        const struct hv_verify_opts *o, char *err, size_t errlen)
{
	uint64_t max =
	    o->max_payload != 0 ? o->max_payload : HV_BUNDLE_DEFAULT_MAX_PAYLOAD;
	char when[21], now[21];

	if (o->host_class != NULL && strcmp(m->host_class, o->host_class) != 0)
		return fail(err, errlen, HV_HOSTCLASS,
		            "bundle %s (%s %s) is for host class %s, but this host is of "
		            "class %s: use the bundle built for %s",
		            path, m->name, m->version, m->host_class, o->host_class,
		            o->host_class);
	if (m->expires != 0 && o->now >= m->expires) {
		hv_rfc3339_format(m->expires, when);
		hv_rfc3339_format(o->now, now);
		return fail(err, errlen, HV_EXPIRED,
		            "bundle %s (%s %s) expired on %s (it is now %s): ask its "
		            "publisher for a fresh one",
		            path, m->name, m->version, when, now);
	}
	if (o->floor_version != NULL && hv_version_cmp(m->version, o->floor_version) < 0)
		return fail(
		    err, errlen, HV_ROLLBACK,
		    "bundle %s: version %s is older than %s, the highest version the "
		    "cluster has committed: refusing a rollback; publish a version "
		    "of at least %s",
		    path, m->version, o->floor_version, o->floor_version);
	if (o->installed_version != NULL &&
	    hv_version_cmp(m->version, o->installed_version) < 0)
		return fail(
		    err, errlen, HV_ROLLBACK,
		    "bundle %s: version %s is older than the installed version %s: "
		    "refusing a downgrade",
		    path, m->version, o->installed_version);
	if (o->installed_version != NULL && m->min_version[0] != '\0' &&
	    hv_version_cmp(o->installed_version, m->min_version) < 0)
		return fail(err, errlen, HV_ROLLBACK,
		            "bundle %s: version %s applies on %s or later, but this host "
		            "has %s: install %s or later first",
		            path, m->version, m->min_version, o->installed_version,
		            m->min_version);
	if (m->total_size > max)
		return fail(
		    err, errlen, HV_OVERSIZE,
		    "bundle %s: the payload is %llu bytes, above the limit of %llu: if "
		    "it is meant to be that large, raise the limit (--max-payload)",
		    path, (unsigned long long)m->total_size, (unsigned long long)max);
	return HV_OK;
}

static bool sig_good(EVP_PKEY *key, const unsigned char sig[SIG_LEN], const char *msg,
                     size_t len)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool ok = c != NULL && EVP_DigestVerifyInit(c, NULL, NULL, NULL, key) == 1 &&
	          EVP_DigestVerify(c, sig, SIG_LEN, (const unsigned char *)msg, len) == 1;

	EVP_MD_CTX_free(c);
	ERR_clear_error();
	return ok;
}

int hv_bundle_verify(const char *path, const struct hv_verify_opts *o,
                     struct hv_manifest *m, char *err, size_t errlen)
{
	struct extract x = {.root = -1, .fd = -1};
	const struct sink xs = {extract_begin, extract_write, extract_end, &x};
	char kid[HV_KEY_ID_LEN + 1];
	unsigned char sig[SIG_LEN];
	struct reader *r = NULL;
	struct archive_entry *e;
	char *man = NULL, *sigtext = NULL;
	size_t man_len = 0, sig_len = 0;
	EVP_PKEY *key = NULL;
	bool end;
	int rv;

	memset(m, 0, sizeof *m);
	rv = check_opts(o, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = reader_open(path, &r, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = read_manifest(r, &man, &man_len, err, errlen);
	if (rv != HV_OK)
		goto out;
	rv = reader_next(r, &e, &end, err, errlen);
	if (rv != HV_OK)
		goto out;
	if (end) {
		rv = fail(
		    err, errlen, HV_BADSIG,
		    "bundle %s has nothing after manifest.json: it is not signed, or "
		    "the copy was cut short; sign it with 'hvpeer bundle sign --key "
		    "KEY %s', or get a fresh copy",
		    path, path);
		goto out;
	}
	if (!entry_is(e, "manifest.sig")) {
		rv = fail(
		    err, errlen, HV_BADSIG,
		    "bundle %s is not signed: sign it with 'hvpeer bundle sign --key "
		    "KEY %s'",
		    path, path);
		goto out;
	}
	if ((rv = entry_safe(r, e, err, errlen)) != HV_OK ||
	    (rv = reader_slurp(r, e, "manifest.sig", HV_BUNDLE_SIG_MAX, HV_BADSIG,
	                       &sigtext, &sig_len, err, errlen)) != HV_OK ||
	    (rv = hv_bundle_sig_parse(path, sigtext, sig_len, kid, sig, err, errlen)) !=
	        HV_OK ||
	    (rv = find_trusted(o->trusted_dir, kid, path, &key, err, errlen)) != HV_OK)
		goto out;
	if (!sig_good(key, sig, man, man_len)) {
		rv = fail(
		    err, errlen, HV_BADSIG,
		    "bundle %s: the signature by key %s does not match manifest.json: "
		    "the manifest was changed after signing; do not install it, get a "
		    "fresh copy from its publisher",
		    path, kid);
		goto out;
	}
	/* From here on the manifest is the publisher's word. */
	rv = hv_bundle_manifest_parse(path, man, man_len, m, err, errlen);
	if (rv != HV_OK)
		goto out;
	memcpy(m->key_id, kid, sizeof kid);
	rv = check_policy(path, m, o, err, errlen);
	if (rv != HV_OK)
		goto out;
	if (o->extract_dir != NULL &&
	    (rv = extract_open(&x, o->extract_dir, err, errlen)) != HV_OK)
		goto out;
	rv = reader_next(r, &e, &end, err, errlen);
	if (rv != HV_OK)
		goto out;
	rv = walk_payload(r, end ? NULL : e, m, o->extract_dir != NULL ? &xs : NULL, err,
	                  errlen);
	if (rv != HV_OK)
		goto out;
	rv = reader_finish(r, m->digest, err, errlen);
out:
	if (rv != HV_OK && x.root >= 0)
		extract_undo(&x);
	extract_close(&x);
	EVP_PKEY_free(key);
	free(sigtext);
	free(man);
	reader_close(r);
	return rv;
}

int hv_bundle_inspect(const char *path, struct hv_manifest *m, char *err, size_t errlen)
{
	unsigned char sig[SIG_LEN];
	char kid[HV_KEY_ID_LEN + 1];
	struct reader *r = NULL;
	struct archive_entry *e;
	char *man = NULL, *sigtext = NULL;
	size_t man_len = 0, sig_len = 0;
	bool end;
	int rv;

	memset(m, 0, sizeof *m);
	rv = reader_open(path, &r, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = read_manifest(r, &man, &man_len, err, errlen);
	if (rv == HV_OK)
		rv = hv_bundle_manifest_parse(path, man, man_len, m, err, errlen);
	if (rv != HV_OK)
		goto out;
	/* The id the signature claims, if it reads; inspect proves nothing. */
	if (reader_next(r, &e, &end, err, errlen) == HV_OK && !end &&
	    entry_is(e, "manifest.sig") && archive_entry_filetype(e) == AE_IFREG &&
	    reader_slurp(r, e, "manifest.sig", HV_BUNDLE_SIG_MAX, HV_BADSIG, &sigtext,
	                 &sig_len, err, errlen) == HV_OK &&
	    hv_bundle_sig_parse(path, sigtext, sig_len, kid, sig, err, errlen) == HV_OK)
		memcpy(m->key_id, kid, sizeof kid);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
out:
	free(sigtext);
	free(man);
	reader_close(r);
	return rv;
}

int hv_bundle_digest(const char *path, char out_hex[HV_DIGEST_LEN + 1], char *err,
                     size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char *buf = malloc(BUF_SIZE);
	unsigned int n = 0;
	ssize_t k = -1;
	int fd = -1, rv;

	if (c == NULL || buf == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		rv = fail(err, errlen, HV_NOMEM, "bundle %s: out of memory", path);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = fail(err, errlen, HV_IO, "cannot open bundle %s: %s", path,
		          strerror(errno));
		goto out;
	}
	while ((k = read_some(fd, buf, BUF_SIZE)) > 0)
		if (EVP_DigestUpdate(c, buf, (size_t)k) != 1)
			break;
	if (k != 0) {
		rv = fail(err, errlen, HV_IO, "cannot read bundle %s: %s", path,
		          k < 0 ? strerror(errno) : "SHA-256 failed");
		goto out;
	}
	if (EVP_DigestFinal_ex(c, md, &n) != 1 || n != HV_DIGEST_LEN / 2) {
		rv = fail(err, errlen, HV_NOMEM, "bundle %s: SHA-256 failed", path);
		goto out;
	}
	to_hex(md, n, out_hex);
	rv = HV_OK;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(c);
	return rv;
}

/* ---- writing archives ---------------------------------------------------- */

/* A new archive in a temporary file next to its final path. */
struct outfile {
	const char *path;
	char tmp[PATH_MAX];
	int fd;
	struct archive *w;
};

static int out_open(struct outfile *of, const char *path, char *err, size_t errlen)
{
	of->path = path;
	of->w = NULL;
	of->fd = -1;
	if ((size_t)snprintf(of->tmp, sizeof of->tmp, "%s.tmp-XXXXXX", path) >=
	    sizeof of->tmp)
		return fail(err, errlen, HV_INVAL, "path %s is too long", path);
	of->fd = mkostemp(of->tmp, O_CLOEXEC);
	if (of->fd < 0)
		return fail(err, errlen, HV_IO,
		            "cannot create a temporary file for %s: %s", path,
		            strerror(errno));
	of->w = archive_write_new();
	if (of->w == NULL || fchmod(of->fd, 0644) != 0 ||
	    archive_write_set_format_pax_restricted(of->w) != ARCHIVE_OK ||
	    archive_write_open_fd(of->w, of->fd) != ARCHIVE_OK) {
		int rv = fail(err, errlen, HV_IO, "cannot write %s: %s", of->tmp,
		              of->w != NULL && archive_error_string(of->w) != NULL
		                  ? archive_error_string(of->w)
		                  : strerror(errno));
		if (of->w != NULL)
			archive_write_free(of->w);
		of->w = NULL;
		close(of->fd);
		of->fd = -1;
		unlink(of->tmp);
		return rv;
	}
	return HV_OK;
}

static void out_abort(struct outfile *of)
{
	if (of->w != NULL)
		archive_write_free(of->w);
	of->w = NULL;
	if (of->fd >= 0) {
		close(of->fd);
		unlink(of->tmp);
	}
	of->fd = -1;
}

/* Finish the archive, make it durable, and put it in place. */
static int out_commit(struct outfile *of, char *err, size_t errlen)
{
	int rv = archive_write_close(of->w);
	const char *why = rv != ARCHIVE_OK ? archive_error_string(of->w) : NULL;

	if (rv != ARCHIVE_OK || fsync(of->fd) != 0) {
		rv = fail(err, errlen, HV_IO, "cannot write %s: %s", of->tmp,
		          why != NULL ? why : strerror(errno));
		out_abort(of);
		return rv;
	}
	archive_write_free(of->w);
	of->w = NULL;
	rv = close(of->fd);
	of->fd = -1;
	if (rv != 0 || rename(of->tmp, of->path) != 0) {
		rv = fail(err, errlen, HV_IO, "cannot write %s: %s", of->path,
		          strerror(errno));
		unlink(of->tmp);
		return rv;
	}
	return HV_OK;
}

static int out_header(struct outfile *of, const char *name, uint64_t size, time_t mtime,
                      char *err, size_t errlen)
{
	struct archive_entry *e = archive_entry_new();
	int rv = HV_OK;

	if (e == NULL)
		return fail(err, errlen, HV_NOMEM, "writing %s: out of memory", of->path);
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, is_hook_path(name) ? 0755 : 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, mtime, 0);
	if (archive_write_header(of->w, e) != ARCHIVE_OK)
		rv = fail(err, errlen, HV_IO, "cannot write %s: %s", of->path,
		          archive_error_string(of->w));
	archive_entry_free(e);
	return rv;
}

static int out_data(struct outfile *of, const void *buf, size_t n, char *err,
                    size_t errlen)
{
	if (archive_write_data(of->w, buf, n) != (la_ssize_t)n)
		return fail(err, errlen, HV_IO, "cannot write %s: %s", of->path,
		            archive_error_string(of->w) != NULL
		                ? archive_error_string(of->w)
		                : "short write");
	return HV_OK;
}

static int out_small(struct outfile *of, const char *name, const char *buf, size_t n,
                     time_t mtime, char *err, size_t errlen)
{
	int rv = out_header(of, name, n, mtime, err, errlen);

	return rv != HV_OK ? rv : out_data(of, buf, n, err, errlen);
}

/* The copying sink of sign: checked entries go into the new archive. */
struct copy {
	struct outfile *of;
	time_t mtime;
};

static int copy_begin(void *ctx, const struct hv_bundle_file *f, char *err, size_t errlen)
{
	struct copy *c = ctx;

	return out_header(c->of, f->path, f->size, c->mtime, err, errlen);
}

static int copy_write(void *ctx, const void *buf, size_t n, char *err, size_t errlen)
{
	struct copy *c = ctx;

	return out_data(c->of, buf, n, err, errlen);
}

static int copy_end(void *ctx, char *err, size_t errlen)
{
	return HV_OK;
}

/* Hash a local file (and, with of, copy it into the archive). */
static int hash_file(const char *src, unsigned char *buf, struct outfile *of,
                     uint64_t *size, char hex[HV_DIGEST_LEN + 1], char *err,
                     size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 0;
	uint64_t got = 0;
	struct stat st;
	ssize_t k;
	int fd, rv = HV_OK;

	if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return fail(err, errlen, HV_NOMEM, "hashing %s: out of memory", src);
	}
	fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = fail(err, errlen, HV_IO, "cannot open %s: %s", src, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rv = fail(err, errlen, HV_INVAL,
		          "%s is not a regular file: bundles hold regular files only",
		          src);
		goto out;
	}
	while ((k = read_some(fd, buf, BUF_SIZE)) > 0) {
		if (of != NULL && (uint64_t)k > *size - got)
			break; /* grew since it was hashed */
		got += (uint64_t)k;
		if (EVP_DigestUpdate(c, buf, (size_t)k) != 1) {
			rv = fail(err, errlen, HV_NOMEM, "hashing %s: SHA-256 failed",
			          src);
			goto out;
		}
		if (of != NULL &&
		    (rv = out_data(of, buf, (size_t)k, err, errlen)) != HV_OK)
			goto out;
	}
	if (k < 0) {
		rv = fail(err, errlen, HV_IO, "cannot read %s: %s", src, strerror(errno));
		goto out;
	}
	if (EVP_DigestFinal_ex(c, md, &n) != 1 || n != HV_DIGEST_LEN / 2) {
		rv = fail(err, errlen, HV_NOMEM, "hashing %s: SHA-256 failed", src);
		goto out;
	}
	if (of == NULL) {
		*size = got;
		to_hex(md, n, hex);
	} else {
		char now[HV_DIGEST_LEN + 1];

		to_hex(md, n, now);
		if (k > 0 || got != *size || strcmp(now, hex) != 0)
			rv = fail(
			    err, errlen, HV_IO,
			    "%s changed while the bundle was being made: make it again "
			    "once nothing writes to it",
			    src);
	}
out:
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(c);
	return rv;
}

/* Check the spec and turn it into a manifest (files hashed). */
static int spec_manifest(const struct hv_bundle_spec *s, struct hv_manifest *m,
                         unsigned char *buf, char *err, size_t errlen)
{
	const char *why;
	char a[21], b[21];
	int rv;

	if (s->name == NULL || !name_ok(s->name))
		return fail(err, errlen, HV_INVAL,
		            "bundle name '%s' is not 1..63 of [A-Za-z0-9._-]",
		            s->name != NULL ? s->name : "");
	if (s->version == NULL || !hv_version_valid(s->version))
		return fail(err, errlen, HV_INVAL,
		            "version '%s' is not a version (1..63 of [0-9A-Za-z.+~-], "
		            "starting with a digit)",
		            s->version != NULL ? s->version : "");
	if (s->min_version != NULL && !hv_version_valid(s->min_version))
		return fail(err, errlen, HV_INVAL, "min-version '%s' is not a version",
		            s->min_version);
	if (s->min_version != NULL && hv_version_cmp(s->min_version, s->version) > 0)
		return fail(
		    err, errlen, HV_INVAL,
		    "min-version %s is above the version %s: the bundle could never "
		    "apply",
		    s->min_version, s->version);
	if (s->host_class == NULL || !name_ok(s->host_class))
		return fail(err, errlen, HV_INVAL,
		            "host class '%s' is not 1..63 of [A-Za-z0-9._-]",
		            s->host_class != NULL ? s->host_class : "");
	if (s->created == 0)
		return fail(err, errlen, HV_INVAL, "the bundle needs a creation time");
	if (s->expires != 0 && s->expires <= s->created) {
		hv_rfc3339_format(s->expires, a);
		hv_rfc3339_format(s->created, b);
		return fail(
		    err, errlen, HV_INVAL,
		    "expiry %s is not after the creation time %s: the bundle would "
		    "be born expired",
		    a, b);
	}
	if (s->n_files > HV_BUNDLE_MAX_FILES || (s->n_files > 0 && s->files == NULL))
		return fail(err, errlen, HV_INVAL, "a bundle holds at most %d files",
		            HV_BUNDLE_MAX_FILES);
	set(m->name, sizeof m->name, s->name);
	set(m->version, sizeof m->version, s->version);
	set(m->min_version, sizeof m->min_version, s->min_version ? s->min_version : "");
	set(m->host_class, sizeof m->host_class, s->host_class);
	m->created = s->created;
	m->expires = s->expires;
	for (unsigned i = 0; i < s->n_files; i++) {
		const char *p = s->files[i].path;

		if (p == NULL || s->files[i].src == NULL)
			return fail(err, errlen, HV_INVAL, "file %u has no path", i);
		if ((why = escape_problem(p)) != NULL || (why = path_problem(p)) != NULL)
			return fail(err, errlen, HV_INVAL, "archive path %.255s %s", p,
			            why);
		set(m->files[i].path, sizeof m->files[i].path, p);
		m->n_files++;
	}
	for (int h = 0; h < HV__HOOK_N; h++)
		if (s->hooks[h] != NULL) {
			if (strlen(s->hooks[h]) > HV_BUNDLE_PATH_MAX)
				return fail(err, errlen, HV_INVAL,
				            "the %s hook's path is too long",
				            hook_names[h]);
			set(m->hooks[h], sizeof m->hooks[h], s->hooks[h]);
		}
	rv = check_file_set(m, HV_INVAL, "bundle spec", err, errlen);
	for (unsigned i = 0; rv == HV_OK && i < m->n_files; i++) {
		struct hv_bundle_file *f = &m->files[i];

		rv = hash_file(s->files[i].src, buf, NULL, &f->size, f->sha256, err,
		               errlen);
		m->total_size += f->size;
	}
	return rv;
}

int hv_bundle_create(const char *out_path, const struct hv_bundle_spec *spec, char *err,
                     size_t errlen)
{
	struct hv_manifest *m = calloc(1, sizeof *m);
	unsigned char *buf = malloc(BUF_SIZE);
	struct json_object *json = NULL;
	struct outfile of;
	const char *text;
	size_t len;
	int rv;

	if (m == NULL || buf == NULL) {
		rv = fail(err, errlen, HV_NOMEM, "making bundle %s: out of memory",
		          out_path);
		goto err_mem;
	}
	rv = spec_manifest(spec, m, buf, err, errlen);
	if (rv != HV_OK)
		goto err_mem;
	json = manifest_json(m, false);
	if (json == NULL) {
		rv = fail(err, errlen, HV_NOMEM, "making bundle %s: out of memory",
		          out_path);
		goto err_mem;
	}
	text = json_object_to_json_string_ext(json, JSON_C_TO_STRING_PRETTY |
	                                                JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(text);
	rv = out_open(&of, out_path, err, errlen);
	if (rv != HV_OK)
		goto err_mem;
	if ((rv = out_header(&of, "manifest.json", len + 1, m->created, err, errlen)) !=
	        HV_OK ||
	    (rv = out_data(&of, text, len, err, errlen)) != HV_OK ||
	    (rv = out_data(&of, "\n", 1, err, errlen)) != HV_OK)
		goto err_out;
	for (unsigned i = 0; i < m->n_files; i++) {
		struct hv_bundle_file *f = &m->files[i];

		rv = out_header(&of, f->path, f->size, m->created, err, errlen);
		if (rv == HV_OK)
			rv = hash_file(spec->files[i].src, buf, &of, &f->size, f->sha256,
			               err, errlen);
		if (rv != HV_OK)
			goto err_out;
	}
	rv = out_commit(&of, err, errlen);
	goto err_mem;

err_out:
	out_abort(&of);
err_mem:
	json_object_put(json);
	free(buf);
	free(m);
	return rv;
}

int hv_bundle_sign(const char *path, const char *key_path, char key_id[HV_KEY_ID_LEN + 1],
                   char *err, size_t errlen)
{
	unsigned char sig[SIG_LEN], b64[SIG_B64_LEN + 1];
	char kid[HV_KEY_ID_LEN + 1], sigtext[256], why[128];
	struct hv_manifest *m = NULL;
	struct reader *r = NULL;
	struct archive_entry *e;
	struct outfile of;
	struct copy c = {&of, 0};
	const struct sink cs = {copy_begin, copy_write, copy_end, &c};
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	char *man = NULL;
	size_t man_len = 0, siglen = SIG_LEN;
	bool end;
	int rv, n;

	rv = load_private(key_path, &key, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = key_id_of(key, kid);
	if (rv != HV_OK) {
		fail(err, errlen, rv, "%s: cannot encode the key: out of memory",
		     key_path);
		goto err_key;
	}
	m = calloc(1, sizeof *m);
	if (m == NULL) {
		rv = fail(err, errlen, HV_NOMEM, "signing %s: out of memory", path);
		goto err_key;
	}
	rv = reader_open(path, &r, err, errlen);
	if (rv != HV_OK)
		goto err_key;
	rv = read_manifest(r, &man, &man_len, err, errlen);
	if (rv == HV_OK)
		rv = hv_bundle_manifest_parse(path, man, man_len, m, err, errlen);
	if (rv != HV_OK)
		goto err_reader;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)man, man_len) != 1 ||
	    siglen != SIG_LEN) {
		rv = fail(err, errlen, HV_NOMEM, "signing %s: %s", path,
		          ssl_reason(why, sizeof why));
		goto err_reader;
	}
	EVP_EncodeBlock(b64, sig, SIG_LEN);
	n = snprintf(
	    sigtext, sizeof sigtext,
	    "{\"algorithm\":\"ed25519\",\"key-id\":\"%s\",\"signature\":\"%s\"}\n", kid,
	    (const char *)b64);
	if (n < 0 || (size_t)n >= sizeof sigtext) {
		rv = fail(err, errlen, HV_NOMEM, "signing %s: signature too long", path);
		goto err_reader;
	}
	rv = out_open(&of, path, err, errlen);
	if (rv != HV_OK)
		goto err_reader;
	c.mtime = m->created;
	if ((rv = out_small(&of, "manifest.json", man, man_len, m->created, err,
	                    errlen)) != HV_OK ||
	    (rv = out_small(&of, "manifest.sig", sigtext, (size_t)n, m->created, err,
	                    errlen)) != HV_OK ||
	    (rv = reader_next(r, &e, &end, err, errlen)) != HV_OK)
		goto err_out;
	/* The old signature is dropped: the new one takes its place. */
	if (!end && entry_is(e, "manifest.sig")) {
		if (archive_read_data_skip(r->a) != ARCHIVE_OK) {
			rv = reader_error(r, "manifest.sig", err, errlen);
			goto err_out;
		}
		rv = reader_next(r, &e, &end, err, errlen);
		if (rv != HV_OK)
			goto err_out;
	}
	rv = walk_payload(r, end ? NULL : e, m, &cs, err, errlen);
	if (rv != HV_OK)
		goto err_out;
	rv = out_commit(&of, err, errlen);
	if (rv == HV_OK && key_id != NULL)
		memcpy(key_id, kid, sizeof kid);
	goto err_reader;

err_out:
	out_abort(&of);
err_reader:
	EVP_MD_CTX_free(ctx);
	free(man);
	reader_close(r);
err_key:
	free(m);
	EVP_PKEY_free(key);
	return rv;
}
