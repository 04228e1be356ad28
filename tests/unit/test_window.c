/* Maintenance windows: the syntax, its errors, and when windows open and
 * close in UTC and in zones with daylight-saving time, with blackouts. The
 * expected instants are written out in UTC, worked by hand from the zone
 * rules (Europe/Berlin: CET+1/CEST+2, switching at 01:00 UTC on the last
 * Sundays of March and October; America/New_York: EST-5/EDT-4, switching
 * at 02:00 local on the second Sunday of March and the first of November;
 * Asia/Kolkata: +05:30 all year). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../lib/err.h"
#include "../../patchfsm/window.h"

#define MIN_MS ((int64_t)60 * 1000)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)

/* UTC milliseconds of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = mo - 1,
	                .tm_mday = d,
	                .tm_hour = h,
	                .tm_min = mi};

	return (int64_t)timegm(&tm) * 1000;
}

static struct hv_window parse(const char *spec, const char *zone, const char *bo)
{
	struct hv_window w;
	char err[256] = "";

	if (hv_window_parse(spec, zone, bo, &w, err, sizeof err) != HV_OK)
		fail_msg("parse '%s' (%s; %s): %s", spec, zone, bo, err);
	return w;
}

/* next_change() gives (open, opens, closes). */
static void expect_next(const struct hv_window *w, int64_t t, bool open, int64_t opens,
                        int64_t closes)
{
	int64_t o = -1, c = -1;

	assert_int_equal(hv_window_next_change(w, t, &o, &c), open);
	assert_int_equal(o, opens);
	assert_int_equal(c, closes);
	assert_int_equal(hv_window_open_at(w, t), open);
}

/* Closed until `opens`, open from it until `closes`, seen from `from`
 * (closed), and from inside. */
static void expect_window(const struct hv_window *w, int64_t from, int64_t opens,
                          int64_t closes)
{
	expect_next(w, from, false, opens, closes);
	assert_false(hv_window_open_at(w, opens - 1));
	expect_next(w, opens, true, opens, closes);
	expect_next(w, closes - 1, true, closes - 1, closes);
	assert_false(hv_window_open_at(w, closes));
	assert_true(hv_window_fits(w, opens, closes - opens));
	assert_false(hv_window_fits(w, opens, closes - opens + 1));
}

static void same(const struct hv_window *a, const struct hv_window *b)
{
	assert_string_equal(a->zone, b->zone);
	assert_int_equal(a->n_slots, b->n_slots);
	for (unsigned i = 0; i < a->n_slots; i++) {
		assert_int_equal(a->slots[i].days, b->slots[i].days);
		assert_int_equal(a->slots[i].start, b->slots[i].start);
		assert_int_equal(a->slots[i].end, b->slots[i].end);
	}
	assert_int_equal(a->n_blackouts, b->n_blackouts);
	for (unsigned i = 0; i < a->n_blackouts; i++) {
		assert_int_equal(a->blackouts[i].first, b->blackouts[i].first);
		assert_int_equal(a->blackouts[i].last, b->blackouts[i].last);
	}
}

/* ---- syntax ---------------------------------------------------------- */

/* What an operator writes, and what `hvpeer status` shows back; the shown
 * spec and blackouts parse back to the same schedule. */
static void test_format(void **state)
{
	static const struct {
		const char *spec, *zone, *bo, *want;
	} cases[] = {
	    {"Mon-Fri 22:00-04:00; Sat,Sun 00:00-24:00", "Europe/Berlin", NULL,
	     "Mon-Fri 22:00-04:00; Sat,Sun 00:00-24:00 (Europe/Berlin)"},
	    {"  mon - FRI 22:00 - 04:00;sat , sun 0:00-24:00 ", NULL, "",
	     "Mon-Fri 22:00-04:00; Sat,Sun 00:00-24:00 (UTC)"},
	    {"Mon,Tue,Wed,Thu,Fri,Sat,Sun 01:00-02:00", "", NULL,
	     "daily 01:00-02:00 (UTC)"},
	    {"DAILY 9:05-10:00", "UTC", NULL, "daily 09:05-10:00 (UTC)"},
	    {"Sun-Sat 10:00-11:00", "UTC", NULL, "daily 10:00-11:00 (UTC)"},
	    {"Fri-Mon 22:00-22:00", "UTC", NULL, "Fri-Mon 22:00-22:00 (UTC)"},
	    {"Sun,Mon 23:00-01:00", "UTC", NULL, "Mon,Sun 23:00-01:00 (UTC)"},
	    {"Sat-Mon,Wed 10:00-11:00", "UTC", NULL, "Sat-Mon,Wed 10:00-11:00 (UTC)"},
	    {"Sun,Mon,Wed,Fri 10:00-11:00", "UTC", NULL,
	     "Mon,Wed,Fri,Sun 10:00-11:00 (UTC)"},
	    {"Fri,Wed,Mon 12:00-13:00", "UTC", NULL, "Mon,Wed,Fri 12:00-13:00 (UTC)"},
	    {"Sat-Sun,Tue 10:00-11:00", "UTC", NULL, "Tue,Sat,Sun 10:00-11:00 (UTC)"},
	    {"Mon-Wed,Fri,Mon 10:00-11:00", "UTC", NULL, "Mon-Wed,Fri 10:00-11:00 (UTC)"},
	    {"Mon-Mon 10:00-11:00", "UTC", NULL, "Mon 10:00-11:00 (UTC)"},
	    {"Thu-Tue 10:00-11:00", "UTC", NULL, "Thu-Tue 10:00-11:00 (UTC)"},
	    {"daily,Mon 00:00-00:00", "UTC", NULL, "daily 00:00-00:00 (UTC)"},
	    {"Tue 00:00-02:00;Mon 22:00-24:00", "Asia/Kolkata", NULL,
	     "Tue 00:00-02:00; Mon 22:00-24:00 (Asia/Kolkata)"},
	    {"Sat 10:00-12:00", "America/New_York",
	     " 2024-12-24..2024-12-26,2025-01-01  2025-02-28 ,, 2024-02-29..2024-02-29",
	     "Sat 10:00-12:00 (America/New_York) except 2024-12-24..2024-12-26, "
	     "2025-01-01, 2025-02-28, 2024-02-29"},
	};

	(void)state;
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hv_window w = parse(cases[i].spec, cases[i].zone, cases[i].bo), w2;
		char buf[HV_WINDOW_FORMAT_MAX], spec[HV_WINDOW_FORMAT_MAX], *zone, *bo;

		assert_int_equal(hv_window_format(&w, buf, sizeof buf), HV_OK);
		assert_string_equal(buf, cases[i].want);
		/* Back: "SPEC (ZONE)[ except BLACKOUTS]". */
		memcpy(spec, buf, sizeof buf);
		zone = strstr(spec, " (");
		assert_non_null(zone);
		*zone = '\0';
		zone += 2;
		bo = strstr(zone, ") except ");
		if (bo != NULL) {
			*bo = '\0';
			bo += 9;
		} else
			zone[strlen(zone) - 1] = '\0';
		w2 = parse(spec, zone, bo);
		same(&w, &w2);
	}
}

