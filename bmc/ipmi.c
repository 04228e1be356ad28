/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The ipmi BMC driver: IPMI 2.0 over LAN (RMCP+, "lanplus") with
 * libfreeipmi (GPL-3.0-or-later). The interface is in bmc.h.
 *
 * Happy path of every call: open a session (Get Channel Authentication
 * Capabilities, Open Session, RAKP 1-4 with the cipher suite, Set Session
 * Privilege), run the call's commands, close the session. A session per
 * call costs four round trips, but an idle handle holds nothing on the BMC
 * (BMCs allow few sessions and drop idle ones after ~60 s), and a command
 * is never replayed on a fresh session behind the caller's back: a power
 * cycle sent twice would cycle the host twice.
 *
 * sensors fetches the SDR repository (the sensors' names, units, conversion
 * factors and thresholds) once per handle and again only when the BMC's
 * repository timestamps change. libfreeipmi writes it to a file: the driver
 * gives it a private temporary directory, reads the records back into
 * memory and removes the directory before the call returns.
 *
 * Failure modes: no answer to the first packet within timeout_ms ->
 * HV_UNREACHABLE; the session stops answering later -> HV_TIMEOUT; user,
 * password, privilege or cipher suite refused -> HV_INVAL; an error
 * completion code -> HV_IO with its meaning. libfreeipmi retransmits
 * inside timeout_ms; a retransmitted command may run twice on a BMC that
 * was slow to answer the first one (power on/off/reset twice is harmless).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <freeipmi/freeipmi.h>

#include "../lib/err.h"
#include "bmc.h"
#include "ipmi.h"

/* Bounds on what a BMC may make us hold. */
#define SDR_RECORDS_MAX 4096

struct sdr_record {
	unsigned len;
	uint8_t data[IPMI_SDR_MAX_RECORD_LENGTH];
};

struct ipmi_drv {
	char host[HV_BMC_ADDRESS_MAX + 8]; /* as libfreeipmi parses it */
	char user[IPMI_MAX_USER_NAME_LENGTH + 1];
	char password[IPMI_2_0_MAX_PASSWORD_LENGTH + 1];
	uint8_t privilege;
	uint8_t cipher_suite;
	unsigned timeout_ms, retransmit_ms;
	unsigned workarounds; /* IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_* */
	char tmp_dir[PATH_MAX];

	/* The SDR repository as last fetched. */
	struct sdr_record *sdr;
	unsigned n_sdr;
	int have_sdr;
	uint32_t sdr_added, sdr_erased; /* the repository's timestamps then */
};

/* ---- errors --------------------------------------------------------------- */

/*
 * Turn the error libfreeipmi left in ctx into an HV_* code and a message:
 * "BMC ADDR: WHAT: cause: what to do". opening: the error came while the
 * session was set up. obj_rs (may be NULL) is the command's response, for
 * the completion code's meaning.
 */
