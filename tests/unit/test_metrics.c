/*
 * Prometheus metrics (node/metrics.c): what applied commands count, and the
 * rendering of a state, checked line by line against the text exposition
 * format (every sample after its family's HELP and TYPE, each family in one
 * block, label values escaped, histogram buckets cumulative and ending with
 * +Inf equal to _count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../node/metrics.h"

static struct hv_cmd cmd(int type)
{
	struct hv_cmd c;

	memset(&c, 0, sizeof c);
	c.type = type;
	c.time_ms = 1000;
	return c;
}

static void apply(struct hv_state *s, uint64_t *index, struct hv_cmd c, int want)
{
	assert_int_equal(hv_state_apply_cmd(s, ++*index, &c, NULL), want);
}

static void add(struct hv_state *s, uint64_t *index, const char *name, uint64_t id)
{
	struct hv_cmd c = cmd(HV_CMD_MEMBER_ADD);

	snprintf(c.name, sizeof c.name, "%s", name);
	snprintf(c.address, sizeof c.address, "10.0.0.%llu:7440", (unsigned long long)id);
	c.id = id;
	c.role = 1;
	apply(s, index, c, HV_OK);
}

static void test_observe(void **state)
{
	struct hv_metrics_counters m;
	struct hv_cmd c = cmd(HV_CMD_MOVED);

	(void)state;
	memset(&m, 0, sizeof m);
	c.result = HV_OK;
	c.downtime_ms = 40;
	hv_metrics_observe(&m, &c, HV_OK);
	c.downtime_ms = 700;
	hv_metrics_observe(&m, &c, HV_OK);
	c.downtime_ms = 60000; /* beyond every bound */
	hv_metrics_observe(&m, &c, HV_OK);
	c.result = HV_TIMEOUT;
	hv_metrics_observe(&m, &c, HV_OK);
	hv_metrics_observe(&m, &c, HV_BADTOKEN); /* refused by the state */
	hv_metrics_observe(&m, NULL, HV_OK);
	assert_int_equal(m.migrations_ok, 3);
	assert_int_equal(m.migrations_failed, 1);
	assert_int_equal(m.downtime_count, 3);
	assert_int_equal(m.downtime_sum_ms, 60740);
	assert_int_equal(m.downtime_le[0], 0);  /* 5 ms */
	assert_int_equal(m.downtime_le[3], 1);  /* 50 ms */
	assert_int_equal(m.downtime_le[7], 2);  /* 1 s */
	assert_int_equal(m.downtime_le[10], 2); /* 10 s */
	assert_int_equal(m.refused[HV_BADTOKEN], 1);
}

/* The value of the sample line that starts with prefix, or -1. */
static double sample(const char *text, const char *prefix)
{
	const char *p = text;

	while ((p = strstr(p, prefix)) != NULL) {
		if (p == text || p[-1] == '\n')
			return strtod(p + strlen(prefix), NULL);
		p++;
	}
	return -1;
}

/* Every line a comment (HELP/TYPE) or a sample of the family whose TYPE
 * came last; no family twice. */
static void check_format(const char *text)
{
	char family[128] = "", seen[64][128];
	int n_seen = 0;
	const char *line = text;

	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		char buf[512];
		size_t len;
		assert_non_null(end); /* every line ends with \n */
		len = (size_t)(end - line);
		assert_true(len < sizeof buf);
		memcpy(buf, line, len);
		buf[len] = '\0';
		if (strncmp(buf, "# HELP ", 7) == 0) {
			/* nothing */
		} else if (strncmp(buf, "# TYPE ", 7) == 0) {
			char type[32];
			assert_int_equal(sscanf(buf + 7, "%127s %31s", family, type), 2);
			assert_true(!strcmp(type, "gauge") || !strcmp(type, "counter") ||
			            !strcmp(type, "histogram"));
			for (int i = 0; i < n_seen; i++)
				assert_string_not_equal(seen[i], family);
			snprintf(seen[n_seen++], sizeof seen[0], "%s", family);
		} else {
			size_t fl = strlen(family);
			char *sp = strrchr(buf, ' ');
			char *endp;
			assert_true(fl > 0);
			assert_int_equal(strncmp(buf, family, fl), 0);
			assert_true(buf[fl] == '{' || buf[fl] == ' ' || buf[fl] == '_');
			assert_non_null(sp);
			strtod(sp + 1, &endp);
			assert_true(*endp == '\0' && endp != sp + 1);
		}
		line = end + 1;
	}
}

