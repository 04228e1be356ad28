/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The BMC interface: driver selection, the "none" driver, the credentials
 * file and the helpers every driver shares (bmc.h). The ipmi driver is in
 * ipmi.c, the redfish driver in redfish.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/err.h"
#include "bmc.h"

/* ---- names ---------------------------------------------------------------- */

static const char *const action_names[HV__BMC_NACTION] = {
    [HV_BMC_ON] = "on",       [HV_BMC_OFF] = "off",   [HV_BMC_CYCLE] = "cycle",
    [HV_BMC_RESET] = "reset", [HV_BMC_SOFT] = "soft",
};

int hv_bmc_action_parse(const char *name)
{
	for (int i = 0; name != NULL && i < HV__BMC_NACTION; i++)
		if (strcmp(name, action_names[i]) == 0)
			return i;
	return -1;
}

const char *hv_bmc_action_name(int action)
{
	if (action < 0 || action >= HV__BMC_NACTION)
		return "?";
	return action_names[action];
}

int hv_bmc_action_what(const struct hv_bmc *b, int action, char *what, size_t len,
                       char *err, size_t errlen)
{
	if (action < 0 || action >= HV__BMC_NACTION)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: unknown power action %d: use on, off, cycle, "
		               "reset or soft",
		               b->address, action);
	snprintf(what, len, "power %s", hv_bmc_action_name(action));
	return HV_OK;
}

const char *hv_bmc_sensor_state_name(int state)
{
	switch (state) {
	case HV_BMC_SENSOR_OK:
		return "ok";
	case HV_BMC_SENSOR_WARNING:
		return "warning";
	case HV_BMC_SENSOR_CRITICAL:
		return "critical";
	case HV_BMC_SENSOR_UNREADABLE:
		return "unreadable";
	}
	return "?";
}

int hv_bmc_sensor_eval(const struct hv_bmc_sensor *s)
{
	const unsigned t = s->thresholds;
	const double v = s->value;

	/* IPMI asserts an upper threshold at or above it, a lower one at or
	 * below it; the reading and the thresholds are decoded with the same
	 * factors, so equality is exact. */
	if (((t & HV_BMC_TH_UPPER_NONREC) && v >= s->upper_nonrec) ||
	    ((t & HV_BMC_TH_UPPER_CRIT) && v >= s->upper_crit) ||
	    ((t & HV_BMC_TH_LOWER_NONREC) && v <= s->lower_nonrec) ||
	    ((t & HV_BMC_TH_LOWER_CRIT) && v <= s->lower_crit))
		return HV_BMC_SENSOR_CRITICAL;
	if (((t & HV_BMC_TH_UPPER_NONCRIT) && v >= s->upper_noncrit) ||
	    ((t & HV_BMC_TH_LOWER_NONCRIT) && v <= s->lower_noncrit))
		return HV_BMC_SENSOR_WARNING;
	return HV_BMC_SENSOR_OK;
}

/* ---- addresses ------------------------------------------------------------ */