static int ctx_error_at(struct hv_bmc *b, ipmi_ctx_t ctx, const char *what, int opening,
                        fiid_obj_t obj_rs, uint8_t netfn, char *err, size_t errlen)
{
	struct ipmi_drv *d = b->drv;
	int e = ipmi_ctx_errnum(ctx), saved = errno;
	char cc[256] = "";
	uint64_t code;

	switch (e) {
	case IPMI_ERR_USERNAME_INVALID:
	case IPMI_ERR_PASSWORD_INVALID:
	case IPMI_ERR_K_G_INVALID:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: the BMC refused the user or password (user "
		               "'%s'; %s): check them in the credentials file and that "
		               "the user may log in over IPMI LAN",
		               b->address, what, d->user, ipmi_ctx_errormsg(ctx));
	case IPMI_ERR_PRIVILEGE_LEVEL_INSUFFICIENT:
	case IPMI_ERR_PRIVILEGE_LEVEL_CANNOT_BE_OBTAINED:
		return hv_errf(
		    err, errlen, HV_INVAL,
		    "BMC %s: %s: the BMC does not grant user '%s' the %s "
		    "privilege (%s): raise the user's privilege on the BMC, "
		    "set privilege in the credentials file%s",
		    b->address, what, d->user,
		    d->privilege == IPMI_PRIVILEGE_LEVEL_ADMIN ? "admin" : "operator",
		    ipmi_ctx_errormsg(ctx),
		    (d->workarounds &
		     IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE)
		        ? ""
		        : ", or try the workaround opensesspriv (ipmi_sim "
		          "and some BMCs need it)");
	case IPMI_ERR_IPMI_ERROR:
	case IPMI_ERR_INTERNAL_ERROR:
	case IPMI_ERR_BAD_RMCPPLUS_STATUS_CODE:
		/* A BMC that lacks the cipher suite may answer Open Session
		 * with a bare status that libfreeipmi cannot parse (ipmi_sim
		 * does so for 17). */
		if (opening)
			return hv_errf(
			    err, errlen, HV_PROTO,
			    "BMC %s: %s: the BMC refused or garbled the session "
			    "setup with cipher suite %u (%s): if it lacks "
			    "cipher suite %u, set cipher-suite to one it "
			    "offers (3 where it lacks 17)",
			    b->address, what, d->cipher_suite, ipmi_ctx_errormsg(ctx),
			    d->cipher_suite);
		break;
	case IPMI_ERR_CIPHER_SUITE_ID_UNAVAILABLE:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: the BMC does not offer cipher suite %u: "
		               "set cipher-suite to one it offers (3 where it lacks "
		               "17) in the credentials file",
		               b->address, what, d->cipher_suite);
	case IPMI_ERR_AUTHENTICATION_TYPE_UNAVAILABLE:
	case IPMI_ERR_IPMI_2_0_UNAVAILABLE:
		return hv_errf(err, errlen, HV_PROTO,
		               "BMC %s: %s: %s: the BMC does not offer IPMI 2.0 "
		               "(RMCP+) to this user: enable IPMI over LAN on it",
		               b->address, what, ipmi_ctx_errormsg(ctx));
	case IPMI_ERR_CONNECTION_TIMEOUT:
		return hv_errf(err, errlen, HV_UNREACHABLE,
		               "BMC %s: %s: no answer within %u ms: check the address "
		               "and port (UDP 623 by default), that IPMI over LAN is "
		               "enabled on the BMC, and the network to it",
		               b->address, what, d->timeout_ms);
	case IPMI_ERR_SESSION_TIMEOUT:
	case IPMI_ERR_MESSAGE_TIMEOUT:
	case IPMI_ERR_PASSWORD_VERIFICATION_TIMEOUT:
		return hv_errf(err, errlen, HV_TIMEOUT,
		               "BMC %s: %s: %s (no answer within %u ms): retry; if it "
		               "lasts, the BMC may need a reset",
		               b->address, what, ipmi_ctx_errormsg(ctx), d->timeout_ms);
	case IPMI_ERR_HOSTNAME_INVALID:
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: %s: cannot resolve the host name: check the "
		               "BMC address",
		               b->address, what);
	case IPMI_ERR_OUT_OF_MEMORY:
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
		               b->address, what);
	case IPMI_ERR_BMC_BUSY:
	case IPMI_ERR_DRIVER_BUSY:
		return hv_errf(err, errlen, HV_IO, "BMC %s: %s: %s: retry later",
		               b->address, what, ipmi_ctx_errormsg(ctx));
	case IPMI_ERR_BAD_COMPLETION_CODE:
	case IPMI_ERR_COMMAND_INVALID_OR_UNSUPPORTED:
		if (obj_rs != NULL && FIID_OBJ_GET(obj_rs, "comp_code", &code) == 1 &&
		    ipmi_completion_code_strerror_cmd_r(obj_rs, netfn, cc, sizeof cc) ==
		        0)
			return hv_errf(
			    err, errlen, HV_IO,
			    "BMC %s: %s: the BMC refused it (completion code "
			    "0x%02x: %s): retry; if it lasts, see the BMC's event "
			    "log",
			    b->address, what, (unsigned)code, cc);
		break;
	case IPMI_ERR_SYSTEM_ERROR:
		return hv_errf(err, errlen, HV_IO, "BMC %s: %s: %s: %s", b->address, what,
		               ipmi_ctx_errormsg(ctx), strerror(saved));
	}
	return hv_errf(err, errlen, HV_IO, "BMC %s: %s: %s", b->address, what,
	               ipmi_ctx_errormsg(ctx));
}

static int ctx_error(struct hv_bmc *b, ipmi_ctx_t ctx, const char *what,
                     fiid_obj_t obj_rs, uint8_t netfn, char *err, size_t errlen)
{
	return ctx_error_at(b, ctx, what, 0, obj_rs, netfn, err, errlen);
}

