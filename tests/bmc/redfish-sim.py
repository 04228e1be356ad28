#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""redfish-sim.py: a small Redfish BMC over TLS for hvpeer's tests.

No Redfish server or emulator is packaged for Debian, so the tests use this
one (Python 3 standard library only). It plays the same host as the IPMI
simulator: power goes through a chassis command (by default
"tests/bmc/bmcsim.sh chassis DIR", see that script), and the sensor values
are the files that host writes.

  redfish-sim.py --dir DIR --cert FILE --key FILE --user USER
                 --password-file FILE [--port N] [--chassis CMD]
                 [--pid-file FILE] [--cycle-delay S]

Listens on 127.0.0.1:N (a free port when N is 0 or not given), prints the
port on stdout once listening, and runs until SIGTERM or SIGINT.

Resources (all but the service root need HTTP Basic authentication; a
wrong user or password gets 401 with a Redfish error body):
  /redfish/v1                      ServiceRoot
  /redfish/v1/Systems              collection: one member, Systems/sys-a
  /redfish/v1/Systems/sys-a        PowerState from "CMD get power"
  POST .../Actions/ComputerSystem.Reset {"ResetType": T}: On (set power 1),
      ForceOff (set power 0), PowerCycle (set power 0, then set power 1
      --cycle-delay seconds later, after the answer), ForceRestart (set
      reset 1), GracefulShutdown (set shutdown 1); 204. A failing command
      answers 500 with its output.
  /redfish/v1/Chassis              collection: one member, Chassis/chassis-a
  /redfish/v1/Chassis/chassis-a    links Thermal and Power
  .../Thermal   "CPU Temp": DIR/cpu_temp.val (degrees C), thresholds
                UpperThresholdNonCritical 80, Critical 90, Fatal 100
  .../Power     "12V": DIR/p12v.val (tenths of a volt), thresholds
                Lower Critical 10.8, NonCritical 11.4, Upper NonCritical
                12.6, Critical 13.2
  A value file that is missing or not a number gives a null reading.

The member ids are not "1" on purpose: clients must follow the collections.

Faults, read on every request from files in DIR (each line a request path,
or "*" for every path):
  fault.404      answer 404 with a Redfish error body
  fault.500      answer 500 with a Redfish error body
  fault.badjson  answer 200 with a JSON document cut short
  fault.delay    lines "SECONDS [PATH]": wait that long before answering
