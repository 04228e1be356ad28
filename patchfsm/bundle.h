/*
 * Signed patch bundles.
 *
 * A bundle is a tar archive (pax/ustar; readers also take it compressed with
 * gzip, bzip2, xz or zstd) whose entries are, in this order:
 *
 *   1. manifest.json, at most 1 MiB:
 *        {"format": 1,
 *         "name": "kernel-fix",            1..63 of [A-Za-z0-9._-]
 *         "version": "1.2.0",              see patchfsm/version.h
 *         "min-version": "1.0.0",          optional: lowest installed version
 *                                          the bundle applies on
 *         "host-class": "lab-x86_64",      1..63 of [A-Za-z0-9._-]
 *         "created": "2024-05-01T12:00:00Z",
 *         "expires": "2024-08-01T00:00:00Z",   optional; RFC 3339, UTC ('Z')
 *         "files": [{"path": "payload/kernel.rpm", "size": 123,
 *                    "sha256": "<64 lowercase hex>"}, ...],   at most 256
 *         "hooks": {"pre-apply": "hooks/pre.sh", "post-apply": "...",
 *                   "validate": "hooks/health.sh"}}           optional
 *      Paths are relative, 1..255 characters of [A-Za-z0-9._+~@=,:-] in
 *      '/'-separated components (no empty, "." or ".." component), under
 *      "payload/" or "hooks/"; each hook is also one of the files, under
 *      "hooks/". Keys this version does not know are ignored; a change that
 *      an older reader must not ignore bumps "format".
 *   2. manifest.sig, at most 4 KiB:
 *        {"algorithm": "ed25519", "key-id": "<32 hex>",
 *         "signature": "<base64 of the 64-byte Ed25519 signature over the
 *                       exact bytes of manifest.json>"}
 *      The key id is the first 16 bytes of the SHA-256 of the public key's
 *      DER SubjectPublicKeyInfo, in hex. It only picks the trusted key; the
 *      signature is what is checked.
 *   3. the files of the manifest, in any order, each exactly once, regular
 *      files only. Nothing else.
 *
 * The signature comes second so that a reader checks it before it reads a
 * byte of payload: a tar is read once, front to back.
 *
 * A bundle's digest (what the replicated log names) is the SHA-256 of the
 * whole archive file, in hex.
 *
 * Every function here returns HV_OK or an HV_* code (lib/err.h) with a
 * message in err that names the bundle, the cause and what to do. They read
 * no clock: callers pass the time.
 */
#ifndef HV_BUNDLE_H
#define HV_BUNDLE_H

#include <stdint.h>
#include <stddef.h>
#include <time.h>

#include "version.h"

struct json_object;

#define HV_BUNDLE_FORMAT 1
#define HV_BUNDLE_NAME_MAX 63 /* name, host-class */
#define HV_BUNDLE_PATH_MAX 255
#define HV_BUNDLE_MAX_FILES 256
#define HV_BUNDLE_MANIFEST_MAX (1024 * 1024)
#define HV_BUNDLE_SIG_MAX 4096
#define HV_BUNDLE_DEFAULT_MAX_PAYLOAD (8ULL << 30) /* 8 GiB */
#define HV_KEY_ID_LEN 32                           /* hex characters */
#define HV_DIGEST_LEN 64                           /* hex characters */
#define HV_BUNDLE_SIG_LEN 64                       /* Ed25519 signature bytes */

enum hv_hook { HV_HOOK_PRE_APPLY, HV_HOOK_POST_APPLY, HV_HOOK_VALIDATE, HV__HOOK_N };

/* "pre-apply", "post-apply", "validate"; hv_hook_parse gives -1 when unknown. */
const char *hv_hook_name(int hook);
int hv_hook_parse(const char *s);

struct hv_bundle_file {
	char path[HV_BUNDLE_PATH_MAX + 1];
	uint64_t size;
	char sha256[HV_DIGEST_LEN + 1];
};

