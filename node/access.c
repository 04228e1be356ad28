/*
 * The read-only control socket's allowlist (access.h): one table of the
 * requests hvpeer sends, what the user typed for each, and whether it only
 * reads. A request missing from it is a write.
 */
#include <stdio.h>
#include <string.h>

#include "access.h"

static const struct {
	const char *op;
	const char *action; /* NULL: any action (the command then names it) */
	const char *command;
	bool readonly;
} requests[] = {
    /* status also serves report, lease show, policy show, patch status */
    {"status", NULL, "status", true},
    {"plan", NULL, "plan", true},
    {"ping", NULL, "ping", true},
    {"bmc", "status", "bmc status", true},
    {"bmc", "sensors", "bmc sensors", true},
    {"bmc", NULL, "bmc power", false},
    {"pause", NULL, "pause", false},
    {"resume", NULL, "resume", false},
    {"lease-acquire", NULL, "lease acquire", false},
    {"lease-release", NULL, "lease release", false},
    {"lease-break", NULL, "lease break", false},
    {"policy-set", NULL, "policy set", false},
    {"patch-submit", NULL, "patch submit", false},
    {"patch-abort", NULL, "patch abort", false},
    {"maint-enter", NULL, "maintenance enter", false},
    {"maint-exit", NULL, "maintenance exit", false},
    {"token-create", NULL, "token create", false},
};

static int find(const char *op, const char *action)
{
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
		if (strcmp(requests[i].op, op) != 0)
			continue;
		if (requests[i].action == NULL ||
		    (action != NULL && strcmp(requests[i].action, action) == 0))
			return (int)i;
	}
	return -1;
}

bool hv_access_readonly(const char *op, const char *action)
{
	int i = find(op, action);

	return i >= 0 && requests[i].readonly;
}

const char *hv_access_command(const char *op, const char *action, char *buf, size_t len)
{
	int i = find(op, action);

	if (i < 0)
		snprintf(buf, len, "%s", op);
	else if (requests[i].action == NULL && action != NULL && action[0] != '\0')
		snprintf(buf, len, "%s %s", requests[i].command, action);
	else
		snprintf(buf, len, "%s", requests[i].command);
	/* op and action come from the client, and the name goes to the log */
	for (char *c = buf; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return buf;
}
