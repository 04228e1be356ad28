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