/* A manifest as read from a bundle: everything fixed-size, caller-owned. */
struct hv_manifest {
	char name[HV_BUNDLE_NAME_MAX + 1];
	char version[HV_VERSION_MAX + 1];
	char min_version[HV_VERSION_MAX + 1]; /* "" = none */
	char host_class[HV_BUNDLE_NAME_MAX + 1];
	time_t created;
	time_t expires; /* 0 = never */
	unsigned n_files;
	struct hv_bundle_file files[HV_BUNDLE_MAX_FILES];
	char hooks[HV__HOOK_N][HV_BUNDLE_PATH_MAX + 1]; /* "" = none */
	uint64_t total_size;                            /* sum of the files' sizes */
	char key_id[HV_KEY_ID_LEN + 1];                 /* "" = not signed */
	char digest[HV_DIGEST_LEN + 1]; /* of the archive; "" = not computed */
};

/* ---- making bundles ------------------------------------------------------ */

struct hv_bundle_input {
	const char *path; /* in the archive: "payload/..." or "hooks/..." */
	const char *src;  /* the local file to copy */
};

struct hv_bundle_spec {
	const char *name;
	const char *version;
	const char *min_version; /* NULL: none */
	const char *host_class;
	time_t created; /* the caller's clock */
	time_t expires; /* 0: never */
	const struct hv_bundle_input *files;
	unsigned n_files;
	const char *hooks[HV__HOOK_N]; /* archive paths, each also in files; NULL: none */
};

/*
 * Write an unsigned bundle to out_path (replaced atomically: a temporary file
 * in the same directory, then rename). Files are read twice, to hash them
 * for the manifest and to copy them; a file that changes in between is an
 * error. HV_INVAL for a bad spec, HV_IO for a file that cannot be read or
 * written. Nothing is left behind on failure.
 */
int hv_bundle_create(const char *out_path, const struct hv_bundle_spec *spec, char *err,
                     size_t errlen);

/*
 * Sign the bundle at path with the Ed25519 private key in key_path (PEM,
 * unencrypted): rewrites the archive (temporary file, then rename) with a
 * new manifest.sig after manifest.json, whose bytes stay unchanged; a
 * previous manifest.sig is dropped. The output is an uncompressed tar. Sign
 * checks what it signs as verify would (manifest, paths, sizes, digests):
 * a signer vouches for the payload. key_id, when not NULL, receives the
 * signing key's id.
 */
int hv_bundle_sign(const char *path, const char *key_path, char key_id[HV_KEY_ID_LEN + 1],
                   char *err, size_t errlen);

/*
 * Make an Ed25519 key pair: the private key in private_path (PEM, mode 0600)
 * and the public key in "<private_path>.pub" (PEM, 0644). Refuses to
 * overwrite either file (HV_EXISTS). key_id, when not NULL, receives the id.
 */
int hv_bundle_keygen(const char *private_path, char key_id[HV_KEY_ID_LEN + 1], char *err,
                     size_t errlen);

/* The key id of the Ed25519 key (public or private, PEM) in key_path. */
int hv_bundle_key_id(const char *key_path, char key_id[HV_KEY_ID_LEN + 1], char *err,
                     size_t errlen);

/* ---- checking bundles ---------------------------------------------------- */

struct hv_verify_opts {
	const char *trusted_dir;       /* directory of *.pub / *.pem public keys */
	const char *installed_version; /* NULL: unknown */
	const char *floor_version;     /* highest version the cluster has committed,
	                                  NULL: none (anti-rollback) */
	const char *host_class;        /* NULL: do not check */
	time_t now;                    /* the caller's clock; required */
	uint64_t max_payload;    /* total bytes, 0 = HV_BUNDLE_DEFAULT_MAX_PAYLOAD */
	const char *extract_dir; /* when not NULL, extract the verified files under it */
};

