/*
 * The peer RPC and control socket decoder (node/rpc.c): the bytes of a
 * connection after the transport's magic, through the frame reader
 * (hv_rpc_frame_alloc/advance: a 4-byte length, then the body) and the
 * body's parser (hv_rpc_parse: one JSON object), then the field accessors
 * and the base64 decoder that requests' handlers use on what they got.
 *
 * The stream is read twice, in the largest reads the reader allows and in
 * reads of 1 to 3 bytes: how the bytes arrive must not change the result.
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../node/rpc.h"
#include "fuzz.h"

/* Read one frame from data as a socket would deliver it, in reads of at
 * most chunk(i) bytes; the body is what was read (NULL on a bad frame). */
static int read_frame(const uint8_t *data, size_t size, bool small, char **body,
                      size_t *body_len)
{
	unsigned char hdr[4];
	size_t hdr_got = 0, body_got = 0, off = 0;
	unsigned i = 0;
	int rv = 0;

	*body = NULL;
	*body_len = 0;
	while (rv == 0) {
		uv_buf_t buf;
		size_t n;

		hv_rpc_frame_alloc(hdr, hdr_got, body, *body_len, body_got, &buf);
		FUZZ_CHECK(buf.len > 0);
		n = size - off;
		if (n == 0)
			break; /* the peer hung up midway */
		if (small && n > 1 + i++ % 3)
			n = 1 + (i - 1) % 3;
		if (n > buf.len)
			n = buf.len;
		memcpy(buf.base, data + off, n);
		off += n;
		rv = hv_rpc_frame_advance(hdr, &hdr_got, body, body_len, &body_got, n);
	}
	return rv;
}

/* What handlers do with a request's fields. */
static void use_fields(struct json_object *o)
{
	struct json_object_iterator it = json_object_iter_begin(o);
	struct json_object_iterator end = json_object_iter_end(o);
	uint64_t u;

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);
		struct json_object *v = json_object_iter_peek_value(&it);

		(void)hv_json_bool(o, key);
		(void)hv_json_uint(o, key, &u);
		if (hv_json_str(o, key) != NULL) {
			const char *s = json_object_get_string(v);
			size_t blen = strlen(s), cap = blen / 4 * 3, got = 0;
			/* Exactly cap bytes, so ASan sees a write past it. */
			unsigned char *out = malloc(cap > 0 ? cap : 1);

			FUZZ_CHECK(out != NULL);
			if (hv_b64_decode(s, blen, out, cap, &got) == 0) {
				/* The length is that of the base64 text, as
				 * EVP_EncodeBlock writes it: padding and all. */
				unsigned char *again = malloc(4 * ((got + 2) / 3) + 1);

				FUZZ_CHECK(got <= cap && again != NULL);
				FUZZ_CHECK((size_t)EVP_EncodeBlock(again, out,
				                                   (int)got) == blen);
				free(again);
			}
			free(out);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = NULL, *body2 = NULL;
	size_t len = 0, len2 = 0;
	struct json_object *o = NULL, *o2 = NULL;
	int rv, rv2;

	rv = read_frame(data, size, false, &body, &len);
	if (rv == 1)
		o = hv_rpc_parse(body, len);
	if (size <= 4096) {
		rv2 = read_frame(data, size, true, &body2, &len2);
		FUZZ_CHECK(rv2 == rv);
		if (rv2 == 1) {
			FUZZ_CHECK(len2 == len && memcmp(body, body2, len) == 0);
			o2 = hv_rpc_parse(body2, len2);
			FUZZ_CHECK((o == NULL) == (o2 == NULL));
		}
	}
	if (o != NULL) {
		FUZZ_CHECK(json_object_is_type(o, json_type_object));
		use_fields(o);
	}
	json_object_put(o);
	json_object_put(o2);
	free(body);
	free(body2);
	return 0;
}
