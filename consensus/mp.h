/* Small msgpack helpers shared by the command codec and the snapshot. */
#ifndef HV_MP_H
#define HV_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool hv_mp_key_is(const msgpack_object *k, const char *name);
int hv_mp_u64(const msgpack_object *v, uint64_t *out);
int hv_mp_bool(const msgpack_object *v, bool *out);

/* Copy a string object into dst (capacity cap, NUL added): HV_TOOBIG when it
 * does not fit, HV_MALFORMED when it is no string or has a control char. */
int hv_mp_str(const msgpack_object *v, char *dst, size_t cap);

/* HV_OK when p[0..len) fits in cap bytes with its NUL and has no control
 * character. */
int hv_mp_text_check(const char *p, size_t len, size_t cap);

void hv_mp_pack_str(msgpack_packer *pk, const char *s);
void hv_mp_pack_bool(msgpack_packer *pk, bool b);

/* Copy the packed bytes into a buffer from alloc (malloc when NULL), padded
 * with zero bytes to a multiple of `align` (1 for none). */
int hv_mp_finish(const msgpack_sbuffer *sb, void *(*alloc)(size_t), size_t align,
                 void **buf, size_t *len);

#endif