/*
 * Verify the bundle at path, in one pass, in this order:
 *   manifest.json first (else HV_MALFORMED), manifest.sig second (else
 *   HV_BADSIG: not signed), its key among trusted_dir's (HV_UNKNOWNKEY), the
 *   signature over the manifest's bytes (HV_BADSIG); only then is the
 *   manifest parsed (HV_MALFORMED, HV_UNSAFEPATH) and the policy checked:
 *   host class (HV_HOSTCLASS), expiry (HV_EXPIRED), version below the floor
 *   or below the installed version (HV_ROLLBACK; an equal version passes,
 *   the caller decides), installed version below min-version (HV_ROLLBACK:
 *   the host is too old for it), declared total above max_payload
 *   (HV_OVERSIZE). Then every entry: an absolute path, a ".." component, a
 *   link, a device, a directory or an entry seen twice is HV_UNSAFEPATH; a
 *   file not listed, a file listed but absent, a file shorter than declared
 *   or with another SHA-256 is HV_DIGEST; a file longer than declared is
 *   HV_OVERSIZE; a cut or corrupt archive is HV_TRUNCATED. HV_IO when the
 *   bundle, the keys or extract_dir cannot be read or written; HV_INVAL for
 *   bad options.
 *
 * The payload is hashed as it streams, never held in memory. With
 * extract_dir (created when missing, its parent must exist), each file is
 * written under it (subdirectories 0755, files 0644, under hooks/ 0755) only
 * once the signature and the policy passed and the entry itself checks out;
 * a file gets its final mode once its digest matched. If anything fails, all
 * that was extracted is removed again. Nothing is ever written outside
 * extract_dir and nothing there is overwritten.
 *
 * On success m holds the manifest, key_id and digest; on failure m's content
 * is unspecified.
 */
int hv_bundle_verify(const char *path, const struct hv_verify_opts *o,
                     struct hv_manifest *m, char *err, size_t errlen);

/*
 * Read the manifest WITHOUT checking anything but its form: for display
 * only, never to act on. m->key_id is the id manifest.sig claims ("" when
 * there is none); m->digest is not computed.
 */
int hv_bundle_inspect(const char *path, struct hv_manifest *m, char *err, size_t errlen);

/*
 * The decoders verify and inspect run on the archive's first two entries
 * (fuzz/fuzz_manifest.c feeds them). bundle names the bundle in messages.
 *
 * hv_bundle_manifest_parse: manifest.json's len bytes into m, which the
 * caller zeroed (all but key_id and digest): exactly one JSON object, every
 * rule above; HV_MALFORMED or HV_UNSAFEPATH otherwise.
 *
 * hv_bundle_sig_parse: manifest.sig's len bytes: the key id it claims
 * (kid) and the signature's bytes (sig), nothing checked against a key;
 * HV_BADSIG when it is not the form above.
 */
int hv_bundle_manifest_parse(const char *bundle, const char *buf, size_t len,
                             struct hv_manifest *m, char *err, size_t errlen);
int hv_bundle_sig_parse(const char *bundle, const char *buf, size_t len,
                        char kid[HV_KEY_ID_LEN + 1], unsigned char sig[HV_BUNDLE_SIG_LEN],
                        char *err, size_t errlen);

/* SHA-256 of the whole file at path, in lowercase hex. */
int hv_bundle_digest(const char *path, char out_hex[HV_DIGEST_LEN + 1], char *err,
                     size_t errlen);

/*
 * The manifest as a JSON object (the manifest.json keys, plus "key-id",
 * "digest" and "total-size" when known). The caller owns the result
 * (json_object_put); NULL when out of memory.
 */
struct json_object *hv_manifest_to_json(const struct hv_manifest *m);

/* RFC 3339 in UTC, "2024-05-01T12:00:00Z" exactly. parse returns HV_OK or
 * HV_INVAL; out must hold 21 bytes. */
int hv_rfc3339_parse(const char *s, time_t *t);
void hv_rfc3339_format(time_t t, char out[21]);

#endif