/* A small buffer gets a cut, terminated text and HV_FULL. */
static void test_format_full(void **state)
{
	struct hv_window w = parse("Mon-Fri 22:00-04:00", "UTC", "2024-12-24");
	char buf[HV_WINDOW_FORMAT_MAX];
	struct hv_window big;
	char spec[HV_WINDOW_TEXT_MAX + 1] = "", bo[HV_WINDOW_TEXT_MAX + 1] = "";

	(void)state;
	assert_int_equal(hv_window_format(&w, buf, 10), HV_FULL);
	assert_string_equal(buf, "Mon-Fri 2");
	assert_int_equal(hv_window_format(&w, buf, 0), HV_FULL);
	/* The largest schedule fits in HV_WINDOW_FORMAT_MAX. */
	for (int i = 0; i < HV_WINDOW_SLOTS_MAX; i++)
		strcat(spec,
		       i == 0 ? "Mon,Wed,Fri,Sun 00:00-24:00" : ";Mon,Wed 1:00-2:00");
	for (int i = 0; i < HV_WINDOW_BLACKOUTS_MAX; i++) {
		char one[32];

		snprintf(one, sizeof one, "%s2024-%02d-%02d", i == 0 ? "" : ",",
		         1 + i / 28, 1 + i % 28);
		strcat(bo, one);
	}
	big = parse(spec, "America/Argentina/ComodRivadavia", bo);
	assert_int_equal(hv_window_format(&big, buf, sizeof buf), HV_OK);
	assert_true(strlen(buf) > 1000);
}