int hv_bmc_address_split(const char *address, char *host, size_t hostlen, unsigned *port,
                         char *err, size_t errlen)
{
	const char *h = address, *p = NULL, *colon;
	size_t n;
	char *end;
	unsigned long v;

	*port = 0;
	if (address == NULL || address[0] == '\0')
		return hv_errf(err, errlen, HV_INVAL,
		               "no BMC address: give host or host:port");
	if (strlen(address) >= HV_BMC_ADDRESS_MAX)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC address is longer than %d bytes",
		               HV_BMC_ADDRESS_MAX - 1);
	if (address[0] == '[') { /* [v6] or [v6]:port */
		const char *close = strchr(address, ']');

		if (close == NULL || close == address + 1 ||
		    (close[1] != '\0' && close[1] != ':'))
			return hv_errf(err, errlen, HV_INVAL,
			               "BMC address '%s': write an IPv6 address as "
			               "[addr] or [addr]:port",
			               address);
		h = address + 1;
		n = (size_t)(close - h);
		if (close[1] == ':')
			p = close + 2;
	} else if ((colon = strchr(address, ':')) != NULL &&
	           strchr(colon + 1, ':') == NULL) { /* host:port */
		n = (size_t)(colon - address);
		p = colon + 1;
	} else { /* host, or a bare IPv6 address (no port) */
		n = strlen(address);
	}
	if (n == 0)
		return hv_errf(err, errlen, HV_INVAL, "BMC address '%s' has no host",
		               address);
	if (n >= hostlen)
		return hv_errf(err, errlen, HV_INVAL, "BMC address '%s': host too long",
		               address);
	memcpy(host, h, n);
	host[n] = '\0';
	if (p != NULL) {
		errno = 0;
		v = strtoul(p, &end, 10);
		if (p[0] < '0' || p[0] > '9' || *end != '\0' || errno != 0 || v == 0 ||
		    v > 65535)
			return hv_errf(err, errlen, HV_INVAL,
			               "BMC address '%s': the port must be a number "
			               "in 1-65535",
			               address);
		*port = (unsigned)v;
	}
	return HV_OK;
}

/* ---- credentials ---------------------------------------------------------- */

/* The sections that may hold an address's credentials, best first. */
enum { SEC_HOSTPORT, SEC_HOST, SEC_DEFAULT, SEC_N };

/* Keys of a section, as bits (to refuse a key given twice). */
enum { KEY_USER = 1, KEY_PASSWORD = 2, KEY_CIPHER = 4, KEY_PRIVILEGE = 8 };

struct creds_parse {
	char want[SEC_N][HV_BMC_ADDRESS_MAX + 16]; /* "" = no such candidate */
	struct hv_bmc_creds found[SEC_N];
	unsigned keys[SEC_N]; /* KEY_* seen in each candidate */
	/* The section of the last key, for sections that are not candidates. */
	char cur[HV_BMC_ADDRESS_MAX];
	unsigned cur_keys;
	char msg[512];
	int failed;
};

static int creds_fail(struct creds_parse *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int creds_fail(struct creds_parse *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->failed) {
		va_start(ap, fmt);
		vsnprintf(c->msg, sizeof c->msg, fmt, ap);
		va_end(ap);
		c->failed = 1;
	}
	return 0; /* inih: an error on this line */
}

/* The cipher suites libfreeipmi can speak, less 0 (no authentication at
 * all: anyone on the BMC's network could power the host off). */
static int cipher_suite_valid(unsigned long cs)
{
	return (cs >= 1 && cs <= 3) || (cs >= 6 && cs <= 8) || cs == 11 || cs == 12 ||
	       (cs >= 15 && cs <= 17);
}

/* Check one key=value (whatever its section) into c (value is never
 * echoed: it may be a password). */
