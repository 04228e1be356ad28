#include <string.h>

#include "version.h"

/* Locale-independent classes: a version is ASCII and must sort the same on
 * every host of the cluster. */
static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Weight of a character inside a non-digit run; the end of the string (and
 * a digit, which ends the run) weighs 0. */
static int weight(int c)
{
	if (c == '\0' || is_digit(c))
		return 0;
	if (c == '~')
		return -2;
	if (c == '-')
		return -1;
	if (is_alpha(c))
		return c;
	return c + 256;
}

int hv_version_cmp(const char *a, const char *b)
{
	while (*a != '\0' || *b != '\0') {
		int first_diff = 0;

		while ((*a != '\0' && !is_digit(*a)) || (*b != '\0' && !is_digit(*b))) {
			int wa = weight((unsigned char)*a),
			    wb = weight((unsigned char)*b);

			if (wa != wb)
				return wa < wb ? -1 : 1;
			/* Equal non-zero weights: both are the same non-digit. */
			a++;
			b++;
		}
		while (*a == '0')
			a++;
		while (*b == '0')
			b++;
		while (is_digit(*a) && is_digit(*b)) {
			if (first_diff == 0)
				first_diff = *a - *b;
			a++;
			b++;
		}
		/* The longer number (without leading zeros) is the larger. */
		if (is_digit(*a))
			return 1;
		if (is_digit(*b))
			return -1;
		if (first_diff != 0)
			return first_diff < 0 ? -1 : 1;
	}
	return 0;
}

bool hv_version_valid(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > HV_VERSION_MAX || !is_digit(s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]) && !is_alpha(s[i]) && strchr(".+~-", s[i]) == NULL)
			return false;
	return true;
}