/* ---- sessions ------------------------------------------------------------- */

static int session_open(struct hv_bmc *b, const char *what, ipmi_ctx_t *out, char *err,
                        size_t errlen)
{
	struct ipmi_drv *d = b->drv;
	ipmi_ctx_t ctx;
	int rv;

	*out = NULL;
	ctx = ipmi_ctx_create();
	if (ctx == NULL)
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
		               b->address, what);
	if (ipmi_ctx_open_outofband_2_0(ctx, d->host, d->user[0] ? d->user : NULL,
	                                d->password, NULL, 0, d->privilege,
	                                d->cipher_suite, d->timeout_ms, d->retransmit_ms,
	                                d->workarounds, IPMI_FLAGS_DEFAULT) < 0) {
		rv = ctx_error_at(b, ctx, what, 1, NULL, 0, err, errlen);
		ipmi_ctx_destroy(ctx);
		return rv;
	}
	*out = ctx;
	return HV_OK;
}

static void session_close(ipmi_ctx_t ctx)
{
	if (ctx == NULL)
		return;
	/* Close Session on the BMC (frees its slot), then the socket. */
	ipmi_ctx_close(ctx);
	ipmi_ctx_destroy(ctx);
}

/* ---- power ---------------------------------------------------------------- */

static int ipmi_power_status(struct hv_bmc *b, int *on, char *err, size_t errlen)
{
	ipmi_ctx_t ctx;
	fiid_obj_t rs = NULL;
	uint64_t val;
	int rv;

	rv = session_open(b, "power status", &ctx, err, errlen);
	if (rv != HV_OK)
		return rv;
	rs = fiid_obj_create(tmpl_cmd_get_chassis_status_rs);
	if (rs == NULL) {
		rv = hv_errf(err, errlen, HV_NOMEM, "BMC %s: power status: out of memory",
		             b->address);
		goto out_session;
	}
	if (ipmi_cmd_get_chassis_status(ctx, rs) < 0) {
		rv = ctx_error(b, ctx, "power status", rs, IPMI_NET_FN_CHASSIS_RQ, err,
		               errlen);
		goto out_obj;
	}
	if (FIID_OBJ_GET(rs, "current_power_state.power_is_on", &val) < 0) {
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: power status: the answer holds no power state (%s)",
		             b->address, fiid_obj_errormsg(rs));
		goto out_obj;
	}
	*on = val == IPMI_SYSTEM_POWER_IS_ON;
	rv = HV_OK;
out_obj:
	fiid_obj_destroy(rs);
out_session:
	session_close(ctx);
	return rv;
}

static int ipmi_power(struct hv_bmc *b, int action, char *err, size_t errlen)
{
	static const uint8_t control[HV__BMC_NACTION] = {
	    [HV_BMC_ON] = IPMI_CHASSIS_CONTROL_POWER_UP,
	    [HV_BMC_OFF] = IPMI_CHASSIS_CONTROL_POWER_DOWN,
	    [HV_BMC_CYCLE] = IPMI_CHASSIS_CONTROL_POWER_CYCLE,
	    [HV_BMC_RESET] = IPMI_CHASSIS_CONTROL_HARD_RESET,
	    [HV_BMC_SOFT] = IPMI_CHASSIS_CONTROL_INITIATE_SOFT_SHUTDOWN,
	};
	char what[32];
	ipmi_ctx_t ctx;
	fiid_obj_t rs = NULL;
	int rv;

	rv = hv_bmc_action_what(b, action, what, sizeof what, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = session_open(b, what, &ctx, err, errlen);
	if (rv != HV_OK)
		return rv;
	rs = fiid_obj_create(tmpl_cmd_chassis_control_rs);
	if (rs == NULL) {
		rv = hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
		             b->address, what);
		goto out_session;
	}
	if (ipmi_cmd_chassis_control(ctx, control[action], rs) < 0) {
		rv = ctx_error(b, ctx, what, rs, IPMI_NET_FN_CHASSIS_RQ, err, errlen);
		goto out_obj;
	}
	rv = HV_OK;
out_obj:
	fiid_obj_destroy(rs);
out_session:
	session_close(ctx);
	return rv;
}

/* ---- the SDR -------------------------------------------------------------- */

