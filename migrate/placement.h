/*
 * Placement: where each running guest of a host about to be patched goes.
 *
 * A pure function of its arguments: no I/O, no clock, no randomness, no
 * allocation. The same input gives the same plan whatever the order of the
 * arrays: every tie is broken by name. The rules are at the top of
 * placement.c.
 */
#ifndef HV_PLACEMENT_H
#define HV_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HV_PLACE_NAME 64
#define HV_PLACE_HOSTDEV 64
#define HV_PLACE_MAX_HOSTS 256   /* as many as cluster members */
#define HV_PLACE_MAX_GUESTS 1024 /* guests on the one source host */

enum hv_level { HV_LEVEL_PRODUCTION = 0, HV_LEVEL_LEGACY = 1, HV_LEVEL_DEV = 2 };

enum hv_action {
	HV_ACT_MIGRATE = 0,  /* live-migrate to the target host */
	HV_ACT_SAVE = 1,     /* legacy: save to disk, restore after */
	HV_ACT_SHUTDOWN = 2, /* dev: shut down, start after */
};

struct hv_place_host {
	char name[HV_PLACE_NAME];
	uint64_t mem_cap_mib;  /* memory available for guests */
	uint64_t mem_used_mib; /* used by its guests + reserved by other plans */
	unsigned vcpus_cap;    /* 0 = no vCPU limit */
	unsigned vcpus_used;
	bool eligible; /* false: in maintenance, draining, offline, or the source */
};

struct hv_place_guest {
	char name[HV_PLACE_NAME];
	uint64_t mem_mib;
	unsigned vcpus;
	int level;                         /* enum hv_level */
	char hostdev[HV_PLACE_HOSTDEV];    /* "" or a passthrough device,
	                                    * "0000:3b:00.0", "usb 1d6b:0002" */
	bool running;                      /* shut-off guests need no move */
	char local_disk[HV_PLACE_HOSTDEV]; /* "" or a disk not on shared
	                                    * storage: it cannot live-migrate */
};

struct hv_place_move {
	unsigned guest; /* index into guests */
	int action;     /* enum hv_action */
	int target;     /* index into hosts; -1 for SAVE and SHUTDOWN */
};

/*
 * Plan a move for each running guest.
 *
 * On HV_OK, moves[0..*n_moves) holds one move per running guest, in the
 * order to run them: largest memory first (ties: more vCPUs, then name), and
 * why is "". On an error *n_moves is 0 (if n_moves is not NULL), moves[]
 * holds scratch, and why holds a one-line reason naming the guest or host:
 *  - HV_FULL: a production guest fits on no eligible host once the larger
 *    ones are placed (the first such guest is named);
 *  - HV_INVAL: a running production or legacy guest holds a hostdev, or the
 *    input is bad (NULL array, over the HV_PLACE_MAX_* limits, an empty,
 *    unterminated or repeated name, an unknown level).
 *
 * All buffers stay the caller's; nothing is kept after the call. hosts and
 * guests are only read. moves has room for n_guests entries (it may be NULL
 * when n_guests is 0). why may be NULL; a reason longer than whylen is cut.
 */
int hv_place(const struct hv_place_host *hosts, unsigned n_hosts,
             const struct hv_place_guest *guests, unsigned n_guests,
             struct hv_place_move *moves, unsigned *n_moves, char *why, size_t whylen);

/* "production", "legacy", "dev"; "unknown" for anything else. */
const char *hv_level_name(int level);

/* The level named s (exactly as hv_level_name spells it), or -1. */
int hv_level_parse(const char *s);

/* "migrate", "save", "shutdown"; "unknown" for anything else. */
const char *hv_action_name(int action);

#endif