/* Every error names the window and the token, and leaves *w alone. */
static void test_invalid(void **state)
{
	static char long_spec[HV_WINDOW_TEXT_MAX + 2], many[40 * 17], long_bo[1100],
	    many_bo[70 * 11];
	static const char *long_zone =
	    "Aaaaaaaaaa/Bbbbbbbbbb/Cccccccccc/Dddddddddd/Eeeeeeeeee/Ffffffffff/G";
	const struct {
		const char *spec, *zone, *bo, *want;
	} cases[] = {
	    {"Mon-Fri 22:00-04:00; Mon-Fry 01:00-02:00", NULL, NULL,
	     "window 2: 'Mon-Fry': unknown day 'Fry' (days are Mon Tue Wed Thu Fri "
	     "Sat Sun, or daily)"},
	    {"Monday 01:00-02:00", NULL, NULL,
	     "window 1: 'Monday': unknown day 'Monday' (days are Mon Tue Wed Thu Fri "
	     "Sat Sun, or daily)"},
	    {"Mon/Tue 01:00-02:00", NULL, NULL,
	     "window 1: 'Mon/Tue': unknown day 'Mon/Tue' (days are Mon Tue Wed Thu "
	     "Fri Sat Sun, or daily)"},
	    {"Mo\x01n 01:00-02:00", NULL, NULL,
	     "window 1: 'Mo?n': unknown day 'Mo?n' (days are Mon Tue Wed Thu Fri Sat "
	     "Sun, or daily)"},
	    {"Mon,Xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx 01:00-02:00", NULL,
	     NULL,
	     "window 1: 'Mon,Xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...': unknown day "
	     "'Xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' (days are Mon Tue Wed Thu "
	     "Fri Sat Sun, or daily)"},
	    {"Mon,,Fri 01:00-02:00", NULL, NULL,
	     "window 1: 'Mon,,Fri': a day is missing (days are Mon Tue Wed Thu Fri "
	     "Sat Sun, or daily)"},
	    {"Mon, 01:00-02:00", NULL, NULL,
	     "window 1: 'Mon,': a day is missing (days are Mon Tue Wed Thu Fri Sat "
	     "Sun, or daily)"},
	    {"Mon- 01:00-02:00", NULL, NULL,
	     "window 1: 'Mon-': a range of days lacks its last day (write e.g. "
	     "Mon-Fri)"},
	    {"Mon-Fry 01:00-02:00", NULL, NULL,
	     "window 1: 'Mon-Fry': unknown day 'Fry' (days are Mon Tue Wed Thu Fri Sat "
	     "Sun, or daily)"},
	    {"daily-Fri 01:00-02:00", NULL, NULL,
	     "window 1: 'daily-Fri': 'daily' cannot be part of a range"},
	    {"Mon Tue 01:00-02:00", NULL, NULL,
	     "window 1: 'Mon Tue': unexpected 'T' (separate days with ',', e.g. "
	     "Sat,Sun)"},
	    {"Mon 25:00-04:00", NULL, NULL,
	     "window 1: '25:00-04:00': bad time '25:00' (hours run from 00 to 24)"},
	    {"Mon 12:60-13:00", NULL, NULL,
	     "window 1: '12:60-13:00': bad time '12:60' (minutes run from 00 to 59)"},
	    {"Mon 10:00-12:60", NULL, NULL,
	     "window 1: '10:00-12:60': bad time '12:60' (minutes run from 00 to 59)"},
	    {"Mon 10:00-24:30", NULL, NULL,
	     "window 1: '10:00-24:30': bad time '24:30' (24:00 is the latest time of a "
	     "day)"},
	    {"Mon 24:00-02:00", NULL, NULL,
	     "window 1: '24:00-02:00': a window cannot start at 24:00 (write 00:00 on "
	     "the next day)"},
	    {"Mon 22-04", NULL, NULL,
	     "window 1: '22-04': bad time range (write HH:MM-HH:MM, e.g. 22:00-04:00)"},
	    {"Mon 22:00", NULL, NULL,
	     "window 1: '22:00': bad time range (write HH:MM-HH:MM, e.g. 22:00-04:00)"},
	    {"Mon 22:00-04:00 x", NULL, NULL,
	     "window 1: '22:00-04:00 x': bad time range (write HH:MM-HH:MM, e.g. "
	     "22:00-04:00)"},
	    {"Mon 22:00-04:00 Tue", NULL, NULL,
	     "window 1: '22:00-04:00 Tue': bad time range (write HH:MM-HH:MM, e.g. "
	     "22:00-04:00)"},
	    {"Mon 123:00-04:00", NULL, NULL,
	     "window 1: '123:00-04:00': bad time range (write HH:MM-HH:MM, e.g. "
	     "22:00-04:00)"},
	    {"Mon 2:0-04:00", NULL, NULL,
	     "window 1: '2:0-04:00': bad time range (write HH:MM-HH:MM, e.g. "
	     "22:00-04:00)"},
	    {"Mon 02:000-04:00", NULL, NULL,
	     "window 1: '02:000-04:00': bad time range (write HH:MM-HH:MM, e.g. "
	     "22:00-04:00)"},
	    {"22:00-04:00", NULL, NULL,
	     "window 1: '22:00-04:00': no days (start it with e.g. 'daily' or "
	     "'Mon-Fri')"},
	    {"Mon", NULL, NULL,
	     "window 1: 'Mon': no time range (write e.g. 'Mon 22:00-04:00')"},
	    {"", NULL, NULL,
	     "empty window spec (write e.g. 'Mon-Fri 22:00-04:00; Sat,Sun "
	     "00:00-24:00')"},
	    {" \t ", NULL, NULL,
	     "empty window spec (write e.g. 'Mon-Fri 22:00-04:00; Sat,Sun "
	     "00:00-24:00')"},
	    {NULL, NULL, NULL,
	     "empty window spec (write e.g. 'Mon-Fri 22:00-04:00; Sat,Sun "
	     "00:00-24:00')"},
	    {"Mon 01:00-02:00;", NULL, NULL,
	     "window 2: empty (two ';' in a row, or one at an end?)"},
	    {"Mon 01:00-02:00; ;Tue 01:00-02:00", NULL, NULL,
	     "window 2: empty (two ';' in a row, or one at an end?)"},
	    {long_spec, NULL, NULL,
	     "window spec too long (1024 characters, at most 1023)"},
	    {many, NULL, NULL, "too many windows (at most 32)"},
	    {"Mon 01:00-02:00", "Europe/Berln", NULL,
	     "zone 'Europe/Berln': not in the time zone database (/usr/share/zoneinfo, "
	     "Debian package tzdata); names are case-sensitive, e.g. Europe/Berlin, "
	     "America/New_York, UTC"},
	    {"Mon 01:00-02:00", "europe/berlin", NULL,
	     "zone 'europe/berlin': not in the time zone database (/usr/share/zoneinfo, "
	     "Debian package tzdata); names are case-sensitive, e.g. Europe/Berlin, "
	     "America/New_York, UTC"},
	    {"Mon 01:00-02:00", "Europe", NULL,
	     "zone 'Europe': not in the time zone database (/usr/share/zoneinfo, Debian "
	     "package tzdata); names are case-sensitive, e.g. Europe/Berlin, "
	     "America/New_York, UTC"},
	    {"Mon 01:00-02:00", "zone.tab", NULL,
	     "zone 'zone.tab': not in the time zone database (/usr/share/zoneinfo, "
	     "Debian package tzdata); names are case-sensitive, e.g. Europe/Berlin, "
	     "America/New_York, UTC"},
	    {"Mon 01:00-02:00", "../../../etc/passwd", NULL,
	     "zone '../../../etc/passwd': not a time zone name (write e.g. "
	     "Europe/Berlin or UTC)"},
	    {"Mon 01:00-02:00", "/etc/localtime", NULL,
	     "zone '/etc/localtime': not a time zone name (write e.g. Europe/Berlin or "
	     "UTC)"},
	    {"Mon 01:00-02:00", "Europe//Berlin", NULL,
	     "zone 'Europe//Berlin': not a time zone name (write e.g. Europe/Berlin or "
	     "UTC)"},
	    {"Mon 01:00-02:00", "Europe/Berlin/", NULL,
	     "zone 'Europe/Berlin/': not a time zone name (write e.g. Europe/Berlin or "
	     "UTC)"},
	    {"Mon 01:00-02:00", "Europe/Berlin\n", NULL,
	     "zone 'Europe/Berlin?': not a time zone name (write e.g. Europe/Berlin or "
	     "UTC)"},
	    {"Mon 01:00-02:00", "CET CEST", NULL,
	     "zone 'CET CEST': not a time zone name (write e.g. Europe/Berlin or UTC)"},
	    {"Mon 01:00-02:00", "right/Europe/Berlin", NULL,
	     "zone 'right/Europe/Berlin': zones that count leap seconds are not "
	     "supported (use 'Europe/Berlin')"},
	    {"Mon 01:00-02:00", long_zone, NULL,
	     "zone 'Aaaaaaaaaa/Bbbbbbbbbb/Cccccccccc/Ddddddd...': name too long (at "
	     "most 63 characters)"},
	    {"Mon 01:00-02:00", NULL, "2024-02-30",
	     "blackout '2024-02-30': no such date (years from 1970)"},
	    {"Mon 01:00-02:00", NULL, "2024-02-29, 2023-02-29",
	     "blackout '2023-02-29': no such date (years from 1970)"},
	    {"Mon 01:00-02:00", NULL, "2024-13-01",
	     "blackout '2024-13-01': no such date (years from 1970)"},
	    {"Mon 01:00-02:00", NULL, "2024-00-10",
	     "blackout '2024-00-10': no such date (years from 1970)"},
	    {"Mon 01:00-02:00", NULL, "1969-12-31",
	     "blackout '1969-12-31': no such date (years from 1970)"},
	    {"Mon 01:00-02:00", NULL, "2024-1-01",
	     "blackout '2024-1-01': bad date (write YYYY-MM-DD or "
	     "YYYY-MM-DD..YYYY-MM-DD)"},
	    {"Mon 01:00-02:00", NULL, "2024-12-24..",
	     "blackout '2024-12-24..': bad date (write YYYY-MM-DD or "
	     "YYYY-MM-DD..YYYY-MM-DD)"},
	    {"Mon 01:00-02:00", NULL, "2024-12-24...2024-12-25",
	     "blackout '2024-12-24...2024-12-25': bad date (write YYYY-MM-DD or "
	     "YYYY-MM-DD..YYYY-MM-DD)"},
	    {"Mon 01:00-02:00", NULL, "2024-12-24 .. 2024-12-25",
	     "blackout '..': bad date (write YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD)"},
	    {"Mon 01:00-02:00", NULL, "tomorrow",
	     "blackout 'tomorrow': bad date (write YYYY-MM-DD or "
	     "YYYY-MM-DD..YYYY-MM-DD)"},
	    {"Mon 01:00-02:00", NULL, "2024-12-26..2024-12-24",
	     "blackout '2024-12-26..2024-12-24': the range ends before it starts"},
	    {"Mon 01:00-02:00", NULL, many_bo,
	     "too many blackouts (at most 64 dates or ranges)"},
	    {"Mon 01:00-02:00", NULL, long_bo,
	     "blackout list too long (1099 characters, at most 1023)"},
	};
	struct hv_window w = parse("Sat 10:00-12:00", "Asia/Kolkata", "2024-06-08"), keep;
	char buf[HV_WINDOW_FORMAT_MAX], before[HV_WINDOW_FORMAT_MAX];

	(void)state;
	memset(long_spec, 'x', HV_WINDOW_TEXT_MAX + 1);
	for (int i = 0; i < 33; i++)
		strcat(many, "Mon 01:00-02:00;");
	many[strlen(many) - 1] = '\0';
	memset(long_bo, ' ', sizeof long_bo - 1);
	for (int i = 0; i < 65; i++)
		strcat(many_bo, "2024-01-01,");
	keep = w;
	hv_window_format(&w, before, sizeof before);
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[512] = "";
		int rv = hv_window_parse(cases[i].spec, cases[i].zone, cases[i].bo, &w,
		                         err, sizeof err);

		if (rv != HV_INVAL)
			fail_msg("case %u '%s' parsed", i, cases[i].spec);
		if (strcmp(err, cases[i].want) != 0)
			fail_msg("case %u:\n got  %s\n want %s", i, err, cases[i].want);
		/* No NULL err needed; a short one is cut, terminated. */
		assert_int_equal(hv_window_parse(cases[i].spec, cases[i].zone,
		                                 cases[i].bo, &w, NULL, 0),
		                 HV_INVAL);
		assert_int_equal(hv_window_parse(cases[i].spec, cases[i].zone,
		                                 cases[i].bo, &w, err, 8),
		                 HV_INVAL);
		assert_int_equal(strlen(err), 7);
	}
	same(&w, &keep);
	hv_window_format(&w, buf, sizeof buf);
	assert_string_equal(buf, before);
}