static void sdr_forget(struct ipmi_drv *d)
{
	free(d->sdr);
	d->sdr = NULL;
	d->n_sdr = 0;
	d->have_sdr = 0;
}

/* The SDR context's error, or the IPMI one under it. */
static int sdr_error(struct hv_bmc *b, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr,
                     const char *what, char *err, size_t errlen)
{
	int e = ipmi_sdr_ctx_errnum(sdr);

	if (e == IPMI_SDR_ERR_IPMI_ERROR)
		return ctx_error(b, ctx, what, NULL, 0, err, errlen);
	if (e == IPMI_SDR_ERR_OUT_OF_MEMORY)
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: %s: out of memory",
		               b->address, what);
	if (e == IPMI_SDR_ERR_SYSTEM_ERROR || e == IPMI_SDR_ERR_FILESYSTEM ||
	    e == IPMI_SDR_ERR_PERMISSION)
		return hv_errf(err, errlen, HV_IO,
		               "BMC %s: %s: %s (in %s): check that the temporary "
		               "directory is writable",
		               b->address, what, ipmi_sdr_ctx_errormsg(sdr),
		               ((struct ipmi_drv *)b->drv)->tmp_dir);
	return hv_errf(err, errlen, HV_PROTO, "BMC %s: %s: %s", b->address, what,
	               ipmi_sdr_ctx_errormsg(sdr));
}

/* Read the repository libfreeipmi cached in file into memory (*recs, *n). */
static int sdr_read_file(struct hv_bmc *b, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr,
                         const char *file, struct sdr_record **recs, unsigned *n,
                         char *err, size_t errlen)
{
	struct sdr_record *r = NULL;
	uint16_t count;
	unsigned i = 0;
	int len, more, rv;

	*recs = NULL;
	*n = 0;
	/* No ipmi ctx: the cache was just made, no need to ask the BMC
	 * whether it is current. */
	if (ipmi_sdr_cache_open(sdr, NULL, file) < 0)
		return sdr_error(b, ctx, sdr, "reading the SDR", err, errlen);
	if (ipmi_sdr_cache_record_count(sdr, &count) < 0) {
		rv = sdr_error(b, ctx, sdr, "reading the SDR", err, errlen);
		goto out_close;
	}
	if (count > SDR_RECORDS_MAX) {
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: the SDR holds %u records, more than the %d "
		             "hvpeer reads",
		             b->address, count, SDR_RECORDS_MAX);
		goto out_close;
	}
	if (count > 0) {
		r = calloc(count, sizeof *r);
		if (r == NULL) {
			rv = hv_errf(err, errlen, HV_NOMEM, "BMC %s: SDR: out of memory",
			             b->address);
			goto out_close;
		}
		if (ipmi_sdr_cache_first(sdr) < 0) {
			rv = sdr_error(b, ctx, sdr, "reading the SDR", err, errlen);
			goto out_free;
		}
		do {
			len =
			    ipmi_sdr_cache_record_read(sdr, r[i].data, sizeof r[i].data);
			if (len < 0) {
				rv = sdr_error(b, ctx, sdr, "reading the SDR", err,
				               errlen);
				goto out_free;
			}
			r[i++].len = (unsigned)len;
			more = ipmi_sdr_cache_next(sdr);
			if (more < 0) {
				rv = sdr_error(b, ctx, sdr, "reading the SDR", err,
				               errlen);
				goto out_free;
			}
		} while (more == 1 && i < count);
	}
	*recs = r;
	*n = i;
	ipmi_sdr_cache_close(sdr);
	return HV_OK;
out_free:
	free(r);
out_close:
	ipmi_sdr_cache_close(sdr);
	return rv;
}

