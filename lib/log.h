/* One logging family for the daemon: level checked before formatting,
 * file:line in debug, repeated identical lines suppressed. */
#ifndef HV_LOG_H
#define HV_LOG_H

enum hv_log_level { HV_LOG_ERROR, HV_LOG_WARN, HV_LOG_INFO, HV_LOG_DEBUG };

extern int hv_log_level;

void hv_log_set_prefix(const char *prefix);
int hv_log_parse_level(const char *s); /* -1 when unknown */

void hv__log(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define HV__LOG(lvl, ...)                                                \
	do {                                                             \
		if ((lvl) <= hv_log_level)                               \
			hv__log((lvl), __FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

#define hv_error(...) HV__LOG(HV_LOG_ERROR, __VA_ARGS__)
#define hv_warn(...) HV__LOG(HV_LOG_WARN, __VA_ARGS__)
#define hv_info(...) HV__LOG(HV_LOG_INFO, __VA_ARGS__)
#define hv_debug(...) HV__LOG(HV_LOG_DEBUG, __VA_ARGS__)

#endif