/* The edges of what is accepted. */
static void test_valid_edges(void **state)
{
	struct hv_window w;
	char spec[HV_WINDOW_TEXT_MAX + 1];

	(void)state;
	/* Exactly HV_WINDOW_TEXT_MAX characters, HV_WINDOW_SLOTS_MAX windows. */
	memset(spec, ' ', sizeof spec);
	spec[HV_WINDOW_TEXT_MAX] = '\0';
	memcpy(spec, "Mon 01:00-02:00", 15);
	w = parse(spec, NULL, NULL);
	assert_int_equal(w.n_slots, 1);
	spec[0] = '\0';
	for (int i = 0; i < HV_WINDOW_SLOTS_MAX; i++)
		strcat(spec, i == 0 ? "Mon 01:00-02:00" : ";Mon 01:00-02:00");
	w = parse(spec, NULL, NULL);
	assert_int_equal(w.n_slots, HV_WINDOW_SLOTS_MAX);
	/* Midnight as 24:00 and 00:00, single-digit hours, 23:59, tabs. */
	w = parse("Mon 0:00-24:00;Tue\t23:59-0:00 ; Wed 9:30-9:31", "Etc/GMT-14", NULL);
	assert_int_equal(w.slots[0].start, 0);
	assert_int_equal(w.slots[0].end, 1440);
	assert_int_equal(w.slots[1].start, 1439);
	assert_int_equal(w.slots[1].end, 0);
	assert_int_equal(w.slots[2].start, 570);
	/* A name of 63 characters is looked up (and not found). */
	{
		char err[256];

		assert_int_equal(hv_window_parse("Mon 01:00-02:00",
		                                 "Aaaaaaaaaa/Bbbbbbbbbb/Cccccccccc/"
		                                 "Dddddddddd/Eeeeeeeeee/Ffffffff",
		                                 NULL, &w, err, sizeof err),
		                 HV_INVAL);
		assert_non_null(strstr(err, "not in the time zone database"));
	}
	/* Blackout dates to the end of 9999 and of February in leap years. */
	w = parse("daily 00:00-24:00", NULL, "2000-02-29, 9999-12-31, 1970-01-01");
	assert_int_equal(w.blackouts[0].first, 11016);
	assert_int_equal(w.blackouts[1].first, 2932896);
	assert_int_equal(w.blackouts[2].first, 0);
}

/* ---- evaluation in UTC ----------------------------------------------- */