/* Fetch the SDR repository unless the copy in memory is current. */
static int sdr_refresh(struct hv_bmc *b, ipmi_ctx_t ctx, char *err, size_t errlen)
{
	struct ipmi_drv *d = b->drv;
	char dir[PATH_MAX], file[PATH_MAX + 8];
	fiid_obj_t rs;
	ipmi_sdr_ctx_t sdr = NULL;
	struct sdr_record *recs;
	uint64_t added, erased;
	unsigned n;
	int rv;

	rs = fiid_obj_create(tmpl_cmd_get_sdr_repository_info_rs);
	if (rs == NULL)
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: SDR: out of memory",
		               b->address);
	if (ipmi_cmd_get_sdr_repository_info(ctx, rs) < 0) {
		rv = ctx_error(b, ctx, "SDR repository info", rs, IPMI_NET_FN_STORAGE_RQ,
		               err, errlen);
		goto out_obj;
	}
	if (FIID_OBJ_GET(rs, "most_recent_addition_timestamp", &added) < 0 ||
	    FIID_OBJ_GET(rs, "most_recent_erase_timestamp", &erased) < 0) {
		rv = hv_errf(err, errlen, HV_PROTO,
		             "BMC %s: SDR repository info without timestamps (%s)",
		             b->address, fiid_obj_errormsg(rs));
		goto out_obj;
	}
	if (d->have_sdr && d->sdr_added == added && d->sdr_erased == erased) {
		rv = HV_OK;
		goto out_obj;
	}

	if ((size_t)snprintf(dir, sizeof dir, "%s/hvpeer-sdr.XXXXXX", d->tmp_dir) >=
	    sizeof dir) {
		rv = hv_errf(err, errlen, HV_INVAL,
		             "BMC %s: temporary directory %s: too long", b->address,
		             d->tmp_dir);
		goto out_obj;
	}
	if (mkdtemp(dir) == NULL) {
		rv = hv_errf(err, errlen, HV_IO,
		             "BMC %s: cannot make a directory in %s for the SDR: %s",
		             b->address, d->tmp_dir, strerror(errno));
		goto out_obj;
	}
	snprintf(file, sizeof file, "%s/sdr", dir);
	sdr = ipmi_sdr_ctx_create();
	if (sdr == NULL) {
		rv = hv_errf(err, errlen, HV_NOMEM, "BMC %s: SDR: out of memory",
		             b->address);
		goto out_dir;
	}
	if (ipmi_sdr_cache_create(sdr, ctx, file, IPMI_SDR_CACHE_CREATE_FLAGS_DEFAULT,
	                          NULL, NULL) < 0) {
		rv = sdr_error(b, ctx, sdr, "fetching the SDR", err, errlen);
		goto out_file; /* it may have left a part behind */
	}
	rv = sdr_read_file(b, ctx, sdr, file, &recs, &n, err, errlen);
	if (rv != HV_OK)
		goto out_file;
	sdr_forget(d);
	d->sdr = recs;
	d->n_sdr = n;
	d->have_sdr = 1;
	d->sdr_added = (uint32_t)added;
	d->sdr_erased = (uint32_t)erased;
out_file:
	unlink(file);
	ipmi_sdr_ctx_destroy(sdr);
out_dir:
	rmdir(dir);
out_obj:
	fiid_obj_destroy(rs);
	return rv;
}

/* ---- sensors -------------------------------------------------------------- */

/* The thresholds the record declares readable, decoded to its unit. */
static void sensor_thresholds(ipmi_sdr_ctx_t sdr, const uint8_t *rec, unsigned len,
                              struct hv_bmc_sensor *s)
{
	uint8_t rd[6];
	double *v[6] = {NULL};
	double *dst[6] = {&s->lower_noncrit, &s->lower_crit, &s->lower_nonrec,
	                  &s->upper_noncrit, &s->upper_crit, &s->upper_nonrec};
	static const unsigned bit[6] = {HV_BMC_TH_LOWER_NONCRIT, HV_BMC_TH_LOWER_CRIT,
	                                HV_BMC_TH_LOWER_NONREC,  HV_BMC_TH_UPPER_NONCRIT,
	                                HV_BMC_TH_UPPER_CRIT,    HV_BMC_TH_UPPER_NONREC};

	s->thresholds = 0;
	/* libfreeipmi decodes all six whatever the record says: only the
	 * ones marked readable mean anything. A non-linear sensor has none
	 * we can decode. */
	if (ipmi_sdr_parse_threshold_readable(sdr, rec, len, &rd[0], &rd[1], &rd[2],
	                                      &rd[3], &rd[4], &rd[5]) < 0)
		return;
	if (ipmi_sdr_parse_thresholds(sdr, rec, len, &v[0], &v[1], &v[2], &v[3], &v[4],
	                              &v[5]) < 0)
		return;
	for (int i = 0; i < 6; i++) {
		if (rd[i] && v[i] != NULL) {
			*dst[i] = *v[i];
			s->thresholds |= bit[i];
		}
		free(v[i]);
	}
}

