/*
 * The regression runner: without libFuzzer, feed every file of
 * fuzz/corpus/NAME and fuzz/regressions/NAME (or of the files and
 * directories given as arguments) to the target's LLVMFuzzerTestOneInput,
 * in name order. make check runs it in the normal and the sanitizer builds,
 * so every crash input kept in fuzz/regressions stays a test. It prints each
 * file before feeding it: the last one named is the one that failed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME: the target's name, as in fuzz/corpus/NAME"
#endif
#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

static unsigned n_run;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long size;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "fuzz %s: %s: %s\n", FUZZ_NAME, path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	/* An exact-size copy, so that ASan sees a read past the input. */
	buf = malloc(size > 0 ? (size_t)size : 1);
	if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "fuzz %s: %s: cannot read it\n", FUZZ_NAME, path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	printf("%s (%ld bytes)\n", path, size);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, (size_t)size);
	free(buf);
	n_run++;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file of dir (dot files left out); a missing dir has none. */
static int run_dir(const char *dir, int must_exist)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0;
	int rv = 0;

	if (d == NULL) {
		if (errno == ENOENT && !must_exist)
			return 0;
		fprintf(stderr, "fuzz %s: %s: %s\n", FUZZ_NAME, dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *p);
			if (p == NULL) {
				rv = -1;
				break;
			}
			names = p;
		}
		if ((names[n] = strdup(e->d_name)) == NULL) {
			rv = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof *names, by_name);
	for (size_t i = 0; i < n; i++) {
		if (rv == 0 && (size_t)snprintf(path, sizeof path, "%s/%s", dir,
		                                names[i]) < sizeof path)
			rv = run_file(path);
		free(names[i]);
	}
	free(names);
	return rv;
}

static int run_arg(const char *arg)
{
	struct stat st;

	if (stat(arg, &st) != 0) {
		fprintf(stderr, "fuzz %s: %s: %s\n", FUZZ_NAME, arg, strerror(errno));
		return -1;
	}
	return S_ISDIR(st.st_mode) ? run_dir(arg, 1) : run_file(arg);
}

int main(int argc, char **argv)
{
	const char *src = getenv("HVPEER_SRCDIR");
	char dir[4096];
	int rv = 0;

	if (src == NULL || src[0] == '\0')
		src = FUZZ_SRCDIR;
	if (argc > 1) {
		for (int i = 1; i < argc && rv == 0; i++)
			rv = run_arg(argv[i]);
	} else {
		snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", src, FUZZ_NAME);
		rv = run_dir(dir, 1);
		snprintf(dir, sizeof dir, "%s/fuzz/regressions/%s", src, FUZZ_NAME);
		if (rv == 0)
			rv = run_dir(dir, 0);
		if (rv == 0 && n_run == 0) {
			fprintf(stderr, "fuzz %s: no inputs under %s/fuzz\n", FUZZ_NAME,
			        src);
			rv = -1;
		}
	}
	printf("fuzz %s: %u inputs\n", FUZZ_NAME, n_run);
	printf("%u passed, %d failed\n", rv == 0 ? n_run : 0, rv == 0 ? 0 : 1);
	return rv == 0 ? 0 : 1;
}
