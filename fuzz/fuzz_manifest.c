/*
 * The bundle manifest decoders (patchfsm/bundle.c): manifest.json
 * (hv_bundle_manifest_parse) and manifest.sig (hv_bundle_sig_parse), the
 * two entries verify and inspect read first from an archive anyone can
 * hand over. The manifest is parsed before its signature is checked only
 * by inspect, but verify parses it after: both must survive anything.
 *
 * Beyond not crashing: a manifest that parses shows as JSON
 * (hv_manifest_to_json, what `hvpeer bundle inspect` prints) that parses
 * again to the same manifest.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../lib/err.h"
#include "../patchfsm/bundle.h"
#include "fuzz.h"

static void manifest(const uint8_t *data, size_t size)
{
	struct hv_manifest *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	struct json_object *o;
	const char *text;
	size_t len;
	char err[1024];

	FUZZ_CHECK(a != NULL && b != NULL);
	if (hv_bundle_manifest_parse("fuzz.bundle", (const char *)data, size, a, err,
	                             sizeof err) == HV_OK) {
		FUZZ_CHECK(a->n_files <= HV_BUNDLE_MAX_FILES);
		o = hv_manifest_to_json(a);
		FUZZ_CHECK(o != NULL);
		text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
		FUZZ_CHECK(text != NULL);
		FUZZ_CHECK(hv_bundle_manifest_parse("fuzz.bundle", text, len, b, err,
		                                    sizeof err) == HV_OK);
		FUZZ_CHECK(memcmp(a, b, sizeof *a) == 0);
		json_object_put(o);
	}
	free(a);
	free(b);
}

static void sig(const uint8_t *data, size_t size)
{
	char kid[HV_KEY_ID_LEN + 1], err[1024];
	unsigned char s[HV_BUNDLE_SIG_LEN];

	if (hv_bundle_sig_parse("fuzz.bundle", (const char *)data, size, kid, s, err,
	                        sizeof err) == HV_OK)
		FUZZ_CHECK(strlen(kid) == HV_KEY_ID_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* manifest.json is at most 1 MiB, manifest.sig 4 KiB. */
	if (size <= HV_BUNDLE_MANIFEST_MAX)
		manifest(data, size);
	if (size <= HV_BUNDLE_SIG_MAX)
		sig(data, size);
	return 0;
}
