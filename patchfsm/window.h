/*
 * Maintenance windows: when a host may start (and must finish) patching.
 *
 * A schedule is three strings, as an operator writes them in hvpeerd.conf
 * or on the command line, parsed together by hv_window_parse():
 *
 *   spec       "Mon-Fri 22:00-04:00; Sat,Sun 00:00-24:00"
 *   zone       "Europe/Berlin"    (an IANA name; NULL or "" means UTC)
 *   blackouts  "2024-12-24..2024-12-26, 2025-01-01"  (NULL or "": none)
 *
 * spec: one or more windows separated by ';', each "DAYS HH:MM-HH:MM".
 *   - DAYS is a comma-separated list of days and ranges of days: Mon Tue Wed
 *     Thu Fri Sat Sun (any case), "Mon-Fri", "Fri-Mon" (a range may wrap
 *     past Sunday), "Sat,Sun", "Mon-Wed,Fri", or "daily" for every day.
 *   - HH:MM is local wall-clock time in the zone, 00:00 to 24:00; a window
 *     may end at 24:00 but not start there. The hour may have one digit.
 *   - A window belongs to the day it starts on. One whose end is not after
 *     its start wraps past midnight: "Fri 22:00-04:00" is Friday 22:00 to
 *     Saturday 04:00, "Sun 22:00-02:00" Sunday night into Monday, and
 *     "Mon 08:00-08:00" lasts 24 hours.
 *   - Windows may overlap or touch: "Mon 22:00-24:00; Tue 00:00-02:00" is
 *     one four-hour stretch.
 * blackouts: dates "YYYY-MM-DD" and ranges "YYYY-MM-DD..YYYY-MM-DD"
 *   (inclusive), separated by commas or spaces; local dates in the zone. No
 *   window is open on a blackout date, from its local midnight to the next:
 *   blacking out a Saturday cuts "Fri 22:00-04:00" at midnight, and on the
 *   day after a blackout a window that wrapped into it is open again from
 *   00:00.
 *
 * Daylight-saving time. A window opens at the first instant at which the
 * local clock reads its start time or later, and closes at the first
 * instant at which it reads its end time or later; blackout dates begin and
 * end by the same rule at 00:00. So in Europe/Berlin:
 *   - the spring-forward night (02:00 CET -> 03:00 CEST), whose 02:00-03:00
 *     does not exist: "Sun 01:00-04:00" lasts two hours, "Sun 02:30-05:00"
 *     opens at 03:00 CEST, and "Sun 02:00-03:00" does not open at all;
 *   - the fall-back night (03:00 CEST -> 02:00 CET), whose 02:00-03:00
 *     happens twice: "Sun 02:00-03:00" is open through both (two hours),
 *     "Sun 00:00-02:30" closes at the first 02:30 (CEST).
 * Every occurrence of a window is thus one contiguous stretch of real time.
 *
 * Time zones. The conversion uses glibc's own reading of the system's tz
 * database, /usr/share/zoneinfo (Debian package tzdata), so that an
 * upgraded tzdata is what the schedule follows. glibc converts to the one
 * zone named by the TZ environment variable only, so each call that
 * evaluates a schedule takes one process-wide mutex, points TZ at the
 * schedule's zone file, calls tzset(), converts with localtime_r(), and
 * puts TZ back (and tzset() again) before it unlocks: that mutex is this
 * module's global (with a flag under it: a schedule in UTC, the default
 * zone, is evaluated under the mutex with no TZ switch, offset 0). Why this and not a
 * library: no hand-written TZif reader, no new dependency (ICU's ucal would do it
 * thread-safely but is large and reads its own, older copy of the tz data; glib's
 * GTimeZone would need glib in the daemon). What it asks of the rest of the process:
 *   - nothing else may use *local* time (localtime_r, mktime, strftime on
 *     a local struct tm) while a call is in progress, or it may see the
 *     schedule's zone. hvpeer keeps no local time: lib/log.c, node/ops.c and
 *     node/hvpeer.c format UTC with gmtime_r, which the zone does not touch
 *     (zones with leap seconds, "right/...", are refused for that reason).
 *   - TZ is set but never removed: glibc's setenv of a variable that is
 *     already set swaps one pointer, so a concurrent getenv() elsewhere
 *     stays safe, while unsetenv and re-adding it move or free the array. A
 *     process that had no TZ is left with TZ=":/etc/localtime", which glibc
 *     treats exactly as an unset TZ.
 * Zone offsets are assumed to change at most once within any 32 hours,
 * true of every zone in the tz database since 1970 (no two changes are
 * closer than 72 hours).
 *
 * Times are UTC milliseconds since the epoch, 1970 to 9999 (any other time
 * is closed); the caller passes them (no function here reads the clock).
 * Searches look ahead HV_WINDOW_HORIZON_DAYS local days; a time of 0 means
 * "not within that horizon".
 */
