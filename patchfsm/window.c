/*
 * Maintenance windows: parsing, and evaluation in a time zone.
 *
 * Evaluation works on local days. The instants at which the open set can
 * change are the opening and closing of each window occurrence and the
 * local midnights (blackouts), each found with first_at(): the first UTC
 * instant whose local time reads a given wall-clock time or later. The
 * local day k is the stretch [first_at(k 00:00), first_at(k+1 00:00)); its
 * open pieces come from the occurrences of day k and the ones of day k-1
 * that wrap past midnight, clipped to it. Sweeping days forward and joining
 * pieces that touch gives the runs of open time that next_change and fits
 * need. See window.h for the rules and for the time zone mutex.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../lib/err.h"
#include "window.h"

#define ZONEINFO "/usr/share/zoneinfo"
#define DAY_S 86400
#define DAY_MIN 1440
#define DAY_MS ((int64_t)DAY_S * 1000)
/* More than any UTC offset since 1970 (-12 to +14 hours): the local clock
 * at lw - SPAN_S reads less than lw, at lw + SPAN_S more. */
#define SPAN_S (16 * 3600)
/* 9999-12-31T23:59:59.999Z: later (or negative) times are never open. */
#define T_MAX_MS ((int64_t)253402300799999)
/* What TZ means when it is not set (glibc's TZDEFAULT). */
#define TZ_DEFAULT ":/etc/localtime"
#define QUOTE_MAX 40