/* The state the BMC itself reports (threshold comparison bits of Get
 * Sensor Reading: 0 LNC, 1 LC, 2 LNR, 3 UNC, 4 UC, 5 UNR). */
static int bmc_state(uint16_t bits)
{
	if (bits & 0x36)
		return HV_BMC_SENSOR_CRITICAL;
	if (bits & 0x09)
		return HV_BMC_SENSOR_WARNING;
	return HV_BMC_SENSOR_OK;
}

/* Does this sensor-read error say the session is gone (fail the call)
 * rather than that this one sensor has no reading? */
static int session_lost(ipmi_ctx_t ctx)
{
	switch (ipmi_ctx_errnum(ctx)) {
	case IPMI_ERR_CONNECTION_TIMEOUT:
	case IPMI_ERR_SESSION_TIMEOUT:
	case IPMI_ERR_MESSAGE_TIMEOUT:
	case IPMI_ERR_OUT_OF_MEMORY:
	case IPMI_ERR_SYSTEM_ERROR:
		return 1;
	}
	return 0;
}

int hv_bmc_ipmi_sdr_sensor(ipmi_sdr_ctx_t sdr, const uint8_t *rec, unsigned len,
                           struct hv_bmc_sensor *s)
{
	uint8_t type, ertc, owner_type, owner, pct, mod, rate, base, modtype, stype;
	char units[256] = "";
	const char *tname;

	if (ipmi_sdr_parse_record_id_and_type(sdr, rec, len, NULL, &type) < 0 ||
	    type != IPMI_SDR_FORMAT_FULL_SENSOR_RECORD)
		return 0;
	if (ipmi_sdr_parse_event_reading_type_code(sdr, rec, len, &ertc) < 0 ||
	    !IPMI_EVENT_READING_TYPE_CODE_IS_THRESHOLD(ertc))
		return 0;
	/* Sensors of other controllers need bridging, which BMCs do badly
	 * over LAN; system software "sensors" have nothing to read. */
	if (ipmi_sdr_parse_sensor_owner_id(sdr, rec, len, &owner_type, &owner) < 0 ||
	    owner_type != IPMI_SDR_SENSOR_OWNER_ID_TYPE_IPMB_SLAVE_ADDRESS ||
	    (owner << 1) != IPMI_SLAVE_ADDRESS_BMC)
		return 0;

	memset(s, 0, sizeof *s);
	if (ipmi_sdr_parse_id_string(sdr, rec, len, s->name, sizeof s->name - 1) < 0 ||
	    s->name[0] == '\0')
		snprintf(s->name, sizeof s->name, "sensor@%u", rec[0] | rec[1] << 8);
	if (ipmi_sdr_parse_sensor_type(sdr, rec, len, &stype) == 0 &&
	    (tname = ipmi_get_sensor_type_string(stype)) != NULL)
		snprintf(s->type, sizeof s->type, "%s", tname);
	/* ipmi_sensor_units_string writes past the length it is given when a
	 * record's units do not fit ("% unspecified / ..." in 15 bytes wrote
	 * 17): give it room for any units, then cut to s->unit. */
	if (ipmi_sdr_parse_sensor_units(sdr, rec, len, &pct, &mod, &rate, &base,
	                                &modtype) == 0 &&
	    ipmi_sensor_units_string(pct, mod, rate, base, modtype, units,
	                             sizeof units - 32, 1) >= 0)
		snprintf(s->unit, sizeof s->unit, "%s", units);
	sensor_thresholds(sdr, rec, len, s);
	return 1;
}

/* Fill s from record r; 0 = not a sensor we report, 1 = filled, < 0 = an
 * HV_* error (negated) that ends the call. */
static int sensor_one(struct hv_bmc *b, ipmi_ctx_t ctx, ipmi_sdr_ctx_t sdr,
                      ipmi_sensor_read_ctx_t rd, const struct sdr_record *r,
                      struct hv_bmc_sensor *s, char *err, size_t errlen)
{
	uint8_t raw;
	double *reading = NULL;
	uint16_t bits = 0;
	int got, st;

