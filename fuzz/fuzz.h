/*
 * What every fuzz target shares. Each fuzz_NAME.c defines
 * LLVMFuzzerTestOneInput over one decoder and frees all it allocates (the
 * targets run under ASan's leak checker). The same file is linked either
 * with libFuzzer (./configure --enable-fuzzing, clang) or with runner.c,
 * which feeds it fuzz/corpus/NAME and fuzz/regressions/NAME in make check.
 */
#ifndef HV_FUZZ_H
#define HV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the decoder that must hold: abort (a crash to libFuzzer)
 * when it does not, whatever NDEBUG says. */
#define FUZZ_CHECK(cond)                                                                 \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
			        #cond);                                                  \
			abort();                                                         \
		}                                                                        \
	} while (0)

#endif
