#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static const char *const texts[] = {
#define HV__ERR_TEXT(name, text) text,
    HV_ERRORS(HV__ERR_TEXT)
#undef HV__ERR_TEXT
};

static const char *const names[] = {
#define HV__ERR_NAME(name, text) #name,
    HV_ERRORS(HV__ERR_NAME)
#undef HV__ERR_NAME
};

const char *hv_strerror(int code)
{
	if (code < 0 || code >= HV__NERR)
		return "unknown error";
	return texts[code];
}

const char *hv_errname(int code)
{
	if (code < 0 || code >= HV__NERR)
		return "UNKNOWN";
	return names[code];
}

int hv_errcode(const char *name)
{
	for (int i = 0; i < HV__NERR; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

int hv_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}