static void test_utc(void **state)
{
	struct hv_window w =
	    parse("Mon-Fri 22:00-04:00; Sat,Sun 00:00-24:00", NULL, NULL);

	(void)state;
	/* Monday 2024-06-03, night into Tuesday. */
	expect_window(&w, utc(2024, 6, 3, 12, 0), utc(2024, 6, 3, 22, 0),
	              utc(2024, 6, 4, 4, 0));
	assert_false(hv_window_open_at(&w, utc(2024, 6, 4, 12, 0)));
	/* Friday 22:00 runs into the weekend and on to Monday 00:00: one
	 * stretch of 50 hours. */
	expect_window(&w, utc(2024, 6, 7, 4, 0), utc(2024, 6, 7, 22, 0),
	              utc(2024, 6, 10, 0, 0));
	expect_next(&w, utc(2024, 6, 8, 12, 0), true, utc(2024, 6, 8, 12, 0),
	            utc(2024, 6, 10, 0, 0));
	assert_true(hv_window_fits(&w, utc(2024, 6, 8, 12, 0), 36 * HOUR_MS));
	assert_false(hv_window_fits(&w, utc(2024, 6, 8, 12, 0), 36 * HOUR_MS + 1));
	/* Sunday's window ends at Monday 00:00, Monday's opens at 22:00. */
	expect_next(&w, utc(2024, 6, 10, 0, 0), false, utc(2024, 6, 10, 22, 0),
	            utc(2024, 6, 11, 4, 0));
	/* Milliseconds count. */
	assert_false(hv_window_open_at(&w, utc(2024, 6, 3, 22, 0) - 1));
	assert_true(hv_window_open_at(&w, utc(2024, 6, 4, 4, 0) - 1));
}

/* Sunday night into Monday: the week wraps. */
static void test_sunday_into_monday(void **state)
{
	struct hv_window w = parse("Sun 22:00-02:00", "UTC", NULL);

	(void)state;
	expect_window(&w, utc(2024, 6, 4, 12, 0), utc(2024, 6, 9, 22, 0),
	              utc(2024, 6, 10, 2, 0));
	assert_true(hv_window_open_at(&w, utc(2024, 6, 10, 1, 59)));
	assert_false(hv_window_open_at(&w, utc(2024, 6, 8, 23, 0)));
	/* Monday 2024-06-03 01:00 is inside the window of Sunday 06-02. */
	assert_true(hv_window_open_at(&w, utc(2024, 6, 3, 1, 0)));
	/* And across a year end: Sunday 2023-12-31 into 2024. */
	expect_window(&w, utc(2023, 12, 28, 0, 0), utc(2023, 12, 31, 22, 0),
	              utc(2024, 1, 1, 2, 0));
	/* "Fri-Mon" wraps past Sunday as days do. */
	w = parse("Fri-Mon 10:00-11:00", "UTC", NULL);
	for (int d = 3; d <= 9; d++)
		assert_int_equal(hv_window_open_at(&w, utc(2024, 6, d, 10, 30)),
		                 d == 3 || d >= 7);
}

/* 00:00-24:00, 24-hour windows, and a schedule that never closes. */
static void test_whole_days(void **state)
{
	struct hv_window w = parse("Sat 00:00-24:00", NULL, NULL);
	int64_t o, c;

	(void)state;
	expect_window(&w, utc(2024, 6, 7, 23, 59), utc(2024, 6, 8, 0, 0),
	              utc(2024, 6, 9, 0, 0));
	w = parse("Mon 08:00-08:00", NULL, NULL);
	expect_window(&w, utc(2024, 6, 3, 7, 0), utc(2024, 6, 3, 8, 0),
	              utc(2024, 6, 4, 8, 0));
	/* Every day, all day: open beyond the horizon. */
	w = parse("daily 00:00-24:00", "Europe/Berlin", NULL);
	expect_next(&w, utc(2024, 6, 3, 7, 0), true, utc(2024, 6, 3, 7, 0), 0);
	assert_true(hv_window_fits(&w, utc(2024, 6, 3, 7, 0), 399 * DAY_MS));
	assert_true(hv_window_fits(&w, utc(2024, 6, 3, 7, 0), 400 * DAY_MS));
	assert_false(hv_window_fits(&w, utc(2024, 6, 3, 7, 0), 400 * DAY_MS + 1));
	w = parse("daily 00:00-00:00", NULL, NULL);
	assert_true(hv_window_next_change(&w, utc(2030, 1, 1, 0, 0), &o, &c));
	assert_int_equal(c, 0);
	/* Seven windows that touch are one. */
	w = parse("Mon 12:00-12:00; Tue 12:00-12:00; Wed 12:00-12:00; Thu 12:00-12:00; "
	          "Fri 12:00-12:00; Sat 12:00-12:00; Sun 12:00-12:00",
	          NULL, NULL);
	expect_next(&w, utc(2024, 6, 3, 7, 0), true, utc(2024, 6, 3, 7, 0), 0);
}

/* ---- daylight-saving time -------------------------------------------- */

