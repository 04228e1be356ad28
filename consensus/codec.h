/*
 * The replicated log's command codec.
 *
 * A command is a msgpack map with string keys. Two keys are always present:
 * "v" (the format version, HV_CMD_FORMAT) and "t" (the command type). "ts"
 * is the proposer's wall clock in milliseconds: the state machine never reads
 * a clock, so every replica records the same time. The other keys depend on
 * the type; unknown keys are ignored so that a newer proposer can add fields.
 *
 * An encoded command is padded with zero bytes to a multiple of 8 (libraft's
 * disk log requires it); the decoder accepts that padding and nothing else.
 *
 * Decoding is strict: anything larger than HV_CMD_MAX, any other trailing byte, a
 * string longer than its field or with a NUL or control character, a name
 * outside [A-Za-z0-9._-], or a missing required field is refused.
 */
#ifndef HV_CODEC_H
#define HV_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HV_CMD_FORMAT 1
#define HV_CMD_MAX 16384 /* bytes; larger commands are refused */

#define HV_NAME_MAX 63
#define HV_ADDR_MAX 63
#define HV_PHASE_MAX 31
#define HV_VERSION_MAX 63
#define HV_REASON_MAX 255
#define HV_DEV_MAX 47
#define HV_ERROR_MAX 191
#define HV_MAX_GUESTS 32 /* per host */
#define HV_MAX_PLAN 32   /* moves in one plan */
#define HV_DIGEST_MAX 64 /* SHA-256 in hex */
#define HV_KEYID_MAX 32

enum hv_cmd_type {
	HV_CMD_MEMBER_ADD = 1, /* name, id, address, role */
	HV_CMD_MEMBER_ROLE,    /* id, role */
	HV_CMD_MEMBER_REMOVE,  /* id */
	HV_CMD_REPORT,         /* name, phase, version; bmc, bmc_address optional */
	HV_CMD_LEASE_ACQUIRE,  /* name */
	HV_CMD_LEASE_RELEASE,  /* name, token */
	HV_CMD_LEASE_BREAK,    /* name ("" = every holder), by, reason */
	HV_CMD_PAUSE,          /* by, reason */
	HV_CMD_RESUME,         /* by */
	HV_CMD_SETTINGS,       /* max_concurrent */
	HV_CMD_INVENTORY,      /* name, mem_cap, vcpus_cap, guests */
	HV_CMD_MAINT,          /* name, token, phase (a maintenance phase) */
	HV_CMD_PLAN,           /* name, token, moves */
	HV_CMD_MOVED,          /* name, token, guest, target, result, stats */
	HV_CMD_PATCH_SUBMIT,   /* by, version, bundle, digest, key_id, source */
	HV_CMD_PATCH_STEP,  /* name, token, id (rollout), phase, event, version, reason */
	HV_CMD_PATCH_ABORT, /* by, reason */
	/* name, token, id (rollout), phase, event (enum hv_wd_event), by, reason */
	HV_CMD_PATCH_WATCHDOG,
	HV_CMD_POLICY_SET, /* name (the policy's key), reason (its value), by */
	HV_CMD_PATCH_GATE, /* name (the next host), id (rollout), by, reason */
	HV__CMD_LAST = HV_CMD_PATCH_GATE
};

/* What the leader's watchdog commits about a lease holder that has not come
 * back from a reboot (PATCH_WATCHDOG's event). */
enum hv_wd_event {
	HV_WD_CYCLE = 1, /* about to power-cycle it through its BMC */
	HV_WD_FOLLOWED,  /* what the BMC showed after the cycle (reason) */
	HV_WD_GAVE_UP,   /* stop the line: the cluster pauses, the lease stays */
};

#define HV_BMC_KIND_MAX 15

/* A guest as a host reports it. */
struct hv_cmd_guest {
	char name[HV_NAME_MAX + 1];
	uint32_t mem_mib;
	uint32_t vcpus;
	int level; /* enum hv_level (migrate/placement.h) */
	bool running;
	bool persistent;                 /* defined in libvirt, not only running */
	char hostdev[HV_DEV_MAX + 1];    /* "" or the first passthrough device */
	char local_disk[HV_DEV_MAX + 1]; /* "" or the first disk not on shared storage */
};

