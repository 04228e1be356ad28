/* hvpeer error codes: one enum, one strerror, generated from one list. */
#ifndef HV_ERR_H
#define HV_ERR_H

#include <stddef.h>

#define HV_ERRORS(X)                                     \
	X(OK, "success")                                 \
	X(NOMEM, "out of memory")                        \
	X(INVAL, "invalid argument")                     \
	X(MALFORMED, "malformed command")                \
	X(TOOBIG, "command too large")                   \
	X(VERSION, "unsupported command format version") \
	X(UNKNOWNCMD, "unknown command type")            \
	X(PAUSED, "cluster is paused")                   \
	X(LEASEFULL, "maintenance lease is held")        \
	X(NOMEMBER, "unknown member")                    \
	X(REMOVED, "member was removed")                 \
	X(NOTHOLDER, "not a lease holder")               \
	X(BADTOKEN, "stale or wrong fencing token")      \
	X(EXISTS, "already exists")                      \
	X(NOTPAUSED, "cluster is not paused")            \
	X(NOQUORUM, "no quorum")                         \
	X(NOTLEADER, "not the leader")                   \
	X(TIMEOUT, "timed out")                          \
	X(UNREACHABLE, "peer unreachable")               \
	X(IO, "I/O error")                               \
	X(PROTO, "protocol error")                       \
	X(SHUTDOWN, "shutting down")                     \
	X(FULL, "limit reached")                         \
	X(INMAINT, "host is in maintenance")             \
	X(RAFT, "raft error")                            \
	X(BADSIG, "missing or bad signature")            \
	X(UNKNOWNKEY, "signed by an untrusted key")      \
	X(DIGEST, "payload digest mismatch")             \
	X(ROLLBACK, "version older than allowed")        \
	X(EXPIRED, "expired")                            \
	X(HOSTCLASS, "wrong host class")                 \
	X(TRUNCATED, "truncated or corrupt archive")     \
	X(UNSAFEPATH, "path escapes the archive")        \
	X(OVERSIZE, "payload too large")                 \
	X(QUARANTINED, "patch is quarantined")           \
	X(NOROLLOUT, "no rollout in progress")           \
	X(NOTINMAINT, "host is not in maintenance")      \
	X(READONLY, "read-only access")                  \
	X(PHASE, "host is in another phase")

enum {
#define HV__ERR_ENUM(name, text) HV_##name,
	HV_ERRORS(HV__ERR_ENUM)
#undef HV__ERR_ENUM
	    HV__NERR
};

/* Static text for an error code; never NULL. */
const char *hv_strerror(int code);

/* The code's symbolic name ("PAUSED"), for JSON and logs; never NULL. */
const char *hv_errname(int code);

/* The code for a symbolic name, or -1. */
int hv_errcode(const char *name);

/* Write a message into err (when not NULL) and return code: the one-line
 * "fail with a reason" of every module that reports through a buffer. */
int hv_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
