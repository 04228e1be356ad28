/*
 * Patch versions: validity and ordering.
 *
 * A version is 1..HV_VERSION_MAX characters of [0-9A-Za-z.+~-] and starts
 * with a digit ("1.2.0", "1.3.0-rc1", "2.0~beta2", "1.2.0+lab3").
 *
 * Ordering follows dpkg's algorithm with one change so that "-rcN" means a
 * pre-release as it does in semver. Both strings are cut into alternating
 * runs of non-digits and digits, compared left to right:
 *   - digit runs compare as numbers of any length ("10" > "9", "007" == "7");
 *   - non-digit runs compare character by character, where '~' sorts before
 *     everything, even the end of the string, '-' sorts before everything
 *     but '~', the end of the string comes next, then letters (by ASCII),
 *     then the other characters ('+', '.', by ASCII).
 * Hence 1.0~rc1 < 1.0-rc1 < 1.0-rc2 < 1.0-rc10 < 1.0 < 1.0+lab1 < 1.0.1 <
 * 1.0a, and 1.9.9 < 2.0. Write pre-releases with '-' or '~': "1.0rc1" sorts
 * after "1.0". Different strings may compare equal ("1.0" and "1.00").
 */
#ifndef HV_VERSION_H
#define HV_VERSION_H

#include <stdbool.h>

#define HV_VERSION_MAX 63 /* as in consensus/codec.h */

/* Negative, zero or positive as a sorts before, with or after b. Both must
 * be valid (hv_version_valid); other strings still give a total order. */
int hv_version_cmp(const char *a, const char *b);

/* True when s is a well-formed version (see above). */
bool hv_version_valid(const char *s);

#endif