static int creds_set(struct creds_parse *c, struct hv_bmc_creds *cr, unsigned *keys,
                     const char *section, const char *name, const char *value)
{
	unsigned key;
	char *end;
	unsigned long cs;

	if (strcmp(name, "user") == 0)
		key = KEY_USER;
	else if (strcmp(name, "password") == 0)
		key = KEY_PASSWORD;
	else if (strcmp(name, "cipher-suite") == 0)
		key = KEY_CIPHER;
	else if (strcmp(name, "privilege") == 0)
		key = KEY_PRIVILEGE;
	else
		return creds_fail(c,
		                  "unknown key '%s' in [%s]: use user, password, "
		                  "cipher-suite or privilege",
		                  name, section);
	if (*keys & key)
		return creds_fail(c,
		                  "'%s' given twice in [%s] (a line that starts with "
		                  "a space continues the one before)",
		                  name, section);
	*keys |= key;

	switch (key) {
	case KEY_USER:
		if (strlen(value) >= sizeof cr->user)
			return creds_fail(c, "user in [%s] is longer than %zu bytes",
			                  section, sizeof cr->user - 1);
		snprintf(cr->user, sizeof cr->user, "%s", value);
		break;
	case KEY_PASSWORD:
		if (value[0] == '\0')
			return creds_fail(c,
			                  "empty password in [%s]: give the BMC user "
			                  "a password and write it here",
			                  section);
		if (strlen(value) >= sizeof cr->password)
			return creds_fail(c, "password in [%s] is longer than %zu bytes",
			                  section, sizeof cr->password - 1);
		snprintf(cr->password, sizeof cr->password, "%s", value);
		break;
	case KEY_CIPHER:
		errno = 0;
		cs = strtoul(value, &end, 10);
		if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0)
			return creds_fail(c, "cipher-suite in [%s] is not a number",
			                  section);
		if (cs == 0)
			return creds_fail(c,
			                  "cipher-suite 0 in [%s] authenticates nobody: "
			                  "use 17 (or 3 where the BMC lacks 17)",
			                  section);
		if (!cipher_suite_valid(cs))
			return creds_fail(c,
			                  "cipher-suite %lu in [%s] is not an IPMI "
			                  "cipher suite (1-3, 6-8, 11-12, 15-17): use 17 "
			                  "(or 3 where the BMC lacks 17)",
			                  cs, section);
		cr->cipher_suite = (unsigned)cs;
		break;
	case KEY_PRIVILEGE:
		if (strcmp(value, "admin") != 0 && strcmp(value, "operator") != 0)
			return creds_fail(c,
			                  "privilege in [%s] must be admin or operator "
			                  "(operator may control power and read "
			                  "sensors)",
			                  section);
		snprintf(cr->privilege, sizeof cr->privilege, "%s", value);
		break;
	}
	return 1;
}

static int creds_on_key(void *user, const char *section, const char *name,
                        const char *value)
{
	struct creds_parse *c = user;
	struct hv_bmc_creds scratch;
	int matched = 0, rv = 1;

	if (c->failed)
		return 1; /* the first error is the one reported */
	if (section[0] == '\0')
		return creds_fail(c,
		                  "'%s' outside any section: put it under [default] "
		                  "or [BMC-ADDRESS]",
		                  name);
	/* Host names are case-blind. A section may match two candidates
	 * (host "default"...): it fills both, which is harmless. */
	for (int i = 0; i < SEC_N && rv; i++) {
		if (c->want[i][0] == '\0' || strcasecmp(section, c->want[i]) != 0)
			continue;
		matched = 1;
		snprintf(c->found[i].section, sizeof c->found[i].section, "%s", section);
		rv = creds_set(c, &c->found[i], &c->keys[i], section, name, value);
	}
	if (matched)
		return rv;
	/* Not ours: check it all the same, so a typo shows on every host. */
	if (strcmp(section, c->cur) != 0) {
		snprintf(c->cur, sizeof c->cur, "%s", section);
		c->cur_keys = 0;
	}
	memset(&scratch, 0, sizeof scratch);
	rv = creds_set(c, &scratch, &c->cur_keys, section, name, value);
	hv_bmc_creds_clear(&scratch);
	return rv;
}

/* Refuse a file others could read or change: it holds BMC passwords, and
 * whoever writes it picks the BMC hvpeerd logs into. */
static int creds_check_file(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	uid_t me = geteuid();

	if (fstat(fd, &st) != 0)
		return hv_errf(err, errlen, HV_IO, "BMC credentials %s: cannot stat: %s",
		               path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC credentials %s: not a regular file", path);
	if (st.st_uid != 0 && st.st_uid != me)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC credentials %s: owned by uid %u, not by root%s: "
		               "run chown root %s (it holds passwords)",
		               path, (unsigned)st.st_uid, me != 0 ? " nor by you" : "",
		               path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC credentials %s: mode %04o lets group or others "
		               "%s it, and it holds passwords: run chmod 600 %s",
		               path, (unsigned)(st.st_mode & 07777),
		               (st.st_mode & (S_IWGRP | S_IWOTH)) ? "change" : "read",
		               path);
	return HV_OK;
}