	if (hv_bmc_ipmi_sdr_sensor(sdr, r->data, r->len, s) == 0)
		return 0;
	got = ipmi_sensor_read(rd, r->data, r->len, 0, &raw, &reading, &bits);
	if (got < 0 &&
	    ipmi_sensor_read_ctx_errnum(rd) == IPMI_SENSOR_READ_ERR_IPMI_ERROR &&
	    session_lost(ctx))
		return -ctx_error(b, ctx, "reading sensors", NULL, 0, err, errlen);
	if (got < 0 &&
	    ipmi_sensor_read_ctx_errnum(rd) == IPMI_SENSOR_READ_ERR_OUT_OF_MEMORY)
		return -hv_errf(err, errlen, HV_NOMEM, "BMC %s: sensors: out of memory",
		                b->address);
	if (got == 1 && reading != NULL) {
		s->value = *reading;
		/* The worse of our verdict (the SDR's thresholds) and the
		 * BMC's (thresholds it may have been given since). */
		s->state = hv_bmc_sensor_eval(s);
		st = bmc_state(bits);
		if (st > s->state)
			s->state = st;
	} else {
		s->state = HV_BMC_SENSOR_UNREADABLE;
	}
	free(reading);
	return 1;
}

static int ipmi_sensors(struct hv_bmc *b, struct hv_bmc_sensor *out, unsigned max,
                        unsigned *n, char *err, size_t errlen)
{
	struct ipmi_drv *d = b->drv;
	ipmi_ctx_t ctx;
	ipmi_sdr_ctx_t sdr = NULL;
	ipmi_sensor_read_ctx_t rd = NULL;
	int rv, got;

	*n = 0;
	rv = session_open(b, "sensors", &ctx, err, errlen);
	if (rv != HV_OK)
		return rv;
	rv = sdr_refresh(b, ctx, err, errlen);
	if (rv != HV_OK)
		goto out_session;
	sdr = ipmi_sdr_ctx_create(); /* only to parse records in memory */
	rd = ipmi_sensor_read_ctx_create(ctx);
	if (sdr == NULL || rd == NULL) {
		rv = hv_errf(err, errlen, HV_NOMEM, "BMC %s: sensors: out of memory",
		             b->address);
		goto out_ctx;
	}
	for (unsigned i = 0; i < d->n_sdr && *n < max; i++) {
		got = sensor_one(b, ctx, sdr, rd, &d->sdr[i], &out[*n], err, errlen);
		if (got < 0) {
			rv = -got;
			goto out_ctx;
		}
		*n += (unsigned)got;
	}
	rv = HV_OK;
out_ctx:
	if (rd != NULL)
		ipmi_sensor_read_ctx_destroy(rd);
	if (sdr != NULL)
		ipmi_sdr_ctx_destroy(sdr);
out_session:
	session_close(ctx);
	return rv;
}

/* ---- open and close ------------------------------------------------------- */

static void ipmi_close(struct hv_bmc *b)
{
	struct ipmi_drv *d = b->drv;

	if (d == NULL)
		return;
	sdr_forget(d);
	explicit_bzero(d, sizeof *d);
	free(d);
	b->drv = NULL;
}