static const char *const day_names[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

/* ---- small helpers --------------------------------------------------- */

static bool is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Monday 0 ... Sunday 6 of a day counted from 1970-01-01, a Thursday. */
static unsigned weekday(int64_t day)
{
	return (unsigned)(day + 3 - floor_div(day + 3, 7) * 7);
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard
 * Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
	static const int n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : n[m - 1];
}

/* The text [b, e) for a message: at most QUOTE_MAX characters, control
 * characters shown as '?', since it comes from a config file or a user. */
static const char *quote(char *buf, size_t size, const char *b, const char *e)
{
	size_t n = (size_t)(e - b), i;
	bool cut = n > QUOTE_MAX;

	if (cut)
		n = QUOTE_MAX;
	if (n > size - 4)
		n = size - 4;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];
		buf[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	if (cut) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static void trim(const char **b, const char **e)
{
	while (*b < *e && is_blank(**b))
		(*b)++;
	while (*e > *b && is_blank((*e)[-1]))
		(*e)--;
}

/* ---- parsing --------------------------------------------------------- */

/* A day name (any case) or "daily" (7); -1 otherwise. */
static int day_lookup(const char *b, const char *e)
{
	size_t n = (size_t)(e - b);

	if (n == 5 && strncasecmp(b, "daily", 5) == 0)
		return 7;
	for (int i = 0; n == 3 && i < 7; i++)
		if (strncasecmp(b, day_names[i], 3) == 0)
			return i;
	return -1;
}

#define DAYS_HINT "days are Mon Tue Wed Thu Fri Sat Sun, or daily"

/* A day's name ends at a blank, ',', '-' or the end. */
static const char *name_end(const char *p, const char *e)
{
	while (p < e && !is_blank(*p) && *p != ',' && *p != '-')
		p++;
	return p;
}

/* DAYS of window idx, the text [b, e), into *mask. */
static int parse_days(const char *b, const char *e, unsigned idx, uint8_t *mask,
                      char *err, size_t errlen)
{
	char q[64], q2[64];
	const char *p = b;

	*mask = 0;
	for (;;) {
		const char *ne;
		int d1, d2;

		while (p < e && is_blank(*p))
			p++;
		ne = name_end(p, e);
		if (ne == p)
			return hv_errf(err, errlen, HV_INVAL,
			               "window %u: '%s': a day is missing (%s)", idx,
			               quote(q, sizeof q, b, e), DAYS_HINT);
		d1 = day_lookup(p, ne);
		if (d1 < 0)
			return hv_errf(err, errlen, HV_INVAL,
			               "window %u: '%s': unknown day '%s' (%s)", idx,
			               quote(q, sizeof q, b, e),
			               quote(q2, sizeof q2, p, ne), DAYS_HINT);
		p = ne;
		while (p < e && is_blank(*p))
			p++;
		d2 = d1;
		if (p < e && *p == '-') {
			p++;
			while (p < e && is_blank(*p))
				p++;
			ne = name_end(p, e);
			if (ne == p)
				return hv_errf(
				    err, errlen, HV_INVAL,
				    "window %u: '%s': a range of days lacks its "
				    "last day (write e.g. Mon-Fri)",
				    idx, quote(q, sizeof q, b, e));
			d2 = day_lookup(p, ne);
			if (d2 < 0)
				return hv_errf(err, errlen, HV_INVAL,
				               "window %u: '%s': unknown day '%s' (%s)",
				               idx, quote(q, sizeof q, b, e),
				               quote(q2, sizeof q2, p, ne), DAYS_HINT);
			if (d1 == 7 || d2 == 7)
				return hv_errf(
				    err, errlen, HV_INVAL,
				    "window %u: '%s': 'daily' cannot be part of a "
				    "range",
				    idx, quote(q, sizeof q, b, e));
			p = ne;
		}
		if (d1 == 7)
			*mask = 0x7f;
		else
			/* A range may wrap past Sunday: Fri-Mon. */
			for (int d = d1;; d = (d + 1) % 7) {
				*mask |= (uint8_t)(1u << d);
				if (d == d2)
					break;
			}
		while (p < e && is_blank(*p))
			p++;
		if (p == e)
			return HV_OK;
		if (*p != ',')
			return hv_errf(err, errlen, HV_INVAL,
			               "window %u: '%s': unexpected '%s' (separate days "
			               "with ',', e.g. Sat,Sun)",
			               idx, quote(q, sizeof q, b, e),
			               quote(q2, sizeof q2, p, p + 1));
		p++;
	}
}

/* "H:MM" or "HH:MM" at *p (before e) into minutes; *p moves past it.
 * Returns 0, -1 when it is not a time at all, or -2 when it is one out of
 * range (the message is then in err). */
static int parse_time(const char **p, const char *e, const char *field_b,
                      const char *field_e, unsigned idx, unsigned *min, char *err,
                      size_t errlen)
{
	char q[64], q2[64];
	const char *s = *p, *c = s;
	unsigned h = 0, m;

	while (c < e && is_digit(*c) && c - s < 3)
		h = h * 10 + (unsigned)(*c++ - '0');
	if (c == s || c - s > 2 || c + 3 > e || *c != ':' || !is_digit(c[1]) ||
	    !is_digit(c[2]) || (c + 3 < e && is_digit(c[3])))
		return -1;
	m = (unsigned)(c[1] - '0') * 10 + (unsigned)(c[2] - '0');
	*p = c + 3;
	if (h > 24 || m > 59 || (h == 24 && m != 0)) {
		hv_errf(err, errlen, HV_INVAL, "window %u: '%s': bad time '%s' (%s)", idx,
		        quote(q, sizeof q, field_b, field_e), quote(q2, sizeof q2, s, *p),
		        h > 24   ? "hours run from 00 to 24"
		        : m > 59 ? "minutes run from 00 to 59"
		                 : "24:00 is the latest time of a day");
		return -2;
	}
	*min = h * 60 + m;
	return 0;
}

/* HH:MM-HH:MM of window idx, the text [b, e). */
static int parse_times(const char *b, const char *e, unsigned idx,
                       struct hv_window_slot *s, char *err, size_t errlen)
{
	char q[64];
	const char *p = b;
	unsigned start = 0, end = 0;
	int rv;

	rv = parse_time(&p, e, b, e, idx, &start, err, errlen);
	if (rv == -2)
		return HV_INVAL;
	if (rv == 0) {
		while (p < e && is_blank(*p))
			p++;
		if (p < e && *p == '-') {
			p++;
			while (p < e && is_blank(*p))
				p++;
			rv = parse_time(&p, e, b, e, idx, &end, err, errlen);
			if (rv == -2)
				return HV_INVAL;
		} else
			rv = -1;
	}
	if (rv != 0 || p != e)
		return hv_errf(err, errlen, HV_INVAL,
		               "window %u: '%s': bad time range (write HH:MM-HH:MM, "
		               "e.g. 22:00-04:00)",
		               idx, quote(q, sizeof q, b, e));
	if (start == DAY_MIN)
		return hv_errf(err, errlen, HV_INVAL,
		               "window %u: '%s': a window cannot start at 24:00 (write "
		               "00:00 on the next day)",
		               idx, quote(q, sizeof q, b, e));
	s->start = (uint16_t)start;
	s->end = (uint16_t)end;
	return HV_OK;
}

/* Window idx, the text [b, e): DAYS then, from the first digit, times. */
static int parse_slot(const char *b, const char *e, unsigned idx,
                      struct hv_window_slot *s, char *err, size_t errlen)
{
	char q[64];
	const char *d, *de;
	int rv;

	trim(&b, &e);
	if (b == e)
		return hv_errf(err, errlen, HV_INVAL,
		               "window %u: empty (two ';' in a row, or one at an end?)",
		               idx);
	for (d = b; d < e && !is_digit(*d); d++)
		;
	de = d;
	trim(&b, &de);
	if (b == de)
		return hv_errf(err, errlen, HV_INVAL,
		               "window %u: '%s': no days (start it with e.g. 'daily' or "
		               "'Mon-Fri')",
		               idx, quote(q, sizeof q, b, e));
	if (d == e)
		return hv_errf(err, errlen, HV_INVAL,
		               "window %u: '%s': no time range (write e.g. '%s "
		               "22:00-04:00')",
		               idx, quote(q, sizeof q, b, e), q);
	rv = parse_days(b, de, idx, &s->days, err, errlen);
	if (rv != HV_OK)
		return rv;
	return parse_times(d, e, idx, s, err, errlen);
}

static int parse_spec(const char *spec, struct hv_window *w, char *err, size_t errlen)
{
	const char *p = spec, *e;
	size_t n = strlen(spec);

	if (n > HV_WINDOW_TEXT_MAX)
		return hv_errf(err, errlen, HV_INVAL,
		               "window spec too long (%zu characters, at most %d)", n,
		               HV_WINDOW_TEXT_MAX);
	e = spec + n;
	trim(&p, &e);
	if (p == e)
		return hv_errf(err, errlen, HV_INVAL,
		               "empty window spec (write e.g. 'Mon-Fri 22:00-04:00; "
		               "Sat,Sun 00:00-24:00')");
	w->n_slots = 0;
	for (;;) {
		const char *semi = memchr(p, ';', (size_t)(e - p));
		const char *end = semi != NULL ? semi : e;
		int rv;

		if (w->n_slots == HV_WINDOW_SLOTS_MAX)
			return hv_errf(err, errlen, HV_INVAL,
			               "too many windows (at most %d)",
			               HV_WINDOW_SLOTS_MAX);
		rv = parse_slot(p, end, w->n_slots + 1, &w->slots[w->n_slots], err,
		                errlen);
		if (rv != HV_OK)
			return rv;
		w->n_slots++;
		if (semi == NULL)
			return HV_OK;
		p = semi + 1;
	}
}

/* "YYYY-MM-DD" at [b, e) into days since 1970-01-01: 0, -1 when it is
 * not a date, -2 when there is no such day. */
static int parse_date(const char *b, const char *e, int32_t *day)
{
	int y, m, d;

	if (e - b != 10 || b[4] != '-' || b[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !is_digit(b[i]))
			return -1;
	y = atoi(b);
	m = (b[5] - '0') * 10 + (b[6] - '0');
	d = (b[8] - '0') * 10 + (b[9] - '0');
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return -2;
	*day = (int32_t)days_from_civil(y, m, d);
	return 0;
}

#define DATE_HINT "write YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"

static int parse_blackouts(const char *s, struct hv_window *w, char *err, size_t errlen)
{
	size_t n = strlen(s);
	const char *p = s, *e = s + n;

	w->n_blackouts = 0;
	if (n > HV_WINDOW_TEXT_MAX)
		return hv_errf(err, errlen, HV_INVAL,
		               "blackout list too long (%zu characters, at most %d)", n,
		               HV_WINDOW_TEXT_MAX);
	for (;;) {
		struct hv_window_blackout *bo = &w->blackouts[w->n_blackouts];
		const char *te, *dots;
		char q[64];
		int rv1, rv2 = 0;

		while (p < e && (is_blank(*p) || *p == ','))
			p++;
		if (p == e)
			return HV_OK;
		for (te = p; te < e && !is_blank(*te) && *te != ','; te++)
			;
		if (w->n_blackouts == HV_WINDOW_BLACKOUTS_MAX)
			return hv_errf(err, errlen, HV_INVAL,
			               "too many blackouts (at most %d dates or ranges)",
			               HV_WINDOW_BLACKOUTS_MAX);
		dots = NULL;
		for (const char *c = p; c + 1 < te; c++)
			if (c[0] == '.' && c[1] == '.') {
				dots = c;
				break;
			}
		if (dots == NULL) {
			rv1 = parse_date(p, te, &bo->first);
			bo->last = bo->first;
		} else {
			rv1 = parse_date(p, dots, &bo->first);
			rv2 = parse_date(dots + 2, te, &bo->last);
		}
		if (rv1 == -1 || rv2 == -1)
			return hv_errf(err, errlen, HV_INVAL,
			               "blackout '%s': bad date (%s)",
			               quote(q, sizeof q, p, te), DATE_HINT);
		if (rv1 == -2 || rv2 == -2)
			return hv_errf(err, errlen, HV_INVAL,
			               "blackout '%s': no such date (years from 1970)",
			               quote(q, sizeof q, p, te));
		if (bo->last < bo->first)
			return hv_errf(err, errlen, HV_INVAL,
			               "blackout '%s': the range ends before it starts",
			               quote(q, sizeof q, p, te));
		w->n_blackouts++;
		p = te;
	}
}

/* An IANA name: components of [A-Za-z0-9._+-], none "." or "..", that name
 * a TZif file under ZONEINFO. */
static int check_zone(const char *zone, char *err, size_t errlen)
{
	char path[sizeof ZONEINFO + HV_WINDOW_ZONE_MAX + 1], magic[4], q[64];
	size_t n = strlen(zone);
	const char *c = zone;
	bool ok = true;
	int fd;

	if (n > HV_WINDOW_ZONE_MAX)
		return hv_errf(err, errlen, HV_INVAL,
		               "zone '%s': name too long (at most %d characters)",
		               quote(q, sizeof q, zone, zone + n), HV_WINDOW_ZONE_MAX);
	while (ok && *c != '\0') {
		const char *ce = strchr(c, '/');
		size_t cn;

		if (ce == NULL)
			ce = c + strlen(c);
		cn = (size_t)(ce - c);
		ok = cn > 0 && !(cn == 1 && c[0] == '.') &&
		     !(cn == 2 && c[0] == '.' && c[1] == '.');
		for (const char *x = c; ok && x < ce; x++)
			ok = is_digit(*x) || (*x >= 'A' && *x <= 'Z') ||
			     (*x >= 'a' && *x <= 'z') || strchr("._+-", *x) != NULL;
		c = *ce == '/' ? ce + 1 : ce;
		if (*ce == '/' && *c == '\0')
			ok = false;
	}
	if (!ok)
		return hv_errf(err, errlen, HV_INVAL,
		               "zone '%s': not a time zone name (write e.g. "
		               "Europe/Berlin or UTC)",
		               quote(q, sizeof q, zone, zone + n));
	if (strncmp(zone, "right/", 6) == 0)
		return hv_errf(err, errlen, HV_INVAL,
		               "zone '%s': zones that count leap seconds are not "
		               "supported (use '%s')",
		               zone, zone + 6);
	snprintf(path, sizeof path, "%s/%s", ZONEINFO, zone);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	ok = fd >= 0 && read(fd, magic, sizeof magic) == (ssize_t)sizeof magic &&
	     memcmp(magic, "TZif", 4) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok)
		return hv_errf(err, errlen, HV_INVAL,
		               "zone '%s': not in the time zone database (" ZONEINFO
		               ", Debian package tzdata); names are case-sensitive, "
		               "e.g. Europe/Berlin, America/New_York, UTC",
		               zone);
	return HV_OK;
}

int hv_window_parse(const char *spec, const char *zone, const char *blackouts,
                    struct hv_window *w, char *err, size_t errlen)
{
	struct hv_window nw;
	int rv;

	memset(&nw, 0, sizeof nw);
	if (zone == NULL || zone[0] == '\0')
		zone = "UTC";
	rv = parse_spec(spec != NULL ? spec : "", &nw, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = check_zone(zone, err, errlen);
	if (rv != HV_OK)
		return rv;
	memcpy(nw.zone, zone, strlen(zone) + 1);
	rv = parse_blackouts(blackouts != NULL ? blackouts : "", &nw, err, errlen);
	if (rv != HV_OK)
		return rv;
	*w = nw;
	return HV_OK;
}

/* ---- the time zone --------------------------------------------------- */

/* The module's only globals: the lock, held while TZ names a schedule's
 * zone, and under it whether that zone is UTC (no TZ switch, no tzset and
 * its reading of the zone file: a UTC schedule is evaluated on every tick
 * of the leader's gate). */
static pthread_mutex_t zone_lock = PTHREAD_MUTEX_INITIALIZER;
static bool zone_utc;

/* Lock, and make local time the zone's; the previous TZ goes to saved.
 * False (and unlocked) when that cannot be done. */
static bool zone_enter(const char *zone, char *saved, size_t size)
{
	char tz[sizeof ZONEINFO + HV_WINDOW_ZONE_MAX + 2];
	const char *cur;

	pthread_mutex_lock(&zone_lock);
	cur = getenv("TZ");
	if (cur == NULL)
		cur = TZ_DEFAULT;
	if (strlen(cur) >= size)
		goto unlock;
	memcpy(saved, cur, strlen(cur) + 1);
	snprintf(tz, sizeof tz, ":%s/%s", ZONEINFO, zone);
	if (setenv("TZ", tz, 1) != 0)
		goto unlock;
	tzset();
	return true;
unlock:
	pthread_mutex_unlock(&zone_lock);
	return false;
}

/* Put TZ back (never unset: see window.h) and unlock. */
static void zone_leave(const char *saved)
{
	setenv("TZ", saved, 1);
	tzset();
	pthread_mutex_unlock(&zone_lock);
}

/* Seconds east of UTC at u; under zone_lock. */
static int64_t offset_at(int64_t u)
{
	time_t tt = (time_t)u;
	struct tm tm;

	if (zone_utc)
		return 0;
	if (localtime_r(&tt, &tm) == NULL)
		return 0;
	return tm.tm_gmtoff;
}

/* The first instant (seconds) at which the local clock reads lw (local
 * seconds since 1970-01-01 00:00) or later. Local time is u + offset(u):
 * it rises with u but jumps at a change of offset, forward over a gap or
 * back over a stretch it then reads twice. With at most one change within
 * lw +- SPAN_S the answer is lw - (the offset before it) when the clock
 * reaches lw before the change, else lw - (the offset after it), or the
 * instant of the change when lw falls into the gap. */
static int64_t first_at(int64_t lw)
{
	int64_t lo = lw - SPAN_S, hi = lw + SPAN_S;
	int64_t before = offset_at(lo), after = offset_at(hi);

	if (before == after)
		return lw - before;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if (offset_at(mid) == before)
			lo = mid;
		else
			hi = mid;
	}
	if (lw - before < hi)
		return lw - before;
	if (lw - after >= hi)
		return lw - after;
	return hi;
}

/* first_at() of minute `min` (may pass 24:00) of local day `day`, in ms. */
static int64_t at_ms(int64_t day, int64_t min)
{
	return first_at(day * DAY_S + min * 60) * 1000;
}

/* ---- evaluation ------------------------------------------------------ */

struct piece {
	int64_t open, close; /* ms */
};

static unsigned slot_len(const struct hv_window_slot *s)
{
	return s->end > s->start ? (unsigned)(s->end - s->start)
	                         : (unsigned)(s->end + DAY_MIN - s->start);
}

static bool blacked_out(const struct hv_window *w, int64_t day)
{
	for (unsigned i = 0; i < w->n_blackouts; i++)
		if (day >= w->blackouts[i].first && day <= w->blackouts[i].last)
			return true;
	return false;
}

/* The open pieces of local day `day`, which is [mk, mk1): sorted, neither
 * overlapping nor touching. Under zone_lock. */
static unsigned day_pieces(const struct hv_window *w, int64_t day, int64_t mk,
                           int64_t mk1, struct piece *out)
{
	unsigned n = 0, m = 0;

	if (blacked_out(w, day))
		return 0;
	for (unsigned i = 0; i < w->n_slots; i++) {
		const struct hv_window_slot *s = &w->slots[i];
		unsigned end = s->start + slot_len(s);

		/* Yesterday's occurrence, if it wraps into today; today's. */
		for (int64_t d = day - 1; d <= day; d++) {
			int64_t o, c;

			if (!(s->days & (1u << weekday(d))) ||
			    (d < day && end <= DAY_MIN))
				continue;
			o = at_ms(d, s->start);
			c = at_ms(d, end);
			if (o < mk)
				o = mk;
			if (c > mk1)
				c = mk1;
			if (o < c)
				out[n++] = (struct piece){o, c};
		}
	}
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && out[j].open < out[j - 1].open; j--) {
			struct piece x = out[j];

			out[j] = out[j - 1];
			out[j - 1] = x;
		}
	for (unsigned i = 0; i < n; i++)
		if (m > 0 && out[i].open <= out[m - 1].close) {
			if (out[i].close > out[m - 1].close)
				out[m - 1].close = out[i].close;
		} else
			out[m++] = out[i];
	return m;
}

/* The run of open time that contains t, or else the next one: [*ro, *rc),
 * *ro = t when open. The sweep stops once the run reaches `until`, and
 * after HV_WINDOW_HORIZON_DAYS: *rc is then 0 if the run is still open,
 * both are 0 if none started. Returns whether t is open. Under zone_lock. */
static bool find_run(const struct hv_window *w, int64_t t, int64_t until, int64_t *ro,
                     int64_t *rc)
{
	struct piece p[2 * HV_WINDOW_SLOTS_MAX];
	int64_t ts = floor_div(t, 1000);
	int64_t day = floor_div(ts + offset_at(ts), DAY_S);
	int64_t last = day + HV_WINDOW_HORIZON_DAYS, mk = at_ms(day, 0);
	int64_t o = 0, c = 0;
	bool in_run = false, open = false;

	for (; day <= last; day++) {
		int64_t mk1 = at_ms(day + 1, 0);
		unsigned n;

		/* A clock set back over midnight may put t past day's end. */
		if (mk1 <= t) {
			mk = mk1;
			continue;
		}
		n = day_pieces(w, day, mk, mk1, p);
		for (unsigned i = 0; i < n; i++) {
			if (p[i].close <= t)
				continue;
			if (!in_run) {
				in_run = true;
				open = p[i].open <= t;
				o = open ? t : p[i].open;
				c = p[i].close;
			} else if (p[i].open == c)
				c = p[i].close;
			else
				goto done;
			if (c >= until)
				goto done;
		}
		if (in_run && c < mk1)
			goto done;
		mk = mk1;
	}
	if (in_run)
		c = 0;
done:
	*ro = o;
	*rc = c;
	return open;
}

/* find_run() in the schedule's zone, looking need ms ahead of t (< 0: to
 * the horizon). */
static bool evaluate(const struct hv_window *w, int64_t t, int64_t need, int64_t *ro,
                     int64_t *rc)
{
	char saved[4096];
	int64_t until;
	bool open;

	*ro = *rc = 0;
	if (w->n_slots == 0 || t < 0 || t > T_MAX_MS)
		return false;
	until = need < 0 ? INT64_MAX : t + need;
	if (strcmp(w->zone, "UTC") == 0) {
		pthread_mutex_lock(&zone_lock);
		zone_utc = true;
		open = find_run(w, t, until, ro, rc);
		zone_utc = false;
		pthread_mutex_unlock(&zone_lock);
		return open;
	}
	/* Fails only when out of memory or with an absurd TZ: closed. */
	if (!zone_enter(w->zone, saved, sizeof saved))
		return false;
	open = find_run(w, t, until, ro, rc);
	zone_leave(saved);
	return open;
}

bool hv_window_open_at(const struct hv_window *w, int64_t t_ms)
{
	int64_t o, c;

	return evaluate(w, t_ms, 1, &o, &c);
}

bool hv_window_next_change(const struct hv_window *w, int64_t t_ms, int64_t *opens_ms,
                           int64_t *closes_ms)
{
	return evaluate(w, t_ms, -1, opens_ms, closes_ms);
}

bool hv_window_fits(const struct hv_window *w, int64_t t_ms, int64_t need_ms)
{
	int64_t o, c;

	if (need_ms > HV_WINDOW_HORIZON_DAYS * DAY_MS)
		return false;
	if (need_ms < 0)
		need_ms = 0;
	if (!evaluate(w, t_ms, need_ms, &o, &c))
		return false;
	return c == 0 || c - t_ms >= need_ms;
}

/* ---- formatting ------------------------------------------------------ */

struct out {
	char *buf;
	size_t len, pos;
	bool full;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->pos) {
		o->full = true;
		return;
	}
	o->pos += (size_t)n;
}

