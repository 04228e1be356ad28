/*
 * What the read-only control socket serves (readonly-socket,
 * readonly-group): the requests that only read, and nothing else. hvpeerd
 * checks every request that arrives there against this list; hvpeer uses
 * the same list to decide whether it may fall back to that socket when its
 * user may not open the control socket. Pure functions, no I/O.
 */
#ifndef HV_ACCESS_H
#define HV_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

/* The hvpeer commands the read-only socket serves, for messages and help.
 * report, lease show, policy show and patch status read the status answer. */
#define HV_ACCESS_READONLY_COMMANDS                                                \
	"status, report, plan, lease show, policy show, patch status, bmc status " \
	"and bmc sensors"

/* Whether a request only reads: op is its "op", action its "action" or NULL.
 * Anything unknown writes. */
bool hv_access_readonly(const char *op, const char *action);

/* The hvpeer command that sends such a request ("lease acquire" for
 * "lease-acquire", "bmc power cycle"), written to buf (len > 0) with
 * control characters as '?': for messages and the log. Returns buf. */
const char *hv_access_command(const char *op, const char *action, char *buf, size_t len);

#endif
