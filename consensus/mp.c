#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "mp.h"

bool hv_mp_key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       memcmp(k->via.str.ptr, name, n) == 0;
}

int hv_mp_u64(const msgpack_object *v, uint64_t *out)
{
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return HV_MALFORMED;
	*out = v->via.u64;
	return HV_OK;
}

int hv_mp_bool(const msgpack_object *v, bool *out)
{
	if (v->type != MSGPACK_OBJECT_BOOLEAN)
		return HV_MALFORMED;
	*out = v->via.boolean;
	return HV_OK;
}

int hv_mp_text_check(const char *p, size_t len, size_t cap)
{
	if (len >= cap)
		return HV_TOOBIG;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return HV_MALFORMED;
	return HV_OK;
}

int hv_mp_str(const msgpack_object *v, char *dst, size_t cap)
{
	int rv;

	if (v->type != MSGPACK_OBJECT_STR)
		return HV_MALFORMED;
	rv = hv_mp_text_check(v->via.str.ptr, v->via.str.size, cap);
	if (rv != HV_OK)
		return rv;
	memcpy(dst, v->via.str.ptr, v->via.str.size);
	dst[v->via.str.size] = '\0';
	return HV_OK;
}

void hv_mp_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void hv_mp_pack_bool(msgpack_packer *pk, bool b)
{
	if (b)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

int hv_mp_finish(const msgpack_sbuffer *sb, void *(*alloc)(size_t), size_t align,
                 void **buf, size_t *len)
{
	size_t padded = (sb->size + align - 1) / align * align;

	*buf = alloc != NULL ? alloc(padded) : malloc(padded);
	if (*buf == NULL)
		return HV_NOMEM;
	memcpy(*buf, sb->data, sb->size);
	memset((char *)*buf + sb->size, 0, padded - sb->size);
	*len = padded;
	return HV_OK;
}