/* Runs of three days or more as ranges, shorter ones as lists, from
 * Monday on; but a range over the end of the week starts the list, so that
 * Fri-Mon stays whole. */
static void put_days(struct out *o, uint8_t days)
{
	unsigned s = 0, wrap = 1;
	bool first = true;

	if ((days & 0x7f) == 0x7f) {
		put(o, "daily");
		return;
	}
	if ((days & 0x41) == 0x41) {
		for (s = 6; (days >> (s - 1)) & 1; s--)
			;
		for (unsigned d = 0; (days >> d) & 1; d++)
			wrap++;
		if (wrap + 6 - s < 3)
			s = 0;
	}
	for (unsigned i = 0; i < 7;) {
		unsigned j = i;

		if (!((days >> ((s + i) % 7)) & 1)) {
			i++;
			continue;
		}
		while (j + 1 < 7 && (days >> ((s + j + 1) % 7)) & 1)
			j++;
		put(o, "%s%s", first ? "" : ",", day_names[(s + i) % 7]);
		if (j - i >= 2)
			put(o, "-%s", day_names[(s + j) % 7]);
		else if (j > i)
			put(o, ",%s", day_names[(s + j) % 7]);
		first = false;
		i = j + 1;
	}
}

static void put_date(struct out *o, int64_t day)
{
	int y, m, d;

	civil_from_days(day, &y, &m, &d);
	put(o, "%04d-%02d-%02d", y, m, d);
}

int hv_window_format(const struct hv_window *w, char *buf, size_t len)
{
	struct out o = {buf, len, 0, len == 0};

	for (unsigned i = 0; i < w->n_slots; i++) {
		const struct hv_window_slot *s = &w->slots[i];

		if (i > 0)
			put(&o, "; ");
		put_days(&o, s->days);
		put(&o, " %02u:%02u-%02u:%02u", s->start / 60u, s->start % 60u,
		    s->end / 60u, s->end % 60u);
	}
	put(&o, " (%s)", w->zone);
	for (unsigned i = 0; i < w->n_blackouts; i++) {
		put(&o, i == 0 ? " except " : ", ");
		put_date(&o, w->blackouts[i].first);
		if (w->blackouts[i].last != w->blackouts[i].first) {
			put(&o, "..");
			put_date(&o, w->blackouts[i].last);
		}
	}
	if (o.full && len > 0)
		buf[len - 1] = '\0';
	return o.full ? HV_FULL : HV_OK;
}
