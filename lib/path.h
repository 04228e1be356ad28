/* Files that come with the running program. */
#ifndef HV_PATH_H
#define HV_PATH_H

#include <stddef.h>

/* out = DIR/rel, DIR the running program's directory (/proc/self/exe).
 * Returns 0 when that path passes access(amode), else -1 (out undefined). */
int hv_exe_sibling(const char *rel, int amode, char *out, size_t len);

#endif