void hv_bmc_creds_clear(struct hv_bmc_creds *c)
{
	if (c != NULL)
		explicit_bzero(c, sizeof *c);
}

int hv_bmc_creds_load(const char *path, const char *address, struct hv_bmc_creds *out,
                      char *err, size_t errlen)
{
	struct creds_parse *c;
	char host[HV_BMC_ADDRESS_MAX], buf[4096];
	unsigned port;
	FILE *f = NULL;
	int fd = -1, rv, line, i;

	hv_bmc_creds_clear(out);
	if (path == NULL || path[0] == '\0')
		return hv_errf(err, errlen, HV_INVAL,
		               "no BMC credentials file given: name a root-only "
		               "file (chmod 600) with [default] or [BMC-ADDRESS]");
	rv = hv_bmc_address_split(address, host, sizeof host, &port, err, errlen);
	if (rv != HV_OK)
		return rv;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return hv_errf(err, errlen, HV_NOMEM, "BMC credentials %s: out of memory",
		               path);
	/* [v6:port] would read as another IPv6 address: IPv6 BMCs go by
	 * [host] alone. */
	if (port != 0 && strchr(host, ':') == NULL)
		snprintf(c->want[SEC_HOSTPORT], sizeof c->want[SEC_HOSTPORT], "%s:%u",
		         host, port);
	snprintf(c->want[SEC_HOST], sizeof c->want[SEC_HOST], "%s", host);
	snprintf(c->want[SEC_DEFAULT], sizeof c->want[SEC_DEFAULT], "default");

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rv = hv_errf(err, errlen, HV_IO, "BMC credentials %s: cannot open: %s",
		             path, strerror(errno));
		goto out_free;
	}
	/* Check the file we read, not a name that may change under us. */
	rv = creds_check_file(fd, path, err, errlen);
	if (rv != HV_OK)
		goto out_close;
	f = fdopen(fd, "r");
	if (f == NULL) {
		rv = hv_errf(err, errlen, HV_NOMEM, "BMC credentials %s: %s", path,
		             strerror(errno));
		goto out_close;
	}
	fd = -1;
	/* Our own buffer, wiped below: stdio's would keep the passwords in
	 * freed memory. */
	setvbuf(f, buf, _IOFBF, sizeof buf);
	line = ini_parse_file(f, creds_on_key, c);
	if (line == -2) {
		rv = hv_errf(err, errlen, HV_NOMEM, "BMC credentials %s: out of memory",
		             path);
		goto out_fclose;
	}
	if (line != 0 || c->failed) {
		rv = hv_errf(err, errlen, HV_INVAL, "BMC credentials %s:%d: %s", path,
		             line, c->msg[0] ? c->msg : "syntax error (not key = value)");
		goto out_fclose;
	}
	if (ferror(f)) {
		rv = hv_errf(err, errlen, HV_IO, "BMC credentials %s: read error", path);
		goto out_fclose;
	}
	for (i = 0; i < SEC_N; i++)
		if (c->keys[i] != 0)
			break;
	if (i == SEC_N) {
		if (c->want[SEC_HOSTPORT][0] != '\0')
			rv = hv_errf(err, errlen, HV_INVAL,
			             "BMC credentials %s: no section [%s], [%s] nor "
			             "[default]: add one with user and password",
			             path, c->want[SEC_HOSTPORT], host);
		else
			rv = hv_errf(err, errlen, HV_INVAL,
			             "BMC credentials %s: no section [%s] nor [default]: "
			             "add one with user and password",
			             path, host);
		goto out_fclose;
	}
	if (!(c->keys[i] & KEY_USER) || !(c->keys[i] & KEY_PASSWORD)) {
		rv = hv_errf(err, errlen, HV_INVAL,
		             "BMC credentials %s: [%s] has no %s: a section is used "
		             "whole (not mixed with [default]), give it user and "
		             "password",
		             path, c->found[i].section,
		             (c->keys[i] & KEY_USER) ? "password" : "user");
		goto out_fclose;
	}
	*out = c->found[i];
	rv = HV_OK;
