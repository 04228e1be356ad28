/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The host's BMC, out of band: power status and control, and the BMC's
 * sensors: the way hvpeerd can reboot a host without a reboot command (or
 * one that no longer answers) and check its health around a patch.
 *
 * One interface (a table of operations, struct hv_bmc), one driver per kind:
 *
 *  - "ipmi": IPMI 2.0 over LAN (RMCP+, "lanplus") with libfreeipmi
 *    (bmc/ipmi.c). Cipher suite 17 (HMAC-SHA256, AES) unless configured;
 *    3 for BMCs that lack 17.
 *  - "redfish": Redfish (DMTF DSP0266: HTTPS + JSON) with libcurl and
 *    json-c (bmc/redfish.c). The system and the chassis are the first
 *    members of /redfish/v1/Systems and /redfish/v1/Chassis; power is the
 *    system's PowerState and its ComputerSystem.Reset action, sensors the
 *    chassis' Thermal (Temperatures) and Power (Voltages). HTTP Basic
 *    authentication; TLS always verified, against opts->ca_file, opts->pin
 *    or the system's CAs.
 *  - "none": no BMC. power_status and power fail with HV_INVAL (the host
 *    reboots through its reboot command); sensors succeeds with none.
 *
 * Every call blocks: it talks to the BMC over UDP (ipmi) or HTTPS
 * (redfish) and waits for the answers. Call them off the event loop (a worker thread),
 * one at a time per struct hv_bmc: a handle is not safe to share between threads, while
 * two handles are independent. Each exchange with the BMC is bounded by opts->timeout_ms
 * (retransmissions included); a call makes a few exchanges (sensors one per sensor, plus
 * the SDR when it changed), so its whole time is a small multiple of it.
 *
 * Errors are HV_* codes (lib/err.h) with a message in the caller's err
 * buffer that names the BMC, the cause in the BMC's own words (libfreeipmi's
 * text, the completion code's meaning, a Redfish error body's messages) and
 * what to do:
 *   HV_UNREACHABLE  no answer at all within the timeout, or the connection
 *                   refused (address, port, network, a BMC that is down)
 *   HV_TIMEOUT      a session (or an HTTPS request) that stopped answering
 *                   midway
 *   HV_INVAL        refused: user or password (HTTP 401), privilege (403),
 *                   cipher suite, a certificate or key that does not verify
 *                   against the CA file, the pin or the system's CAs, a bad
 *                   option, or an operation this kind cannot do (HTTP 400,
 *                   405, a ResetType the BMC does not take)
 *   HV_PROTO        the BMC does not speak what the driver needs (no IPMI
 *                   2.0, a cipher suite whose setup it garbles, no such
 *                   Redfish resource: HTTP 404 with its path) or answered
 *                   nonsense (not JSON, no PowerState)
 *   HV_IO           any other failure (HTTP 5xx...), with the BMC's message
 *   HV_NOMEM        out of memory
 * No message ever holds a password.
 */
#ifndef HV_BMC_H
#define HV_BMC_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds of what a credentials file and an address may hold. IPMI itself
 * takes at most 16 bytes of user and 20 of password; Redfish more. An
 * address's default port is UDP 623 for ipmi, TCP 443 (HTTPS) for
 * redfish. */
#define HV_BMC_USER_MAX 64      /* bytes, with the '\0' */
#define HV_BMC_PASSWORD_MAX 128 /* bytes, with the '\0' */
#define HV_BMC_ADDRESS_MAX 256  /* "host[:port]", with the '\0' */

/* The default per-exchange timeout. */
#define HV_BMC_TIMEOUT_MS 5000

/*
 * Credentials of one BMC, from a credentials file (hv_bmc_creds_load).
 * They stay in memory while a handle is open: clear them with
 * hv_bmc_creds_clear once done.
 */
struct hv_bmc_creds {
	char user[HV_BMC_USER_MAX];         /* may be "" (IPMI's null user) */
	char password[HV_BMC_PASSWORD_MAX]; /* never "" */
	unsigned cipher_suite;              /* 0 = not given */
	char privilege[16];                 /* "admin", "operator" or "" */
	char section[HV_BMC_ADDRESS_MAX];   /* the section they came from */
};

