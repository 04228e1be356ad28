#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

int hv_log_level = HV_LOG_INFO;

static char prefix[64] = "hvpeerd";
static char last[512];
static unsigned repeats;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void hv_log_set_prefix(const char *p)
{
	snprintf(prefix, sizeof prefix, "%s", p);
}

int hv_log_parse_level(const char *s)
{
	for (int i = 0; i <= HV_LOG_DEBUG; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void hv__log(int level, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	struct timespec ts;
	struct tm tm;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);

	/* Rate limit: a line identical to the previous one is counted, not
	 * printed, and the count is shown when a different line arrives. */
	if (strcmp(msg, last) == 0) {
		repeats++;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (repeats > 0)
		fprintf(stderr, "%s: (last message repeated %u times)\n", prefix,
		        repeats);
	repeats = 0;
	snprintf(last, sizeof last, "%s", msg);
	if (hv_log_level >= HV_LOG_DEBUG)
		fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s (%s:%d)\n", tm.tm_hour,
		        tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, prefix,
		        level_names[level], msg, file, line);
	else
		fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min,
		        tm.tm_sec, ts.tv_nsec / 1000000, prefix, level_names[level], msg);
}