/* One step of an evacuation plan. */
struct hv_cmd_move {
	char guest[HV_NAME_MAX + 1];
	char source[HV_NAME_MAX + 1];
	char target[HV_NAME_MAX + 1]; /* "" for save/shutdown */
	uint32_t mem_mib;
	uint32_t vcpus;
	int action; /* enum hv_action (migrate/placement.h) */
};

/* Member roles, as in the Raft configuration. */
enum hv_role { HV_ROLE_STANDBY = 0, HV_ROLE_VOTER = 1, HV_ROLE_SPARE = 2 };

struct hv_cmd {
	int type;
	uint64_t time_ms;
	uint64_t id;
	uint64_t token;
	int role;
	unsigned max_concurrent;
	char name[HV_NAME_MAX + 1];
	char address[HV_ADDR_MAX + 1];
	char by[HV_NAME_MAX + 1];
	char phase[HV_PHASE_MAX + 1];
	char version[HV_VERSION_MAX + 1];
	char reason[HV_REASON_MAX + 1];

	/* INVENTORY; seen_index: the reporter's last applied log index when it
	 * started reading libvirt (a read older than a move is stale) */
	uint32_t mem_cap_mib, vcpus_cap;
	uint64_t seen_index;
	unsigned n_guests;
	struct hv_cmd_guest guests[HV_MAX_GUESTS];
	/* PLAN */
	unsigned n_moves;
	struct hv_cmd_move moves[HV_MAX_PLAN];
	/* MOVED: guest and target in move, the outcome below */
	struct hv_cmd_move move;
	int result; /* HV_OK or an HV_* failure */
	uint64_t downtime_ms, elapsed_ms, bytes;
	char error[HV_ERROR_MAX + 1];
	/* PATCH_SUBMIT: the bundle; STEP: event (enum hv_cycle_event, patchfsm/cycle.h)
	 */
	char bundle[HV_NAME_MAX + 1];
	char digest[HV_DIGEST_MAX + 1];
	char key_id[HV_KEYID_MAX + 1];
	char source[HV_NAME_MAX + 1]; /* the member that holds the bundle */
	int event;
	/* REPORT (optional): the host's BMC, for the watchdog */
	char bmc[HV_BMC_KIND_MAX + 1];     /* "", "none", "ipmi", "redfish" */
	char bmc_address[HV_ADDR_MAX + 1]; /* "host[:port]" */
};

/* Human name of a command type ("lease-acquire"), or "unknown". */
const char *hv_cmd_name(int type);
const char *hv_role_name(int role);

/* True when s is a valid member name: 1..HV_NAME_MAX of [A-Za-z0-9._-]. */
bool hv_name_valid(const char *s);

/* Copy src into dst (size n) when it fits and has no control character. */
int hv_text_copy(char *dst, size_t n, const char *src);

/*
 * Encode cmd. On success *buf is a malloc()ed buffer owned by the caller
 * (allocated with the given allocator when not NULL, e.g. raft_malloc) and
 * *len its size. Returns an HV_* code.
 */
int hv_cmd_encode(const struct hv_cmd *cmd, void *(*alloc)(size_t), void **buf,
                  size_t *len);

/*
 * Check that buf starts with one well-formed msgpack object whose containers
 * claim no more elements than there are bytes left: msgpack-c allocates what
 * a header claims before it reads the elements, so 5 bytes could otherwise
 * ask for gigabytes. Returns the object's size, or 0 when it is malformed.
 */
size_t hv_msgpack_check(const void *buf, size_t len);

/* The guest and move tuples, shared with the snapshot encoding. */
void hv_cmd_pack_guest(msgpack_packer *pk, const struct hv_cmd_guest *g);
int hv_cmd_unpack_guest(const msgpack_object *v, struct hv_cmd_guest *g);
void hv_cmd_pack_move(msgpack_packer *pk, const struct hv_cmd_move *m);
int hv_cmd_unpack_move(const msgpack_object *v, struct hv_cmd_move *m);

/* Decode buf into cmd. Never reads past len; returns an HV_* code. */
int hv_cmd_decode(const void *buf, size_t len, struct hv_cmd *cmd);

#endif