#ifndef HV_WINDOW_H
#define HV_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HV_WINDOW_TEXT_MAX 1023    /* characters of spec and of blackouts */
#define HV_WINDOW_ZONE_MAX 63      /* characters of a zone name */
#define HV_WINDOW_SLOTS_MAX 32     /* windows in a spec */
#define HV_WINDOW_BLACKOUTS_MAX 64 /* dates and ranges of dates */
#define HV_WINDOW_HORIZON_DAYS 400
#define HV_WINDOW_FORMAT_MAX 4096 /* enough for hv_window_format() */

/* One window: on each day of `days`, from start to end, local time. */
struct hv_window_slot {
	uint8_t days;   /* bit 0 Monday ... bit 6 Sunday */
	uint16_t start; /* minutes after midnight, 0..1439 */
	uint16_t end;   /* 0..1440; not after start: ends the next day */
};

/* Local dates first..last (inclusive), as days since 1970-01-01. */
struct hv_window_blackout {
	int32_t first, last;
};

/* A parsed schedule: plain data, no pointers; copy it freely. */
struct hv_window {
	char zone[HV_WINDOW_ZONE_MAX + 1];
	unsigned n_slots;
	struct hv_window_slot slots[HV_WINDOW_SLOTS_MAX];
	unsigned n_blackouts;
	struct hv_window_blackout blackouts[HV_WINDOW_BLACKOUTS_MAX];
};

/* Parse a schedule (see above) into *w. The zone must be a zone file of
 * /usr/share/zoneinfo (read to check it, as the only I/O of this module
 * besides glibc's own). Returns HV_OK, or HV_INVAL with a message in err
 * naming the offending part ("window 2: 'Mon-Fry': unknown day 'Fry' ...")
 * and *w unchanged. The strings stay the caller's. */
int hv_window_parse(const char *spec, const char *zone, const char *blackouts,
                    struct hv_window *w, char *err, size_t errlen);

/* True when a window is open at t_ms (UTC). */
bool hv_window_open_at(const struct hv_window *w, int64_t t_ms);

/* Whether a window is open at t_ms; and the stretch of open time, windows
 * that touch or overlap counted as one, that contains t_ms or else comes
 * next: [*opens_ms, *closes_ms). When open, *opens_ms is t_ms itself and
 * *closes_ms when it closes; when closed, *opens_ms is when one next opens
 * and *closes_ms when that one closes. Either is 0 when not within the
 * horizon: *opens_ms for a schedule that does not open, *closes_ms for one
 * that stays open until the end of the horizon. */
bool hv_window_next_change(const struct hv_window *w, int64_t t_ms, int64_t *opens_ms,
                           int64_t *closes_ms);

/* True when a window is open at t_ms and stays open, without a break, for
 * at least need_ms more: what a patch that needs need_ms must check before
 * it starts. need_ms beyond the horizon never fits. */
bool hv_window_fits(const struct hv_window *w, int64_t t_ms, int64_t need_ms);

/* The normalized schedule for `hvpeer status`, in the syntax above:
 *   "Mon-Fri 22:00-04:00; Sat,Sun 00:00-24:00 (Europe/Berlin)"
 * followed by " except 2024-12-24..2024-12-26, 2025-01-01" when there are
 * blackouts. The spec and blackout parts parse back to the same schedule.
 * Returns HV_OK, or HV_FULL when buf was too small (HV_WINDOW_FORMAT_MAX is
 * always enough) and the text is cut. */
int hv_window_format(const struct hv_window *w, char *buf, size_t len);

#endif
