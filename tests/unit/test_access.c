/*
 * The read-only control socket's allowlist (node/access.c): every request
 * hvpeer's reading commands send passes, every write is refused, and so is
 * anything unknown; refusals name the command the user typed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../node/access.h"

/* status (also report, lease show, policy show, patch status), plan, ping
 * and the BMC's status and sensors only read. */
static void test_reads(void **state)
{
	(void)state;
	assert_true(hv_access_readonly("status", NULL));
	assert_true(hv_access_readonly("plan", NULL));
	assert_true(hv_access_readonly("ping", NULL));
	assert_true(hv_access_readonly("bmc", "status"));
	assert_true(hv_access_readonly("bmc", "sensors"));
}

static void test_writes(void **state)
{
	static const char *const writes[] = {
	    "pause",       "resume",     "lease-acquire", "lease-release",
	    "lease-break", "policy-set", "patch-submit",  "patch-abort",
	    "maint-enter", "maint-exit", "token-create",  "join",
	    "commit",      "fence",      "enroll",        "bundle-get",
	};

	(void)state;
	for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
		assert_false(hv_access_readonly(writes[i], NULL));
	for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
		assert_false(hv_access_readonly(writes[i], "status"));
}

/* The BMC's power actions, a bmc request without an action (hvpeerd reads
 * that as status, but hvpeer never sends it) and any other action write. */
static void test_bmc_power(void **state)
{
	static const char *const actions[] = {"on",   "off", "cycle",  "reset",
	                                      "soft", "",    "Status", "sensors "};

	(void)state;
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		assert_false(hv_access_readonly("bmc", actions[i]));
	assert_false(hv_access_readonly("bmc", NULL));
}

/* Unknown, empty or almost-right ops are writes: the list allows, it never
 * denies. */
static void test_unknown(void **state)
{
	(void)state;
	assert_false(hv_access_readonly("", NULL));
	assert_false(hv_access_readonly("Status", NULL));
	assert_false(hv_access_readonly("status ", NULL));
	assert_false(hv_access_readonly("stat", NULL));
	assert_false(hv_access_readonly("statusx", NULL));
	assert_false(hv_access_readonly("plan-set", NULL));
	assert_false(hv_access_readonly("report", NULL)); /* hvpeer sends status */
}

static void test_command_names(void **state)
{
	char b[64];

	(void)state;
	assert_string_equal(hv_access_command("pause", NULL, b, sizeof b), "pause");
	assert_string_equal(hv_access_command("lease-acquire", NULL, b, sizeof b),
	                    "lease acquire");
	assert_string_equal(hv_access_command("maint-enter", NULL, b, sizeof b),
	                    "maintenance enter");
	assert_string_equal(hv_access_command("policy-set", NULL, b, sizeof b),
	                    "policy set");
	assert_string_equal(hv_access_command("token-create", NULL, b, sizeof b),
	                    "token create");
	assert_string_equal(hv_access_command("bmc", "cycle", b, sizeof b),
	                    "bmc power cycle");
	assert_string_equal(hv_access_command("bmc", NULL, b, sizeof b), "bmc power");
	assert_string_equal(hv_access_command("bmc", "sensors", b, sizeof b),
	                    "bmc sensors");
	assert_string_equal(hv_access_command("frobnicate", "x", b, sizeof b),
	                    "frobnicate");
	/* what the client sent goes to the log: no line breaks, no escapes */
	assert_string_equal(hv_access_command("x\nforged\x1b[0m", NULL, b, sizeof b),
	                    "x?forged?[0m");
	assert_string_equal(hv_access_command("bmc", "cy\rcle\x7f", b, sizeof b),
	                    "bmc power cy?cle?");
	/* truncated, never overrun */
	assert_string_equal(hv_access_command("maint-enter", NULL, b, 6), "maint");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads),         cmocka_unit_test(test_writes),
	    cmocka_unit_test(test_bmc_power),     cmocka_unit_test(test_unknown),
	    cmocka_unit_test(test_command_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