/* 2024-03-31, Berlin: 02:00 CET becomes 03:00 CEST at 01:00 UTC. */
static void test_berlin_spring_forward(void **state)
{
	const int64_t sat = utc(2024, 3, 30, 12, 0);
	struct hv_window w = parse("Sun 01:00-04:00", "Europe/Berlin", NULL);

	(void)state;
	/* 01:00 CET to 04:00 CEST: two hours. */
	expect_window(&w, sat, utc(2024, 3, 31, 0, 0), utc(2024, 3, 31, 2, 0));
	/* The hour that does not exist is never open; the next Sunday's is. */
	w = parse("Sun 02:00-03:00", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 4, 7, 0, 0), utc(2024, 4, 7, 1, 0));
	for (int64_t t = utc(2024, 3, 30, 23, 0); t < utc(2024, 3, 31, 3, 0);
	     t += 15 * MIN_MS)
		assert_false(hv_window_open_at(&w, t));
	/* A window inside the gap, too. */
	w = parse("Sun 02:15-02:45", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 4, 7, 0, 15), utc(2024, 4, 7, 0, 45));
	/* Starting in the gap: opens when the clocks jump to 03:00 CEST. */
	w = parse("Sun 02:30-05:00", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 3, 31, 1, 0), utc(2024, 3, 31, 3, 0));
	/* Ending in the gap: closes then. */
	w = parse("Sun 00:00-02:30", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 3, 30, 23, 0), utc(2024, 3, 31, 1, 0));
	/* A night window across it: 22:00 CET to 04:00 CEST, five hours. */
	w = parse("Sat 22:00-04:00", "Europe/Berlin", NULL);
	expect_window(&w, utc(2024, 3, 30, 0, 0), utc(2024, 3, 30, 21, 0),
	              utc(2024, 3, 31, 2, 0));
	/* Winter and summer. */
	w = parse("Mon 10:00-11:00", "Europe/Berlin", NULL);
	expect_window(&w, utc(2024, 1, 7, 0, 0), utc(2024, 1, 8, 9, 0),
	              utc(2024, 1, 8, 10, 0));
	expect_window(&w, utc(2024, 7, 7, 0, 0), utc(2024, 7, 8, 8, 0),
	              utc(2024, 7, 8, 9, 0));
}

/* 2024-10-27, Berlin: 03:00 CEST becomes 02:00 CET at 01:00 UTC, so the
 * local 02:00-03:00 happens twice. */
static void test_berlin_fall_back(void **state)
{
	const int64_t sat = utc(2024, 10, 26, 12, 0);
	struct hv_window w = parse("Sun 02:00-03:00", "Europe/Berlin", NULL);

	(void)state;
	/* Open through both passes: 02:00 CEST to 03:00 CET, two hours. */
	expect_window(&w, sat, utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 2, 0));
	assert_true(hv_window_open_at(&w, utc(2024, 10, 27, 1, 0)));
	/* Closes at the first 02:30. */
	w = parse("Sun 00:00-02:30", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 10, 26, 22, 0), utc(2024, 10, 27, 0, 30));
	/* Opens at the first 02:30, closes at 04:00 CET: two and a half hours. */
	w = parse("Sun 02:30-04:00", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 3, 0));
	/* 03:00 first comes after the second pass. */
	w = parse("Sun 03:00-04:00", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 10, 27, 2, 0), utc(2024, 10, 27, 3, 0));
	/* A night across it: 22:00 CEST to 04:00 CET, seven hours. */
	w = parse("Sat 22:00-04:00", "Europe/Berlin", NULL);
	expect_window(&w, utc(2024, 10, 26, 0, 0), utc(2024, 10, 26, 20, 0),
	              utc(2024, 10, 27, 3, 0));
	/* 24 hours of wall clock that night are 25 real ones. */
	w = parse("Sun 00:00-24:00", "Europe/Berlin", NULL);
	expect_window(&w, sat, utc(2024, 10, 26, 22, 0), utc(2024, 10, 27, 23, 0));
	w = parse("Sun 00:00-24:00", "Europe/Berlin", NULL);
	expect_window(&w, utc(2024, 3, 30, 0, 0), utc(2024, 3, 30, 23, 0),
	              utc(2024, 3, 31, 22, 0));
}

/* New York switches at 02:00 local: 2024-03-10 at 07:00 UTC (EST to EDT),
 * 2024-11-03 at 06:00 UTC (EDT to EST). */
static void test_new_york(void **state)
{
	struct hv_window w = parse("Mon-Fri 09:00-17:00", "America/New_York", NULL);

	(void)state;
	expect_window(&w, utc(2024, 1, 8, 0, 0), utc(2024, 1, 8, 14, 0),
	              utc(2024, 1, 8, 22, 0));
	expect_window(&w, utc(2024, 7, 8, 0, 0), utc(2024, 7, 8, 13, 0),
	              utc(2024, 7, 8, 21, 0));
	/* Friday 17:00 EDT is Friday 21:00 UTC; Monday 09:00 EDT next. */
	expect_next(&w, utc(2024, 7, 12, 21, 0), false, utc(2024, 7, 15, 13, 0),
	            utc(2024, 7, 15, 21, 0));
	/* Spring: 01:00 EST to 05:00 EDT is three hours. */
	w = parse("Sun 01:00-05:00", "America/New_York", NULL);
	expect_window(&w, utc(2024, 3, 9, 12, 0), utc(2024, 3, 10, 6, 0),
	              utc(2024, 3, 10, 9, 0));
	/* Fall: 01:00-02:00 happens twice, open through both. */
	w = parse("Sun 01:00-02:00", "America/New_York", NULL);
	expect_window(&w, utc(2024, 11, 2, 12, 0), utc(2024, 11, 3, 5, 0),
	              utc(2024, 11, 3, 7, 0));
	/* Saturday 23:00 EDT to the first 01:30 (EDT). */
	w = parse("Sat 23:00-01:30", "America/New_York", NULL);
	expect_window(&w, utc(2024, 11, 2, 12, 0), utc(2024, 11, 3, 3, 0),
	              utc(2024, 11, 3, 5, 30));
}

/* Asia/Kolkata, +05:30: a local Monday starts on Sunday 18:30 UTC. */
static void test_kolkata(void **state)
{
	struct hv_window w = parse("Mon 00:00-01:00", "Asia/Kolkata", NULL);

	(void)state;
	expect_window(&w, utc(2024, 6, 8, 0, 0), utc(2024, 6, 9, 18, 30),
	              utc(2024, 6, 9, 19, 30));
	assert_false(hv_window_open_at(&w, utc(2024, 6, 10, 0, 30)));
	w = parse("daily 09:00-17:30", "Asia/Kolkata", NULL);
	expect_window(&w, utc(2024, 6, 3, 0, 0), utc(2024, 6, 3, 3, 30),
	              utc(2024, 6, 3, 12, 0));
	/* The local date 2024-06-10 (a Monday) is blacked out. */
	w = parse("Mon 00:00-01:00", "Asia/Kolkata", "2024-06-10");
	expect_window(&w, utc(2024, 6, 9, 0, 0), utc(2024, 6, 16, 18, 30),
	              utc(2024, 6, 16, 19, 30));
	/* Local midnight of a blackout: 18:30 UTC the day before. */
	w = parse("daily 00:00-24:00", "Asia/Kolkata", "2024-06-10");
	expect_next(&w, utc(2024, 6, 9, 12, 0), true, utc(2024, 6, 9, 12, 0),
	            utc(2024, 6, 9, 18, 30));
	expect_next(&w, utc(2024, 6, 9, 18, 30), false, utc(2024, 6, 10, 18, 30), 0);
}