out_fclose:
	fclose(f);
	explicit_bzero(buf, sizeof buf);
out_close:
	if (fd >= 0)
		close(fd);
out_free:
	explicit_bzero(c, sizeof *c);
	free(c);
	return rv;
}

/* ---- the none driver ------------------------------------------------------ */

static int none_power_status(struct hv_bmc *b, int *on, char *err, size_t errlen)
{
	return hv_errf(err, errlen, HV_INVAL,
	               "this host has no BMC configured (kind none): its power "
	               "state is unknown; configure an ipmi or redfish BMC to "
	               "read it");
}

static int none_power(struct hv_bmc *b, int action, char *err, size_t errlen)
{
	return hv_errf(err, errlen, HV_INVAL,
	               "cannot power %s: this host has no BMC configured (kind "
	               "none); configure an ipmi or redfish BMC, or a reboot "
	               "command",
	               hv_bmc_action_name(action));
}

static int none_sensors(struct hv_bmc *b, struct hv_bmc_sensor *out, unsigned max,
                        unsigned *n, char *err, size_t errlen)
{
	*n = 0; /* no BMC, nothing to watch: not an error */
	return HV_OK;
}

static int none_open(struct hv_bmc *b, const struct hv_bmc_creds *creds,
                     const struct hv_bmc_opts *opts, char *err, size_t errlen)
{
	b->power_status = none_power_status;
	b->power = none_power;
	b->sensors = none_sensors;
	return HV_OK;
}

/* ---- driver selection ----------------------------------------------------- */

static const struct {
	const char *kind;
	int (*open)(struct hv_bmc *b, const struct hv_bmc_creds *creds,
	            const struct hv_bmc_opts *opts, char *err, size_t errlen);
	int needs_address;
} drivers[] = {
    {"none", none_open, 0},
    {"ipmi", hv_bmc_ipmi_open, 1},
    {"redfish", hv_bmc_redfish_open, 1},
};

int hv_bmc_init(char *err, size_t errlen)
{
	int rv = hv_bmc_ipmi_init(err, errlen);

	if (rv != HV_OK)
		return rv;
	return hv_bmc_redfish_init(err, errlen);
}

int hv_bmc_open(struct hv_bmc *b, const char *kind, const char *address,
                const struct hv_bmc_creds *creds, const struct hv_bmc_opts *opts,
                char *err, size_t errlen)
{
	static const struct hv_bmc_opts defaults;
	char host[HV_BMC_ADDRESS_MAX];
	unsigned port;
	size_t i;
	int rv;

	memset(b, 0, sizeof *b);
	b->address = b->addr;
	if (kind == NULL)
		kind = "none";
	for (i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
		if (strcmp(kind, drivers[i].kind) == 0)
			break;
	if (i == sizeof drivers / sizeof drivers[0])
		return hv_errf(err, errlen, HV_INVAL,
		               "unknown BMC kind '%s': use ipmi, redfish or none", kind);
	b->kind = drivers[i].kind;
	if (drivers[i].needs_address) {
		rv = hv_bmc_address_split(address, host, sizeof host, &port, err, errlen);
		if (rv != HV_OK)
			return rv;
		if (creds == NULL)
			return hv_errf(err, errlen, HV_INVAL,
			               "BMC %s: no credentials: name a credentials "
			               "file",
			               address);
		snprintf(b->addr, sizeof b->addr, "%s", address);
	}
	return drivers[i].open(b, creds, opts != NULL ? opts : &defaults, err, errlen);
}

void hv_bmc_close(struct hv_bmc *b)
{
	if (b == NULL)
		return;
	if (b->close != NULL)
		b->close(b);
	memset(b, 0, sizeof *b);
}