static void test_render(void **state)
{
	struct hv_state *s = malloc(sizeof *s);
	struct hv_metrics_counters m;
	struct hv_metrics_raft raft = {.node = "h1",
	                               .role = "leader",
	                               .leader = "h1",
	                               .term = 7,
	                               .commit_index = 42,
	                               .last_applied = 41};
	struct hv_cmd c;
	uint64_t index = 0;
	char *text;
	size_t len;

	(void)state;
	memset(&m, 0, sizeof m);
	hv_state_init(s);
	add(s, &index, "h1", 1);
	add(s, &index, "h2", 2);
	c = cmd(HV_CMD_REPORT);
	snprintf(c.name, sizeof c.name, "h2");
	snprintf(c.phase, sizeof c.phase, "idle");
	snprintf(c.version, sizeof c.version, "say \"1.0\"\\n"); /* to be escaped */
	apply(s, &index, c, HV_OK);
	c = cmd(HV_CMD_LEASE_ACQUIRE);
	snprintf(c.name, sizeof c.name, "h2");
	apply(s, &index, c, HV_OK);
	c = cmd(HV_CMD_PAUSE);
	snprintf(c.by, sizeof c.by, "root@h1");
	snprintf(c.reason, sizeof c.reason, "test");
	apply(s, &index, c, HV_OK);
	c = cmd(HV_CMD_MOVED);
	c.result = HV_OK;
	c.downtime_ms = 120;
	hv_metrics_observe(&m, &c, HV_OK);
	m.refused[HV_PAUSED] = 2;

	text = hv_metrics_render(&m, s, &raft, 5000, &len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	check_format(text);
	assert_true(sample(text, "hvpeer_lease_held{host=\"h2\"} ") == 1);
	assert_true(sample(text, "hvpeer_lease_held{host=\"h1\"} ") == 0);
	assert_true(sample(text, "hvpeer_lease_token{host=\"h2\"} ") ==
	            4); /* its index */
	assert_true(sample(text, "hvpeer_paused ") == 1);
	assert_true(sample(text, "hvpeer_raft_term ") == 7);
	assert_true(sample(text, "hvpeer_raft_commit_index ") == 42);
	assert_true(sample(text, "hvpeer_raft_role{host=\"h1\",role=\"leader\"} ") == 1);
	assert_true(
	    sample(text, "hvpeer_maintenance_phase{host=\"h1\",phase=\"none\"} ") == 1);
	assert_true(sample(text, "hvpeer_patch_phase{host=\"h2\",phase=\"idle\"} ") == 1);
	assert_non_null(strstr(text, "version=\"say \\\"1.0\\\"\\\\n\"")); /* escaped */
	assert_true(
	    sample(text, "hvpeer_migration_downtime_seconds_bucket{le=\"0.1\"} ") == 0);
	assert_true(
	    sample(text, "hvpeer_migration_downtime_seconds_bucket{le=\"0.25\"} ") == 1);
	assert_true(
	    sample(text, "hvpeer_migration_downtime_seconds_bucket{le=\"+Inf\"} ") == 1);
	assert_true(sample(text, "hvpeer_migration_downtime_seconds_count ") == 1);
	assert_true(sample(text, "hvpeer_migration_downtime_seconds_sum ") == 0.12);
	assert_true(sample(text, "hvpeer_commands_refused_total{error=\"PAUSED\"} ") ==
	            2);
	free(text);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_observe),
	    cmocka_unit_test(test_render),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