/* ---- blackouts ------------------------------------------------------- */

static void test_blackouts(void **state)
{
	struct hv_window w = parse("daily 22:00-04:00", NULL, "2024-12-24");

	(void)state;
	/* The night into the blackout date is cut at its midnight. */
	expect_window(&w, utc(2024, 12, 23, 12, 0), utc(2024, 12, 23, 22, 0),
	              utc(2024, 12, 24, 0, 0));
	assert_true(hv_window_fits(&w, utc(2024, 12, 23, 22, 0), 2 * HOUR_MS));
	assert_false(hv_window_fits(&w, utc(2024, 12, 23, 22, 0), 2 * HOUR_MS + 1));
	/* Nothing on the date; the night that started on it opens at the next
	 * midnight. */
	assert_false(hv_window_open_at(&w, utc(2024, 12, 24, 1, 0)));
	assert_false(hv_window_open_at(&w, utc(2024, 12, 24, 23, 0)));
	expect_window(&w, utc(2024, 12, 24, 1, 0), utc(2024, 12, 25, 0, 0),
	              utc(2024, 12, 25, 4, 0));
	expect_next(&w, utc(2024, 12, 25, 4, 0), false, utc(2024, 12, 25, 22, 0),
	            utc(2024, 12, 26, 4, 0));

	/* The only window of the week, blacked out: the next week's. */
	w = parse("Sat 10:00-12:00", NULL, "2024-06-08");
	expect_window(&w, utc(2024, 6, 3, 0, 0), utc(2024, 6, 15, 10, 0),
	              utc(2024, 6, 15, 12, 0));
	/* A range over three Saturdays. */
	w = parse("Sat 10:00-12:00", NULL, "2024-05-01, 2024-06-01..2024-06-20");
	expect_window(&w, utc(2024, 6, 1, 0, 0), utc(2024, 6, 22, 10, 0),
	              utc(2024, 6, 22, 12, 0));
	expect_window(&w, utc(2024, 5, 24, 0, 0), utc(2024, 5, 25, 10, 0),
	              utc(2024, 5, 25, 12, 0));
	/* Ranges that overlap and touch count as their union. */
	w = parse("daily 10:00-12:00", NULL,
	          "2024-06-03..2024-06-05 2024-06-05..2024-06-06,2024-06-07");
	expect_window(&w, utc(2024, 6, 3, 0, 0), utc(2024, 6, 8, 10, 0),
	              utc(2024, 6, 8, 12, 0));

	/* In Berlin a blackout date starts at 22:00 UTC in summer. */
	w = parse("daily 00:00-24:00", "Europe/Berlin", "2024-07-01");
	expect_next(&w, utc(2024, 6, 30, 12, 0), true, utc(2024, 6, 30, 12, 0),
	            utc(2024, 6, 30, 22, 0));
	expect_next(&w, utc(2024, 7, 1, 0, 0), false, utc(2024, 7, 1, 22, 0), 0);

	/* Blacked out past the horizon: never opens. */
	w = parse("Sat 10:00-12:00", "Europe/Berlin", "2024-01-01..2026-12-31");
	expect_next(&w, utc(2024, 6, 1, 0, 0), false, 0, 0);
	assert_false(hv_window_fits(&w, utc(2024, 6, 1, 10, 0), 0));
	/* Open again after it, seen from within the horizon. */
	expect_window(&w, utc(2026, 12, 1, 0, 0), utc(2027, 1, 2, 9, 0),
	              utc(2027, 1, 2, 11, 0));
}

/* ---- runs and fits() ------------------------------------------------- */

static void test_adjacent(void **state)
{
	static const char *const specs[] = {
	    "Mon 22:00-24:00; Tue 00:00-02:00",
	    "Tue 00:00-02:00; Mon 22:00-24:00",
	    "Mon 22:00-00:00; Tue 00:00-02:00",
	    "Mon 22:00-23:00; Mon 23:00-01:00; Tue 01:00-02:00",
	    "Mon 22:00-01:00; Mon 23:00-02:00; Tue 00:30-01:30",
	};
	const int64_t mon22 = utc(2024, 6, 3, 22, 0), tue02 = utc(2024, 6, 4, 2, 0);

	(void)state;
	for (unsigned i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		struct hv_window w = parse(specs[i], "UTC", NULL);

		expect_window(&w, utc(2024, 6, 3, 0, 0), mon22, tue02);
		assert_true(hv_window_fits(&w, utc(2024, 6, 3, 23, 0), 3 * HOUR_MS));
		assert_false(hv_window_fits(&w, utc(2024, 6, 3, 23, 0), 3 * HOUR_MS + 1));
		/* Across the Berlin midnight too. */
		w = parse(specs[i], "Europe/Berlin", NULL);
		assert_true(hv_window_fits(&w, utc(2024, 6, 3, 20, 0), 4 * HOUR_MS));
		assert_false(hv_window_fits(&w, utc(2024, 6, 3, 20, 0), 4 * HOUR_MS + 1));
	}
}