Every request is logged to DIR/requests.log ("METHOD PATH STATUS").
"""

import argparse
import base64
import hmac
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SYSTEM = "/redfish/v1/Systems/sys-a"
CHASSIS = "/redfish/v1/Chassis/chassis-a"
RESET = SYSTEM + "/Actions/ComputerSystem.Reset"
RESET_TYPES = ["On", "ForceOff", "PowerCycle", "ForceRestart", "GracefulShutdown"]


def error_body(code, message, extended):
    return {
        "error": {
            "code": code,
            "message": message,
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": code,
                    "Message": extended,
                    "Severity": "Critical",
                }
            ],
        }
    }


class Sim:
    def __init__(self, args):
        self.dir = args.dir
        self.chassis = args.chassis or "%s chassis %s" % (
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "bmcsim.sh"),
            args.dir,
        )
        self.user = args.user
        with open(args.password_file) as f:
            self.password = f.read().strip()
        self.cycle_delay = args.cycle_delay
        self.lock = threading.Lock()  # the chassis command, one at a time
        self.log_lock = threading.Lock()

    # The host, through the chassis command (as ipmi_sim runs it).
    def run_chassis(self, *words):
        env = dict(os.environ, BMCSIM_DIR=self.dir)
        with self.lock:
            p = subprocess.run(
                ["/bin/sh", "-c", self.chassis + ' "$@"', "chassis"] + list(words),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=30,
            )
        return p.returncode, p.stdout.decode(errors="replace").strip()

    def power_on(self):
        rc, out = self.run_chassis("get", "power")
        if rc != 0:
            return None
        return out == "power:1"

    def reading(self, name, scale):
        try:
            with open(os.path.join(self.dir, name)) as f:
                return round(int(f.read().strip()) * scale, 3)
        except (OSError, ValueError):
            return None

    def faults(self, kind, path):
        try:
            with open(os.path.join(self.dir, "fault." + kind)) as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            return False
        return any(l == "*" or l == path for l in lines)

    def delay(self, path):
        try:
            with open(os.path.join(self.dir, "fault.delay")) as f:
                for line in f:
                    w = line.split()
                    if w and (len(w) == 1 or w[1] in ("*", path)):
                        return float(w[0])
        except (OSError, ValueError):
            pass
        return 0.0

    def log(self, line):
        with self.log_lock:
            with open(os.path.join(self.dir, "requests.log"), "a") as f:
                f.write(line + "\n")


def health(value, th):
    """The Redfish Health of a reading against its thresholds."""
    if value is None:
        return None
    up, lo = th.get("Upper", {}), th.get("Lower", {})
    if any(k in up and value >= up[k] for k in ("Critical", "Fatal")) or any(
        k in lo and value <= lo[k] for k in ("Critical", "Fatal")
    ):
        return "Critical"
    if ("NonCritical" in up and value >= up["NonCritical"]) or (
        "NonCritical" in lo and value <= lo["NonCritical"]
    ):
        return "Warning"
    return "OK"


def sensor(odata, member, name, key, value, th):
    o = {"@odata.id": odata, "MemberId": member, "Name": name, key: value}
    for side in ("Upper", "Lower"):
        for level in ("NonCritical", "Critical", "Fatal"):
            o["%sThreshold%s" % (side, level)] = th.get(side, {}).get(level)
    h = health(value, th)
    o["Status"] = {"State": "Enabled"} if h is None else {"State": "Enabled", "Health": h}
    return o


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client's requests share a connection
    server_version = "hvpeer-redfish-sim/1"

    def log_message(self, fmt, *args):
        pass

    @property
    def sim(self):
        return self.server.sim

    def send_json(self, status, obj, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("OData-Version", "4.0")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="redfish-sim"')
        self.end_headers()
        self.wfile.write(body)
        self.sim.log("%s %s %d" % (self.command, self.path, status))

    def send_empty(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.sim.log("%s %s %d" % (self.command, self.path, status))

    def authorized(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(h[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.sim.user.encode()) and hmac.compare_digest(
            pw.encode(), self.sim.password.encode()
        )

    def common(self):
        """Path, delays, faults and authentication; True when answered."""
        path = self.path.split("?", 1)[0]
        if path != "/redfish/v1" and path.endswith("/"):
            path = path[:-1]
        self.rpath = path
        d = self.sim.delay(path)
        if d > 0:
            time.sleep(d)
        if path not in ("/redfish", "/redfish/v1") and not self.authorized():
            self.send_json(
                401,
                error_body(
                    "Base.1.8.GeneralError",
                    "A general error has occurred. See ExtendedInfo for more information.",
                    "The authentication credentials included with this request are missing or invalid.",
                ),
            )
            return True
        if self.sim.faults("404", path):
            self.not_found()
            return True
        if self.sim.faults("500", path):
            self.send_json(
                500,
                error_body(
                    "Base.1.8.InternalError",
                    "The request failed due to an internal service error.",
                    "simulated BMC failure (fault.500)",
                ),
            )
            return True
        if self.sim.faults("badjson", path):
            self.send_json(200, None, raw=b'{"@odata.id": "%s", "PowerState": "On", "Name": ' % path.encode())
            return True
        return False

    def not_found(self):
        self.send_json(
            404,
            error_body(
                "Base.1.8.ResourceMissingAtURI",
                "The resource at the URI %s was not found." % self.rpath,
                "The resource at the URI %s was not found." % self.rpath,
            ),
        )

    def do_GET(self):
        if self.common():
            return
        path, sim = self.rpath, self.sim
        if path in ("/redfish", "/redfish/v1"):
            return self.send_json(
                200,
                {
                    "@odata.id": "/redfish/v1",
                    "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
                    "Id": "RootService",
                    "Name": "hvpeer Redfish simulator",
                    "RedfishVersion": "1.11.0",
                    "Systems": {"@odata.id": "/redfish/v1/Systems"},
                    "Chassis": {"@odata.id": "/redfish/v1/Chassis"},
                },
            )
        if path == "/redfish/v1/Systems":
            return self.send_json(200, collection(path, "ComputerSystem", [SYSTEM]))
        if path == "/redfish/v1/Chassis":
            return self.send_json(200, collection(path, "Chassis", [CHASSIS]))
        if path == SYSTEM:
            on = sim.power_on()
            if on is None:
                return self.send_json(
                    500,
                    error_body("Base.1.8.InternalError", "The power controller failed.", "chassis get power failed"),
                )
            return self.send_json(
                200,
                {
                    "@odata.id": SYSTEM,
                    "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
                    "Id": "sys-a",
                    "Name": "simulated host",
                    "PowerState": "On" if on else "Off",
                    "Status": {"State": "Enabled", "Health": "OK"},
                    "Links": {"Chassis": [{"@odata.id": CHASSIS}]},
                    "Actions": {
                        "#ComputerSystem.Reset": {
                            "target": RESET,
                            "ResetType@Redfish.AllowableValues": RESET_TYPES,
                        }
                    },
                },
            )
        if path == CHASSIS:
            return self.send_json(
                200,
                {
                    "@odata.id": CHASSIS,
                    "@odata.type": "#Chassis.v1_10_0.Chassis",
                    "Id": "chassis-a",
                    "Name": "simulated chassis",
                    "ChassisType": "RackMount",
                    "Thermal": {"@odata.id": CHASSIS + "/Thermal"},
                    "Power": {"@odata.id": CHASSIS + "/Power"},
                    "Links": {"ComputerSystems": [{"@odata.id": SYSTEM}]},
                },
            )
        if path == CHASSIS + "/Thermal":
            t = sim.reading("cpu_temp.val", 1)
            return self.send_json(
                200,
                {
                    "@odata.id": path,
                    "@odata.type": "#Thermal.v1_6_0.Thermal",
                    "Id": "Thermal",
                    "Name": "Thermal",
                    "Temperatures": [
                        sensor(
                            path + "#/Temperatures/0",
                            "0",
                            "CPU Temp",
                            "ReadingCelsius",
                            t,
                            {"Upper": {"NonCritical": 80, "Critical": 90, "Fatal": 100}},
                        ),
                        # Not fitted: clients leave it out.
                        {
                            "@odata.id": path + "#/Temperatures/1",
                            "MemberId": "1",
                            "Name": "CPU2 Temp",
                            "ReadingCelsius": None,
                            "Status": {"State": "Absent"},
                        },
                    ],
                },
            )
        if path == CHASSIS + "/Power":
            v = sim.reading("p12v.val", 0.1)
            return self.send_json(
                200,
                {
                    "@odata.id": path,
                    "@odata.type": "#Power.v1_6_0.Power",
                    "Id": "Power",
                    "Name": "Power",
                    "Voltages": [
                        sensor(
                            path + "#/Voltages/0",
                            "0",
                            "12V",
                            "ReadingVolts",
                            v,
                            {
                                "Upper": {"NonCritical": 12.6, "Critical": 13.2},
                                "Lower": {"NonCritical": 11.4, "Critical": 10.8},
                            },
                        )
                    ],
                },
            )
        self.not_found()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if 0 < n <= 65536 else b""
        if self.common():
            return
        if self.rpath != RESET:
            return self.send_json(
                405,
                error_body("Base.1.8.ActionNotSupported", "The action is not supported.", "POST %s" % self.rpath),
            )
        try:
            rt = json.loads(raw)["ResetType"]
        except (ValueError, KeyError, TypeError):
            rt = None
        if rt not in RESET_TYPES:
            return self.send_json(
                400,
                error_body(
                    "Base.1.8.ActionParameterNotSupported",
                    "The parameter ResetType for the action ComputerSystem.Reset is not supported.",
                    "ResetType %r is not one of %s" % (rt, ", ".join(RESET_TYPES)),
                ),
            )
        sim = self.sim
        words = {
            "On": ["set", "power", "1"],
            "ForceOff": ["set", "power", "0"],
            "PowerCycle": ["set", "power", "0"],
            "ForceRestart": ["set", "reset", "1"],
            "GracefulShutdown": ["set", "shutdown", "1"],
        }[rt]
        rc, out = sim.run_chassis(*words)
        if rc != 0:
            return self.send_json(
                500,
                error_body(
                    "Base.1.8.InternalError",
                    "The request failed due to an internal service error.",
                    "power controller: %s" % (out or "exit status %d" % rc),
                ),
            )
        if rt == "PowerCycle":
            # Power comes back later, as on a real BMC: the client sees Off,
            # then On.
            def back_on():
                time.sleep(sim.cycle_delay)
                sim.run_chassis("set", "power", "1")

            threading.Thread(target=back_on, daemon=True).start()
        self.send_empty(204)


def collection(path, kind, members):
    return {
        "@odata.id": path,
        "@odata.type": "#%sCollection.%sCollection" % (kind, kind),
        "Name": "%s Collection" % kind,
        "Members@odata.count": len(members),
        "Members": [{"@odata.id": m} for m in members],
    }


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        # The TLS handshake in the connection's thread, not in the accept
        # loop: a client that stalls or rejects our certificate holds up
        # nobody else.
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # A client gone midway (a timeout test) is not news.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="a small Redfish BMC over TLS for tests")
    ap.add_argument("--dir", required=True, help="the BMC's directory (sensor values, faults, log)")
    ap.add_argument("--cert", required=True, help="the server certificate (PEM)")
    ap.add_argument("--key", required=True, help="its private key (PEM)")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True, help="a file holding the password")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--chassis", help="the chassis command (default: bmcsim.sh chassis DIR)")
    ap.add_argument("--pid-file")
    ap.add_argument("--cycle-delay", type=float, default=1.0, help="seconds off in a PowerCycle")
    args = ap.parse_args()
    args.dir = os.path.abspath(args.dir)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)

    srv = Server(("127.0.0.1", args.port), Handler)
    srv.ctx = ctx
    srv.sim = Sim(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.pid_file + ".tmp", args.pid_file)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