/*
 * Load the credentials for address ("host" or "host:port") from the INI
 * file at path:
 *
 *   # one section per BMC, named by its address, and an optional default
 *   [10.0.0.21]
 *   user = hvpeer
 *   password = s3cret
 *   cipher-suite = 17        # optional, IPMI cipher suite (1-3, 6-8,
 *                            # 11-12, 15-17; 0 is refused)
 *   privilege = operator     # optional: admin (default) or operator
 *
 *   [default]
 *   user = ...
 *   password = ...
 *
 * The section used is the first that exists of [host:port], [host] and
 * [default] (an IPv6 BMC goes by [host] alone, without brackets or port:
 * [fd00::21], since [fd00::21:623] would name another address); a
 * section is used whole, never mixed with [default]. Every section is
 * checked (unknown keys, a key given twice, bad values), not only the one
 * used, so a typo anywhere shows at once. Values are taken as inih gives
 * them: spaces around a value are dropped and " ;" starts a comment, so a
 * password cannot begin or end with a space nor hold " ;".
 *
 * The file must be a regular file, owned by root (or by the calling user
 * when it is not root), with no permission for group or others (chmod
 * 600): it holds passwords and hvpeerd refuses it otherwise. Credentials
 * never come from a command line, where every user sees them.
 *
 * Returns HV_OK and fills *out, or HV_INVAL (refused file, no section for
 * the address, a bad key or value), HV_IO (cannot read the file) with the
 * reason in err (never the password). *out is cleared on failure.
 */
int hv_bmc_creds_load(const char *path, const char *address, struct hv_bmc_creds *out,
                      char *err, size_t errlen);

/* Overwrite the password (and the rest) in memory. */
void hv_bmc_creds_clear(struct hv_bmc_creds *c);

/*
 * Split "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address
 * into host (no brackets) and port (0 when not given). HV_INVAL when the
 * address is empty, too long or its port not in 1-65535.
 */
int hv_bmc_address_split(const char *address, char *host, size_t hostlen, unsigned *port,
                         char *err, size_t errlen);

/* Options of a handle; a zeroed struct (or NULL) means the defaults. */
struct hv_bmc_opts {
	/* IPMI cipher suite; 0 = the credentials' cipher-suite, else 17. */
	unsigned cipher_suite;
	/* Each exchange with the BMC, retransmissions included; 0 =
	 * HV_BMC_TIMEOUT_MS. */
	unsigned timeout_ms;
	/* Comma-separated driver workarounds for broken BMCs, NULL or "" for
	 * none. ipmi: FreeIPMI's names, "authcap", "intel20", "supermicro20",
	 * "sun20", "opensesspriv" (ipmi_sim needs it), "integritycheckvalue",
	 * "nochecksumcheck". */
	const char *workarounds;
	/* Where the ipmi driver fetches the SDR into (a private temporary
	 * directory, removed at once: the records are kept in memory). NULL =
	 * $TMPDIR, else /tmp. */
	const char *tmp_dir;
	/* redfish: a PEM file of the CA certificate(s) the BMC's certificate
	 * must chain to (checked at open: readable), instead of the system's
	 * CAs; its name must match the address too. NULL or "" = the system's
	 * CAs (unless pin is given). Other kinds ignore it. */
	const char *ca_file;
	/* redfish: the BMC's public key, "sha256//BASE64" (the base64 of the
	 * SHA-256 of its DER SubjectPublicKeyInfo, as curl's
	 * CURLOPT_PINNEDPUBLICKEY takes it; several separated by ';' during a
	 * key change). Alone, it replaces the CA check: a BMC with a
	 * self-signed certificate is trusted by its key, whatever the
	 * certificate's chain and name say. With ca_file, both must hold.
	 * NULL or "" = no pin. Other kinds ignore it. */
	const char *pin;
};

/* Power actions (hv_bmc->power). */
enum hv_bmc_action {
	HV_BMC_ON,    /* power up */
	HV_BMC_OFF,   /* hard power down, at once */
	HV_BMC_CYCLE, /* power down, then up again (a few seconds later) */
	HV_BMC_RESET, /* hard reset, power stays on */
	HV_BMC_SOFT,  /* ask the OS to shut down (ACPI); it may ignore it */
	HV__BMC_NACTION
};

/* "on", "off", "cycle", "reset", "soft" <-> enum hv_bmc_action; parse
 * returns -1 for anything else, name "?" for a bad action. */
int hv_bmc_action_parse(const char *name);
const char *hv_bmc_action_name(int action);

struct hv_bmc;

/* For drivers: "power ACTION" into what, or HV_INVAL (message in err) for
 * an action that is not one of enum hv_bmc_action. */
int hv_bmc_action_what(const struct hv_bmc *b, int action, char *what, size_t len,
                       char *err, size_t errlen);

/* A sensor's health against its thresholds. */
enum hv_bmc_sensor_state {
	HV_BMC_SENSOR_OK,
	HV_BMC_SENSOR_WARNING,    /* past a non-critical threshold */
	HV_BMC_SENSOR_CRITICAL,   /* past a critical or non-recoverable one */
	HV_BMC_SENSOR_UNREADABLE, /* no reading (sensor absent, host off...) */
};

/* "ok", "warning", "critical", "unreadable". */
const char *hv_bmc_sensor_state_name(int state);