/* FreeIPMI's workaround names (ipmitool -W, ipmipower -W) for IPMI 2.0. */
static const struct {
	const char *name;
	unsigned flag;
} workaround_names[] = {
    {"authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_AUTHENTICATION_CAPABILITIES},
    {"intel20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_INTEL_2_0_SESSION},
    {"supermicro20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUPERMICRO_2_0_SESSION},
    {"sun20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUN_2_0_SESSION},
    {"opensesspriv", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE},
    {"integritycheckvalue",
     IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NON_EMPTY_INTEGRITY_CHECK_VALUE},
    {"nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NO_CHECKSUM_CHECK},
};

static int parse_workarounds(const char *list, unsigned *flags, char *err, size_t errlen)
{
	const char *p = list;
	size_t len, i;

	*flags = 0;
	while (p != NULL && *p != '\0') {
		p += strspn(p, ", ");
		len = strcspn(p, ", ");
		if (len == 0)
			break;
		for (i = 0; i < sizeof workaround_names / sizeof workaround_names[0]; i++)
			if (strlen(workaround_names[i].name) == len &&
			    strncmp(p, workaround_names[i].name, len) == 0)
				break;
		if (i == sizeof workaround_names / sizeof workaround_names[0])
			return hv_errf(err, errlen, HV_INVAL,
			               "unknown IPMI workaround '%.*s': use authcap, "
			               "intel20, supermicro20, sun20, opensesspriv, "
			               "integritycheckvalue or nochecksumcheck",
			               (int)len, p);
		*flags |= workaround_names[i].flag;
		p += len;
	}
	return HV_OK;
}

int hv_bmc_ipmi_init(char *err, size_t errlen)
{
	if (ipmi_rmcpplus_init() < 0)
		return hv_errf(err, errlen, HV_IO,
		               "cannot initialise libgcrypt for IPMI 2.0 (%s): check "
		               "that libgcrypt matches the libfreeipmi package",
		               strerror(errno));
	return HV_OK;
}

int hv_bmc_ipmi_open(struct hv_bmc *b, const struct hv_bmc_creds *creds,
                     const struct hv_bmc_opts *opts, char *err, size_t errlen)
{
	struct ipmi_drv *d;
	char host[HV_BMC_ADDRESS_MAX];
	const char *tmp;
	unsigned port, cs;
	int rv;

	rv = hv_bmc_address_split(b->address, host, sizeof host, &port, err, errlen);
	if (rv != HV_OK)
		return rv;
	if (strlen(creds->user) > IPMI_MAX_USER_NAME_LENGTH)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: user '%s' is longer than IPMI's %d bytes",
		               b->address, creds->user, IPMI_MAX_USER_NAME_LENGTH);
	if (strlen(creds->password) > IPMI_2_0_MAX_PASSWORD_LENGTH)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: the password is longer than IPMI 2.0's %d bytes",
		               b->address, IPMI_2_0_MAX_PASSWORD_LENGTH);
	if (creds->password[0] == '\0')
		return hv_errf(err, errlen, HV_INVAL, "BMC %s: no password", b->address);
	cs = opts->cipher_suite    ? opts->cipher_suite
	     : creds->cipher_suite ? creds->cipher_suite
	                           : 17;
	if (cs == 0 || !IPMI_CIPHER_SUITE_ID_SUPPORTED(cs))
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: cipher suite %u is not one libfreeipmi speaks "
		               "(1-3, 6-8, 11-12, 15-17): use 17, or 3 where the BMC "
		               "lacks 17",
		               b->address, cs);

	d = calloc(1, sizeof *d);
	if (d == NULL)
		return hv_errf(err, errlen, HV_NOMEM, "BMC %s: out of memory",
		               b->address);
	b->drv = d;
	b->close = ipmi_close;
	rv = parse_workarounds(opts->workarounds, &d->workarounds, err, errlen);
	if (rv != HV_OK)
		return rv;
	/* libfreeipmi reads "[v6]:port", "host:port" and a bare v6. */
	if (port != 0)
		snprintf(d->host, sizeof d->host, strchr(host, ':') ? "[%s]:%u" : "%s:%u",
		         host, port);
	else
		snprintf(d->host, sizeof d->host, "%s", host);
	snprintf(d->user, sizeof d->user, "%s", creds->user);
	snprintf(d->password, sizeof d->password, "%s", creds->password);
	d->privilege = strcmp(creds->privilege, "operator") == 0
	                   ? IPMI_PRIVILEGE_LEVEL_OPERATOR
	                   : IPMI_PRIVILEGE_LEVEL_ADMIN;
	d->cipher_suite = (uint8_t)cs;
	d->timeout_ms = opts->timeout_ms ? opts->timeout_ms : HV_BMC_TIMEOUT_MS;
	if (d->timeout_ms < 200)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: timeout %u ms is too short for IPMI (at least "
		               "200 ms)",
		               b->address, d->timeout_ms);
	/* A retransmission every fifth of the timeout, at most every second:
	 * sooner makes a slow BMC run the same command twice. */
	d->retransmit_ms = d->timeout_ms / 5 > 1000 ? 1000 : d->timeout_ms / 5;
	tmp = opts->tmp_dir;
	if (tmp == NULL || tmp[0] == '\0')
		tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(d->tmp_dir, sizeof d->tmp_dir, "%s", tmp) >=
	    sizeof d->tmp_dir)
		return hv_errf(err, errlen, HV_INVAL,
		               "BMC %s: temporary directory name too long", b->address);

	b->power_status = ipmi_power_status;
	b->power = ipmi_power;
	b->sensors = ipmi_sensors;
	return HV_OK;
}