static void test_fits(void **state)
{
	struct hv_window w = parse("Mon 22:00-23:59; Tue 00:00-02:00", NULL, NULL);
	const int64_t t = utc(2024, 6, 3, 23, 0);

	(void)state;
	/* A minute's gap splits the stretch. */
	expect_next(&w, t, true, t, utc(2024, 6, 3, 23, 59));
	assert_true(hv_window_fits(&w, t, 59 * MIN_MS));
	assert_false(hv_window_fits(&w, t, HOUR_MS));
	/* Closed: nothing fits, not even nothing. */
	assert_false(hv_window_fits(&w, utc(2024, 6, 3, 23, 59), 0));
	assert_false(hv_window_fits(&w, utc(2024, 6, 3, 21, 0), MIN_MS));
	/* Open: no need, or a negative one, fits. */
	assert_true(hv_window_fits(&w, t, 0));
	assert_true(hv_window_fits(&w, t, -5));
	/* Beyond the horizon never fits. */
	assert_false(hv_window_fits(&w, t, 401 * DAY_MS));
	assert_false(hv_window_fits(&w, t, INT64_MAX));
}

/* Times out of range, and a schedule never parsed, are closed. */
static void test_out_of_range(void **state)
{
	struct hv_window w = parse("daily 00:00-24:00", NULL, NULL), zero;
	int64_t o = -1, c = -1;

	(void)state;
	assert_false(hv_window_open_at(&w, -1));
	assert_false(hv_window_open_at(&w, INT64_MIN));
	assert_false(hv_window_open_at(&w, INT64_MAX));
	assert_false(hv_window_fits(&w, INT64_MAX, 1));
	assert_true(hv_window_open_at(&w, 0));
	assert_true(hv_window_open_at(&w, utc(9999, 12, 31, 23, 59)));
	assert_false(hv_window_next_change(&w, INT64_MAX, &o, &c));
	assert_int_equal(o, 0);
	assert_int_equal(c, 0);
	memset(&zero, 0, sizeof zero);
	assert_false(hv_window_open_at(&zero, utc(2024, 1, 1, 0, 0)));
	assert_false(hv_window_next_change(&zero, utc(2024, 1, 1, 0, 0), &o, &c));
	assert_int_equal(o, 0);
}

/* next_change() and open_at() agree, and every run opens and closes where
 * they say, at pseudo-random times over a year in several zones. */
static void test_consistency(void **state)
{
	static const struct {
		const char *spec, *zone;
	} cases[] = {
	    {"Mon-Fri 22:00-04:00; Sat,Sun 00:00-24:00", "Europe/Berlin"},
	    {"Sun 01:30-02:30; Wed 23:00-01:00", "America/New_York"},
	    {"daily 02:00-03:00; Tue 12:00-12:00", "Europe/Berlin"},
	    {"Thu-Tue 23:45-00:15", "Asia/Kolkata"},
	    {"Sat 03:00-02:00", "Australia/Lord_Howe"}, /* DST of 30 minutes */
	};
	uint64_t x = 88172645463325252u;

	(void)state;
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hv_window w = parse(cases[i].spec, cases[i].zone, "2024-12-25");

		for (int n = 0; n < 60; n++) {
			int64_t t, o, c;
			bool open;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			t = utc(2024, 1, 1, 0, 0) +
			    (int64_t)(x % (366 * (uint64_t)DAY_MS));
			open = hv_window_next_change(&w, t, &o, &c);
			assert_int_equal(hv_window_open_at(&w, t), open);
			assert_true(o != 0 && c != 0 && c > o);
			if (open)
				assert_int_equal(o, t);
			else
				assert_false(hv_window_open_at(&w, o - 1));
			assert_true(hv_window_open_at(&w, o));
			assert_true(hv_window_open_at(&w, c - 1));
			assert_false(hv_window_open_at(&w, c));
			assert_int_equal(hv_window_fits(&w, t, c - t), open);
			assert_false(hv_window_fits(&w, t, c - t + 1));
		}
	}
}

/* The caller's TZ, set or not, is what it was after each call. */
static void test_tz_restored(void **state)
{
	struct hv_window w = parse("daily 10:00-11:00", "Europe/Berlin", NULL);
	time_t now = (time_t)(utc(2024, 7, 1, 10, 0) / 1000);
	struct tm tm;
	long off;

	(void)state;
	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	assert_true(hv_window_open_at(&w, utc(2024, 7, 1, 8, 30)));
	assert_string_equal(getenv("TZ"), "Asia/Tokyo");
	localtime_r(&now, &tm);
	assert_int_equal(tm.tm_gmtoff, 9 * 3600);

	unsetenv("TZ");
	tzset();
	localtime_r(&now, &tm);
	off = tm.tm_gmtoff;
	assert_false(hv_window_open_at(&w, utc(2024, 7, 1, 10, 0)));
	/* Set to what glibc reads when it is not set. */
	assert_string_equal(getenv("TZ"), ":/etc/localtime");
	localtime_r(&now, &tm);
	assert_int_equal(tm.tm_gmtoff, off);
}

/* Threads evaluating schedules in different zones get their own zone. */
struct worker {
	const char *zone;
	int64_t opens;
	unsigned bad;
};

static void *work(void *arg)
{
	struct worker *k = arg;
	struct hv_window w = parse("Mon 09:00-10:00", k->zone, NULL);

	for (int i = 0; i < 40; i++) {
		int64_t o, c;

		hv_window_next_change(&w, utc(2024, 7, 1, 0, 0), &o, &c);
		if (o != k->opens || c != o + HOUR_MS)
			k->bad++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct worker k[3] = {{"Europe/Berlin", utc(2024, 7, 1, 7, 0), 0},
	                      {"America/New_York", utc(2024, 7, 1, 13, 0), 0},
	                      {"Asia/Kolkata", utc(2024, 7, 1, 3, 30), 0}};
	pthread_t th[3];

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, work, &k[i]), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(k[i].bad, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_format_full),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_valid_edges),
	    cmocka_unit_test(test_utc),
	    cmocka_unit_test(test_sunday_into_monday),
	    cmocka_unit_test(test_whole_days),
	    cmocka_unit_test(test_berlin_spring_forward),
	    cmocka_unit_test(test_berlin_fall_back),
	    cmocka_unit_test(test_new_york),
	    cmocka_unit_test(test_kolkata),
	    cmocka_unit_test(test_blackouts),
	    cmocka_unit_test(test_adjacent),
	    cmocka_unit_test(test_fits),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_consistency),
	    cmocka_unit_test(test_tz_restored),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