/* Which thresholds a sensor has (struct hv_bmc_sensor.thresholds). */
#define HV_BMC_TH_LOWER_NONCRIT 0x01
#define HV_BMC_TH_LOWER_CRIT 0x02
#define HV_BMC_TH_LOWER_NONREC 0x04
#define HV_BMC_TH_UPPER_NONCRIT 0x08
#define HV_BMC_TH_UPPER_CRIT 0x10
#define HV_BMC_TH_UPPER_NONREC 0x20

/* One analog sensor: its reading in its unit and its thresholds. */
struct hv_bmc_sensor {
	char name[64];       /* the BMC's name ("CPU Temp") */
	char type[32];       /* "Temperature", "Voltage", "Fan", ... */
	char unit[16];       /* "C", "V", "RPM", ... ("" when unknown) */
	double value;        /* meaningless when state is UNREADABLE */
	unsigned thresholds; /* HV_BMC_TH_* of the thresholds below that exist */
	double lower_noncrit, lower_crit, lower_nonrec;
	double upper_noncrit, upper_crit, upper_nonrec;
	int state; /* enum hv_bmc_sensor_state */
};

/*
 * The state of a reading against the thresholds that exist: CRITICAL at or
 * past a critical or non-recoverable one, WARNING at or past a
 * non-critical one, else OK. (A pure function, for drivers and tests.)
 */
int hv_bmc_sensor_eval(const struct hv_bmc_sensor *s);

struct hv_bmc {
	const char *kind;    /* "ipmi", "redfish" or "none" */
	const char *address; /* as given to hv_bmc_open, for messages */

	/* Is the host powered on? *on 1 or 0. */
	int (*power_status)(struct hv_bmc *b, int *on, char *err, size_t errlen);

	/* Ask for a power action (enum hv_bmc_action) and return once the BMC
	 * accepted it: the host's power changes afterwards (a cycle takes
	 * seconds; soft may never happen). Poll power_status to see it. A BMC
	 * may refuse cycle while the power is off (IPMI leaves that to it). */
	int (*power)(struct hv_bmc *b, int action, char *err, size_t errlen);

	/* The BMC's analog (threshold) sensors, up to max in out[], in the
	 * BMC's order; *n their number (more may exist when *n == max). A
	 * sensor without a reading comes back as UNREADABLE, not as an error.
	 * ipmi: the sensors of the BMC itself (full SDRs, threshold type);
	 * those of satellite controllers would need bridging and are left
	 * out. redfish: the chassis' Temperatures (Thermal), then its
	 * Voltages (Power), with Upper/LowerThreshold NonCritical, Critical
	 * and Fatal (nonrec); sensors whose State is Absent are left out, and
	 * the state is the worse of the thresholds' and the BMC's Health. */
	int (*sensors)(struct hv_bmc *b, struct hv_bmc_sensor *out, unsigned max,
	               unsigned *n, char *err, size_t errlen);

	/* Private to bmc.c and the driver. */
	char addr[HV_BMC_ADDRESS_MAX];
	void (*close)(struct hv_bmc *b);
	void *drv; /* the driver's state */
};

/*
 * Once per process, from the main thread before others are started: the
 * ipmi driver's libfreeipmi initialises libgcrypt, and the redfish driver
 * libcurl (curl_global_init, with OpenSSL), neither of which is safe to
 * initialise from two threads at once. (libfreeipmi repeats it on every
 * session, harmlessly once done.) HV_IO when either refuses.
 */
int hv_bmc_init(char *err, size_t errlen);

/*
 * Open a handle on the BMC at address ("host[:port]"; "" for kind none)
 * with creds (not used by none; may then be NULL) and opts (NULL = the
 * defaults). Opening checks the settings but does not talk to the BMC: an
 * unreachable BMC or a wrong password shows on the first call. Each call
 * opens its own session (redfish: its own HTTPS connection) and closes it
 * before it returns, so an idle handle holds no session on the BMC and
 * never times one out. redfish keeps the system's and the chassis' paths
 * it found on the handle.
 *
 * creds and opts are copied: the caller may clear them at once. Close with
 * hv_bmc_close, also after a failed open.
 */
int hv_bmc_open(struct hv_bmc *b, const char *kind, const char *address,
                const struct hv_bmc_creds *creds, const struct hv_bmc_opts *opts,
                char *err, size_t errlen);

/* Free what open allocated and wipe the copied credentials. */
void hv_bmc_close(struct hv_bmc *b);

/* The drivers' entry points, for hv_bmc_init and hv_bmc_open. */
int hv_bmc_ipmi_init(char *err, size_t errlen);
int hv_bmc_ipmi_open(struct hv_bmc *b, const struct hv_bmc_creds *creds,
                     const struct hv_bmc_opts *opts, char *err, size_t errlen);
int hv_bmc_redfish_init(char *err, size_t errlen);
int hv_bmc_redfish_open(struct hv_bmc *b, const struct hv_bmc_creds *creds,
                        const struct hv_bmc_opts *opts, char *err, size_t errlen);

#endif
