#!/usr/bin/python3
"""bank.py - the pg_dtx fault-injection bank test (run it through run.sh).

A coordinator (pg_dtx preloaded) and three participants p1, p2, p3, each with
accounts(id, balance) and ledger(transfer_id primary key, account, amount).
Concurrent clients on the coordinator move money between accounts of
different participants in distributed transactions, while faults are
injected from a schedule derived from a seed.  Afterwards the resolver gets
a bounded time to finish what is in doubt, and the books are checked:

  - every acknowledged transfer (COMMIT returned success) is applied on all
    of its participants;
  - no transfer is applied on some of its participants only (half applied),
    the coordinator's local journal row included;
  - no transfer whose transaction failed before or at COMMIT with an ERROR
    is applied anywhere, nor any leg rolled back to a savepoint;
  - the total balance is unchanged and every balance matches its ledger;
  - no prepared transaction is left on any participant, dtx.decisions is
    empty;
  - no server log shows a PANIC or a process killed by a signal the test
    did not send.

A share of the clients (--async-fraction, default every third one) run
their sessions with dtx.synchronous_commit_prepared = off: their COMMIT
returns before the participants answered COMMIT PREPARED.  With faults, a
share of the time (--all-async-share, default a third, in periods of 10 s)
every client runs so: a synchronous client's commit flushes the WAL up to
its own commit record, so that as long as one runs, a decision of an
asynchronous commit that pg_dtx failed to make durable would be flushed by
chance before any crash.  Acknowledged transfers committed either way are
held to the same verdict.

See run.sh for the modes and options.
"""

import argparse
import collections
import fractions
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import psycopg2
except ImportError:
    sys.stderr.write("bank.py needs psycopg2 (Debian: apt-get install python3-psycopg2)\n")
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))

N_ACCOUNTS = 300            # ordinary accounts per participant: 1..N_ACCOUNTS
SP_ACCOUNTS = range(1001, 1011)  # accounts only rolled-back savepoint legs touch
INIT_BALANCE = 1_000_000
PARTICIPANTS = ["p1", "p2", "p3"]
ALL_ASYNC_PERIOD = 10       # seconds: periods with every client asynchronous or not

# One leg of a transfer on a participant: the balance and the ledger row in
# one statement (one round trip).  $1 transfer id, $2 account, $3 amount.
LEG_SQL = ("WITH u AS (UPDATE accounts SET balance = balance + $3 WHERE id = $2 RETURNING id) "
           "INSERT INTO ledger (transfer_id, account, amount) SELECT $1, id, $3 FROM u")

MODES = {
    # faults: seconds of faults; clients; floor: fewest acknowledged transfers
    "short": dict(duration=90, clients=8, warmup=5, cooldown=10, bg_wait=30,
                  resolve_wait=90, commit_timeout_ms=2000, floor=3000),
    "long": dict(duration=600, clients=10, warmup=10, cooldown=20, bg_wait=60,
                 resolve_wait=180, commit_timeout_ms=3000, floor=None),
    "stress": dict(duration=300, clients=24, warmup=0, cooldown=0, bg_wait=30,
                   resolve_wait=60, commit_timeout_ms=3000, floor=None),
}

# ---------------------------------------------------------------------------
# output


T0 = time.monotonic()
OUT_LOCK = threading.Lock()


def say(msg):
    with OUT_LOCK:
        sys.stdout.write("[%6.1fs] %s\n" % (time.monotonic() - T0, msg))
        sys.stdout.flush()


def banner(msg):
    with OUT_LOCK:
        sys.stdout.write("\n==== %s ====\n" % msg)
        sys.stdout.flush()


class HarnessError(Exception):
    """The test could not do what it had to (a server that does not come
    back, ...): a failure, but not a verdict on the data."""


# ---------------------------------------------------------------------------
# processes


def is_root():
    return os.geteuid() == 0


def proc_children(ppid):
    """Process ids whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            if int(s[s.rindex(")") + 2:].split()[1]) == ppid:
                out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2] != "Z"
    except OSError:
        return False


def proc_status(pid):
    """Fields of /proc/PID/status (kB values as ints)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.split()
                if v and v[0].isdigit():
                    out[k] = int(v[0])
        out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        pass
    return out


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


class Runner:
    """Runs commands as the servers' OS user (runuser when we are root),
    optionally inside a network namespace."""

    def __init__(self, pg_user, bindir):
        self.pg_user = pg_user
        self.bindir = bindir
        self.env = dict(os.environ)
        self.env["PATH"] = bindir + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env.pop("PGDATA", None)
        self.env["LC_ALL"] = "C"

    def pg_cmd(self, argv, netns=None):
        cmd = list(argv)
        if is_root():
            cmd = ["runuser", "-u", self.pg_user, "--"] + cmd
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        return cmd

    def run(self, argv, netns=None, as_pg=True, timeout=120, check=True):
        cmd = self.pg_cmd(argv, netns) if as_pg else list(argv)
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=self.env, timeout=timeout,
                               cwd="/")
        except subprocess.TimeoutExpired:
            raise HarnessError("timed out after %ds: %s" % (timeout, " ".join(cmd)))
        out = p.stdout.decode(errors="replace")
        if check and p.returncode != 0:
            raise HarnessError("command failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), out))
        return p.returncode, out


# ---------------------------------------------------------------------------
# servers


def free_port(start, avoid):
    port = start
    while port < start + 2000:
        if port not in avoid:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                pass
            finally:
                s.close()
        port += 1
    raise HarnessError("no free port from %d" % start)


class Server:
    def __init__(self, h, name, port, listen, netns=None):
        self.h = h
        self.name = name
        self.port = port
        self.listen = listen            # address it listens on
        self.netns = netns              # network namespace name, or None
        self.datadir = os.path.join(h.workdir, name)
        self.logfile = os.path.join(h.workdir, name + ".log")
        self.paused = []                # pids stopped by pause()
        self.lock = threading.Lock()    # one fault at a time on a server

    def initdb_cmd(self):
        return self.h.runner.pg_cmd([os.path.join(self.h.bindir, "initdb"), "-D", self.datadir,
                                     "-U", "postgres", "--auth=trust", "--no-sync",
                                     "--no-instructions", "--encoding=UTF8", "--locale=C"])

    def configure(self, settings, hba_extra=()):
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# pg_dtx fault test\n")
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("# pg_dtx fault test only: trust on the private socket and test addresses\n")
            f.write("local all all trust\n")
            f.write("host all all 127.0.0.1/32 trust\n")
            for line in hba_extra:
                f.write(line + "\n")

    def pg_ctl(self, *args, timeout=120, check=True):
        return self.h.runner.run([os.path.join(self.h.bindir, "pg_ctl"), "-D", self.datadir] + list(args),
                                 netns=self.netns, timeout=timeout, check=check)

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                pid = int(f.readline().strip())
        except (OSError, ValueError):
            return None
        return pid if proc_alive(pid) else None

    def start(self, limit=90):
        """Starts the server; retries while the old one's processes are
        still on their way out (a killed postmaster's children)."""
        deadline = time.monotonic() + limit
        last = ""
        while True:
            if self.h.abort.is_set():
                raise HarnessError("%s not started: the test is being interrupted" % self.name)
            if self.postmaster_pid() is not None and self.ping():
                return
            rc, out = self.pg_ctl("-l", self.logfile, "-w", "-t", "60", "start", check=False)
            if rc == 0:
                return
            last = out.strip()
            if time.monotonic() > deadline:
                raise HarnessError("%s did not start within %ds: %s" % (self.name, limit, last))
            time.sleep(0.5)

    def stop_immediate(self):
        self.resume()
        if self.postmaster_pid() is not None:
            self.pg_ctl("-m", "immediate", "-w", "-t", "60", "stop", check=False)

    def stop_fast(self):
        self.resume()
        if self.postmaster_pid() is not None:
            rc, _ = self.pg_ctl("-m", "fast", "-w", "-t", "20", "stop", check=False)
            if rc != 0:
                self.pg_ctl("-m", "immediate", "-w", "-t", "20", "stop", check=False)
        pm = self.postmaster_pid()
        if pm is not None:
            for pid in [pm] + proc_children(pm):
                signal_pid(pid, signal.SIGKILL)

    def kill9(self, children_too):
        """SIGKILL the postmaster (and, with children_too, all of its
        children at once: a machine crash without the fsync loss)."""
        pm = self.postmaster_pid()
        if pm is None:
            return []
        kids = proc_children(pm)
        self.resume()
        signal_pid(pm, signal.SIGKILL)
        if children_too:
            for pid in kids:
                signal_pid(pid, signal.SIGKILL)
        return kids

    def pause(self):
        pm = self.postmaster_pid()
        if pm is None:
            return 0
        signal_pid(pm, signal.SIGSTOP)
        self.paused = [pm]
        for pid in proc_children(pm):
            signal_pid(pid, signal.SIGSTOP)
            self.paused.append(pid)
        return len(self.paused)

    def resume(self):
        pids, self.paused = self.paused, []
        for pid in pids:
            signal_pid(pid, signal.SIGCONT)

    def connect(self, timeout=5, app="bank harness", options=None):
        return psycopg2.connect(host=self.h.sockdir, port=self.port, user="postgres",
                                dbname="postgres", connect_timeout=timeout,
                                application_name=app, options=options)

    def sql(self, query, args=None, timeout_ms=15000):
        conn = self.connect(options="-c statement_timeout=%d" % timeout_ms)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def ping(self):
        try:
            self.sql("SELECT 1", timeout_ms=5000)
            return True
        except psycopg2.Error:
            return False

    def wait_up(self, limit=90):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.2)
        raise HarnessError("%s does not accept connections after %ds" % (self.name, limit))


# ---------------------------------------------------------------------------
# network namespace and nftables (root only)


class NetNS:
    """A network namespace joined to the host by a veth pair with link-local
    addresses (169.254.x.1 host side, .2 inside); nftables rules inside it
    drop packets on its veth."""

    TABLE = "dtx_fault"

    def __init__(self, h):
        self.h = h
        pid = os.getpid()
        self.name = "pgdtx%d" % pid
        self.host_if = "dtxh%d" % pid
        self.ns_if = "dtxn%d" % pid
        octet = 100 + pid % 100
        self.host_ip = "169.254.%d.1" % octet
        self.ns_ip = "169.254.%d.2" % octet
        self.created = False
        self.ruled = False

    def ip(self, *args, check=True):
        return self.h.runner.run(["ip"] + list(args), as_pg=False, check=check, timeout=30)

    def nsrun(self, *args, check=True, input_text=None):
        cmd = ["ip", "netns", "exec", self.name] + list(args)
        p = subprocess.run(cmd, input=(input_text or "").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        if check and p.returncode != 0:
            raise HarnessError("failed: %s\n%s" % (" ".join(cmd), p.stdout.decode(errors="replace")))
        return p.returncode

    @staticmethod
    def remove_stale(runner):
        """Namespaces and veths left by an earlier run that was killed
        (their names carry the pid of a process that no longer exists)."""
        rc, out = runner.run(["ip", "netns", "list"], as_pg=False, check=False)
        for line in out.splitlines():
            m = re.match(r"^pgdtx(\d+)\b", line)
            if m and not os.path.exists("/proc/" + m.group(1)):
                runner.run(["ip", "netns", "del", "pgdtx" + m.group(1)], as_pg=False, check=False)
        rc, out = runner.run(["ip", "-o", "link", "show"], as_pg=False, check=False)
        for m in re.finditer(r"^\d+: (dtxh(\d+))[@:]", out, re.M):
            if not os.path.exists("/proc/" + m.group(2)):
                runner.run(["ip", "link", "del", m.group(1)], as_pg=False, check=False)

    def up(self):
        self.ip("netns", "add", self.name)
        self.created = True
        self.ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self.ip("link", "set", self.ns_if, "netns", self.name)
        self.ip("addr", "add", self.host_ip + "/30", "dev", self.host_if)
        self.ip("link", "set", self.host_if, "up")
        self.nsrun("ip", "addr", "add", self.ns_ip + "/30", "dev", self.ns_if)
        self.nsrun("ip", "link", "set", self.ns_if, "up")
        self.nsrun("ip", "link", "set", "lo", "up")

    def rules(self, verdict):
        """Installs 'verdict' (e.g. "drop", "numgen random mod 100 < 30
        drop") for every packet in and out of the namespace's veth."""
        self.heal()
        text = ("table inet %s {\n"
                "  chain input { type filter hook input priority 0; policy accept; iifname \"%s\" %s; }\n"
                "  chain output { type filter hook output priority 0; policy accept; oifname \"%s\" %s; }\n"
                "}\n") % (self.TABLE, self.ns_if, verdict, self.ns_if, verdict)
        self.nsrun("nft", "-f", "-", input_text=text)
        self.ruled = True

    def heal(self):
        if self.created:
            self.nsrun("nft", "delete", "table", "inet", self.TABLE, check=False)
        self.ruled = False

    def down(self):
        if not self.created:
            return
        self.heal()
        self.ip("netns", "del", self.name, check=False)
        # the veth pair goes with the namespace, asynchronously
        for _ in range(20):
            rc, _ = self.ip("link", "show", self.host_if, check=False)
            if rc != 0:
                break
            time.sleep(0.1)
        self.ip("link", "del", self.host_if, check=False)
        self.created = False


# ---------------------------------------------------------------------------
# the delaying proxy


class Proxy:
    def __init__(self, h, listen_port, target_port):
        self.h = h
        self.listen_port = listen_port
        self.target_port = target_port
        self.control = os.path.join(h.workdir, "proxy.ctl")
        self.pidfile = os.path.join(h.workdir, "proxy.pid")
        self.logfile = os.path.join(h.workdir, "proxy.log")
        self.popen = None
        self.pid = None

    def start(self):
        script = os.path.join(self.h.workdir, "delay_proxy.py")
        shutil.copy(os.path.join(HERE, "delay_proxy.py"), script)
        with open(self.control, "w") as f:
            f.write("0 0\n")
        for p in (script, self.control):
            self.h.chown(p)
        cmd = self.h.runner.pg_cmd([sys.executable, script,
                                    "--listen", "127.0.0.1:%d" % self.listen_port,
                                    "--target", "127.0.0.1:%d" % self.target_port,
                                    "--control", self.control, "--pidfile", self.pidfile])
        log = open(self.logfile, "a")
        self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True, cwd="/")
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(self.pidfile) as f:
                    self.pid = int(f.read().strip())
                return
            except (OSError, ValueError):
                if self.popen.poll() is not None:
                    break
                time.sleep(0.05)
        raise HarnessError("the delaying proxy did not start (see %s)" % self.logfile)

    def set_delay(self, ms, jitter):
        with open(self.control, "w") as f:
            f.write("%d %d\n" % (ms, jitter))
        signal_pid(self.pid, signal.SIGHUP)

    def cut(self):
        signal_pid(self.pid, signal.SIGUSR1)

    def stop(self):
        if self.pid:
            signal_pid(self.pid, signal.SIGTERM)
        if self.popen:
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                if self.pid:
                    signal_pid(self.pid, signal.SIGKILL)
                self.popen.kill()
                self.popen.wait(5)
        self.popen = None
        self.pid = None


# ---------------------------------------------------------------------------
# the book of transfers (kept by the test, outside the coordinator)


class Transfer:
    __slots__ = ("tid", "legs", "sp_leg", "local", "outcome", "warned", "client",
                 "t_start", "t_end", "error", "fxid", "remote_xids", "via", "async_commit")

    def __init__(self, tid, legs, sp_leg, local, client, async_commit=""):
        self.tid = tid
        self.legs = legs            # [(server, account, amount)]
        self.sp_leg = sp_leg        # (server, account, amount) rolled back, or None
        self.local = local          # journal row on the coordinator
        self.outcome = "running"    # acked / failed / unknown
        self.warned = False         # COMMIT succeeded with "not confirmed"
        self.client = client
        self.t_start = time.monotonic() - T0
        self.t_end = None
        self.error = None
        self.fxid = None            # the coordinator's transaction id, when known
        self.remote_xids = {}       # server -> its transaction id, when known
        self.via = ["exec"] * len(legs)
        # dtx.synchronous_commit_prepared off at COMMIT: "" (no), "client"
        # (an asynchronous client) or "period" (a client switched for a period)
        self.async_commit = async_commit

    def describe(self):
        legs = " ".join("%s:%d:%+d" % l for l in self.legs)
        sp = (" savepoint-rolled-back %s:%d:%+d" % self.sp_leg) if self.sp_leg else ""
        return ("transfer %d [%s%s%s] client %d%s, %s%s, %.1fs..%ss%s%s"
                % (self.tid, legs, sp, " +journal" if self.local else "", self.client,
                   (" (synchronous_commit_prepared off: %s)" % self.async_commit)
                   if self.async_commit else "",
                   self.outcome, " (with WARNING)" if self.warned else "", self.t_start,
                   "%.1f" % self.t_end if self.t_end is not None else "?",
                   (", coordinator xid %s" % self.fxid if self.fxid else "") +
                   "".join(", xid on %s %s" % kv for kv in sorted(self.remote_xids.items())),
                   (", error: " + self.error) if self.error else ""))


class Book:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.transfers = {}
        self.f = open(path, "a", buffering=1)
        self.counts = collections.Counter()
        self.errors = collections.Counter()     # (phase, sqlstate, message start)
        self.last_ack = None

    def attempt(self, t):
        with self.lock:
            self.transfers[t.tid] = t
            self.f.write("attempt %d %s sp=%s local=%d%s\n" % (
                t.tid, ",".join("%s:%d:%d" % l for l in t.legs),
                "%s:%d:%d" % t.sp_leg if t.sp_leg else "-", t.local,
                (" async=" + t.async_commit) if t.async_commit else ""))

    def finish(self, t, outcome, error=None, phase=None, sqlstate=None):
        with self.lock:
            t.outcome = outcome
            t.t_end = time.monotonic() - T0
            t.error = error
            self.counts[outcome] += 1
            if outcome == "acked":
                self.last_ack = time.monotonic()
                if t.warned:
                    self.counts["warned"] += 1
                if t.async_commit:
                    self.counts["acked_async"] += 1
                    self.counts["acked_async_" + t.async_commit] += 1
            if error:
                self.errors[(phase, sqlstate or "-", error.split("\n")[0][:90])] += 1
            xids = ("".join(" xid=%s" % t.fxid for _ in [0] if t.fxid) +
                    "".join(" %s-xid=%s" % kv for kv in sorted(t.remote_xids.items())))
            self.f.write("%s %d%s%s%s\n" % (outcome, t.tid, " warned" if t.warned else "", xids,
                                            (" [%s %s] %s" % (phase, sqlstate, error.replace("\n", " | ")))
                                            if error else ""))


# ---------------------------------------------------------------------------
# the clients


def session_lost(conn, e):
    """Whether an error means that our session with the coordinator is gone
    (or may be): a FATAL, a closed connection, an error made by libpq."""
    if conn is None or conn.closed:
        return True
    diag = getattr(e, "diag", None)
    severity = getattr(diag, "severity_nonlocalized", None) or getattr(diag, "severity", None)
    return severity != "ERROR" or getattr(e, "pgcode", None) is None


def commit_outcome_unknown(conn, e):
    """Whether a COMMIT that raised e may have committed.  An ERROR on a live
    session means the transaction rolled back (pg_dtx raises only before the
    local commit), except 08007 transaction_resolution_unknown."""
    return session_lost(conn, e) or getattr(e, "pgcode", None) == "08007"


class Client(threading.Thread):
    def __init__(self, h, no):
        super().__init__(name="client%d" % no, daemon=True)
        self.h = h
        self.no = no
        # the transfers follow from the seed; the pauses after errors do not
        self.rng = random.Random("%d:client:%d" % (h.seed, no))
        self.jitter = random.Random()
        self.seq = 0
        self.conn = None
        self.backend_pid = None
        self.phase = "idle"
        self.phase_since = time.monotonic()
        self.done = 0
        self.samples = {}
        self.connects = 0
        # COMMIT without waiting for COMMIT PREPARED (set at every connect)
        self.async_commit = h.is_async_client(no)
        self.session_async = False      # the setting of the current session

    def set_phase(self, p):
        self.phase = p
        self.phase_since = time.monotonic()

    def connect(self):
        self.set_phase("connect")
        while not self.h.stop_clients.is_set():
            conn = None
            try:
                conn = self.h.coord.connect(
                    timeout=3, app="bank client %d" % self.no,
                    options="-c statement_timeout=20000")
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_backend_pid()")
                    self.backend_pid = cur.fetchone()[0]
                    self.session_async = False
                    self.conn = conn
                    self.set_async(self.want_async())
                    cur.execute("SHOW dtx.synchronous_commit_prepared")
                    setting = cur.fetchone()[0]
                    if setting != ("off" if self.session_async else "on"):
                        msg = ("client %d: dtx.synchronous_commit_prepared is %r in a session that set it %s"
                               % (self.no, setting, "off" if self.session_async else "on"))
                        if msg not in self.h.problems:
                            self.h.problems.append(msg)
                self.connects += 1
                return True
            except psycopg2.Error:
                self.conn = None
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg2.Error:
                        pass
                time.sleep(0.2 + self.jitter.random() * 0.3)
        return False

    def want_async(self):
        return self.async_commit or self.h.all_async.is_set()

    def set_async(self, on):
        """dtx.synchronous_commit_prepared off (on=True) or on for the
        session, between transactions."""
        if on != self.session_async:
            with self.conn.cursor() as cur:
                cur.execute("SET dtx.synchronous_commit_prepared = %s" % ("off" if on else "on"))
            self.session_async = on

    def drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = None
        self.backend_pid = None

    def new_transfer(self):
        r = self.rng
        self.seq += 1
        tid = (self.no + 1) * 1_000_000_000 + self.seq
        a, b = r.sample(range(len(PARTICIPANTS)), 2)
        amount = r.randint(1, 1000)
        kind = r.random()
        legs = []
        sp_leg = None
        if kind < 0.15:
            # with a fee credited on the third participant
            c = 3 - a - b
            fee = r.randint(1, 20)
            legs = [(PARTICIPANTS[a], r.randint(1, N_ACCOUNTS), -(amount + fee)),
                    (PARTICIPANTS[b], r.randint(1, N_ACCOUNTS), amount),
                    (PARTICIPANTS[c], r.randint(1, N_ACCOUNTS), fee)]
        else:
            legs = [(PARTICIPANTS[a], r.randint(1, N_ACCOUNTS), -amount),
                    (PARTICIPANTS[b], r.randint(1, N_ACCOUNTS), amount)]
            if kind > 0.85:
                # a leg rolled back to a savepoint: must never be applied
                sp_leg = (r.choice(PARTICIPANTS), r.choice(SP_ACCOUNTS), 777)
        # the same order everywhere: no distributed deadlock
        legs.sort(key=lambda l: PARTICIPANTS.index(l[0]))
        t = Transfer(tid, legs, sp_leg, r.random() < 0.5, self.no,
                     ("client" if self.async_commit else "period") if self.session_async else "")
        # each leg through dtx.exec, or through dtx.query calling a function
        # (a write that pg_dtx must find with its read-only check)
        t.via = [r.choice(["exec", "query"]) for _ in legs]
        return t

    def sample(self, label):
        with self.conn.cursor() as cur:
            cur.execute("SELECT sum(total_bytes)::bigint, sum(used_bytes)::bigint "
                        "FROM pg_backend_memory_contexts")
            total, used = cur.fetchone()
        st = proc_status(self.backend_pid)
        self.samples[label] = dict(pid=self.backend_pid, ctx_total=total, ctx_used=used,
                                   rss_anon=st.get("RssAnon"), vmrss=st.get("VmRSS"),
                                   fds=st.get("fds"), done=self.done)

    def run(self):
        h = self.h
        while not h.stop_clients.is_set():
            if self.conn is None and not self.connect():
                break
            for label in list(h.sample_requests):
                if label not in self.samples:
                    try:
                        self.sample(label)
                    except psycopg2.Error as e:
                        say("client %d: could not sample memory: %s" % (self.no, e))
                        self.samples[label] = None
                        self.drop()
            if self.conn is None:
                continue
            try:
                self.set_async(self.want_async())
            except psycopg2.Error:
                self.drop()
                continue
            t = self.new_transfer()
            h.book.attempt(t)
            self.one_transfer(t)
            self.done += 1
            self.set_phase("idle")
            if t.outcome != "acked":
                # a participant may be down: do not spin
                time.sleep(0.02 + self.jitter.random() * 0.08)
        self.drop()
        self.set_phase("stopped")

    def one_transfer(self, t):
        h = self.h
        conn = self.conn
        phase = "begin"
        try:
            with conn.cursor() as cur:
                self.set_phase("begin")
                cur.execute("BEGIN")
                for (server, account, amount), via in zip(t.legs, t.via):
                    phase = "exec " + server
                    self.set_phase(phase)
                    if via == "exec":
                        cur.execute("SELECT dtx.exec(%s, %s, %s, %s, %s)",
                                    (server, LEG_SQL, t.tid, account, amount))
                        n = cur.fetchone()[0]
                        if n != 1:
                            raise HarnessError("dtx.exec on %s returned %r rows for account %d"
                                               % (server, n, account))
                    else:
                        cur.execute("SELECT x FROM dtx.query(%s, 'SELECT leg($1, $2, $3)', %s, %s, %s) "
                                    "AS t(x text)", (server, t.tid, account, amount))
                        t.remote_xids[server] = cur.fetchone()[0]
                if t.sp_leg:
                    phase = "savepoint " + t.sp_leg[0]
                    self.set_phase(phase)
                    cur.execute("SAVEPOINT leg")
                    cur.execute("SELECT dtx.exec(%s, %s, %s, %s, %s)",
                                (t.sp_leg[0], LEG_SQL, -t.tid, t.sp_leg[1], t.sp_leg[2]))
                    cur.execute("ROLLBACK TO SAVEPOINT leg")
                if t.local:
                    phase = "journal"
                    self.set_phase(phase)
                    cur.execute("INSERT INTO journal VALUES (%s) RETURNING pg_current_xact_id()::text",
                                (t.tid,))
                    t.fxid = cur.fetchone()[0]
                phase = "commit"
                self.set_phase(phase)
                del conn.notices[:]
                cur.execute("COMMIT")
                status = cur.statusmessage
        except psycopg2.Error as e:
            msg = (getattr(e, "pgerror", None) or str(e)).strip()
            code = getattr(e, "pgcode", None)
            if phase == "commit":
                if commit_outcome_unknown(conn, e):
                    h.book.finish(t, "unknown", msg, phase, code)
                else:
                    h.book.finish(t, "failed", msg, phase, code)
                if session_lost(conn, e):
                    self.drop()
                return
            # COMMIT was never sent: the transaction cannot have committed
            h.book.finish(t, "failed", msg, phase, code)
            if session_lost(conn, e):
                self.drop()
                return
            try:
                with conn.cursor() as cur:
                    cur.execute("ROLLBACK")
            except psycopg2.Error:
                self.drop()
            return
        except HarnessError as e:
            h.book.finish(t, "failed", str(e), phase, "harness")
            h.problems.append("workload: " + str(e))
            self.drop()
            return
        if status != "COMMIT":
            h.book.finish(t, "failed", "COMMIT answered %r" % status, "commit", None)
            return
        t.warned = any("has not confirmed COMMIT PREPARED" in n for n in conn.notices)
        h.book.finish(t, "acked")


# ---------------------------------------------------------------------------
# faults


class Lane(threading.Thread):
    """A sequence of faults, one after the other, from its own schedule."""

    def __init__(self, h, name, schedule):
        super().__init__(name="lane-" + name, daemon=True)
        self.h = h
        self.lane = name
        self.schedule = schedule    # [(gap seconds, kind, params)]

    def run(self):
        h = self.h
        for gap, kind, params in self.schedule:
            if h.stop_faults.wait(gap):
                break
            if time.monotonic() >= h.faults_end:
                break
            with h.fault_lock:
                h.fault_no += 1
                no = h.fault_no
            h.fault_counts[kind] += 1
            desc = " ".join("%s=%s" % (k, ("%.1f" % v) if isinstance(v, float) else v)
                            for k, v in params.items())
            say("fault %d (lane %s): %s %s" % (no, self.lane, kind, desc))
            try:
                getattr(h, "fault_" + kind)(**params)
            except Exception as e:     # a fault that could not be injected or undone
                h.problems.append("fault %d %s: %s" % (no, kind, e))
                say("fault %d %s FAILED: %s" % (no, kind, e))
                traceback.print_exc(file=sys.stdout)
                h.restore_all()
            say("fault %d: %s over" % (no, kind))


def make_schedule(seed, lane, kinds, rng_params):
    """An endless-enough list of (gap, kind, params): rounds in which every
    kind appears once, in a shuffled order."""
    rng = random.Random("%d:lane:%s" % (seed, lane))
    out = []
    for _ in range(400):
        order = list(kinds)
        rng.shuffle(order)
        for kind in order:
            out.append((rng_params["gap"](rng), kind, rng_params[kind](rng)))
    return out


# ---------------------------------------------------------------------------
# the harness


class Harness:
    def __init__(self, args):
        self.args = args
        self.mode = args.mode
        self.cfg = dict(MODES[args.mode])
        if args.duration is not None:
            self.cfg["duration"] = args.duration
        if args.clients is not None:
            self.cfg["clients"] = args.clients
        self.seed = args.seed
        self.async_fraction = args.async_fraction
        # with faults: periods in which every client commits asynchronously
        self.all_async_share = args.all_async_share if self.mode != "stress" else 0
        self.all_async = threading.Event()
        self.root = is_root()
        self.pg_user = os.environ.get("PG_OS_USER") or ("postgres" if self.root else None)
        if not self.pg_user:
            import pwd
            self.pg_user = pwd.getpwuid(os.geteuid()).pw_name
        self.bindir = args.bindir
        self.runner = Runner(self.pg_user, self.bindir)
        self.workdir = None
        self.sockdir = None
        self.servers = {}
        self.coord = None
        self.netns = None
        self.proxy = None
        self.book = None
        self.clients = []
        self.lanes = []
        self.stop_clients = threading.Event()
        self.stop_faults = threading.Event()
        self.abort = threading.Event()      # cleaning up: faults end at once
        self.faults_end = 0
        self.fault_lock = threading.Lock()
        self.coord_lock = threading.Lock()     # one coordinator crash at a time
        self.fault_no = 0
        self.fault_counts = collections.Counter()
        self.problems = []          # harness failures (not data verdicts)
        self.sample_requests = []
        self.net_faults = self.root and not args.no_netns
        self.commit_timeout_ms = self.cfg["commit_timeout_ms"]
        self.recovered = None
        self.resolved_by = "-"
        self.total_accounts = len(PARTICIPANTS) * (N_ACCOUNTS + len(SP_ACCOUNTS))

    def is_async_client(self, no):
        """Whether client no runs with dtx.synchronous_commit_prepared off:
        spread evenly, a share async_fraction of the clients (1/3: clients
        2, 5, 8, ...)."""
        f = self.async_fraction
        return int((no + 1) * f) > int(no * f)

    def async_clients(self):
        return [cl.no for cl in self.clients if cl.async_commit]

    def is_all_async_period(self, k):
        """Whether the k-th period of ALL_ASYNC_PERIOD seconds of the
        workload has every client asynchronous (1/3: periods 2, 5, 8, ...)."""
        f = self.all_async_share
        return int((k + 1) * f) > int(k * f)

    def all_async_periods(self):
        """Switches every client to dtx.synchronous_commit_prepared = off
        and back, period by period, until the clients stop."""
        start = time.monotonic()
        while not self.stop_clients.wait(0.2):
            k = int((time.monotonic() - start) // ALL_ASYNC_PERIOD)
            on = self.is_all_async_period(k)
            if on != self.all_async.is_set():
                if on:
                    self.all_async.set()
                else:
                    self.all_async.clear()
                say("every client %s (period %d)"
                    % ("with dtx.synchronous_commit_prepared = off" if on else "back to its own setting", k))
        self.all_async.clear()

    # --- setup ---------------------------------------------------------

    def chown(self, path):
        if self.root:
            shutil.chown(path, self.pg_user, self.pg_user)

    def setup(self):
        base = os.environ.get("TMPDIR", "/tmp")
        self.workdir = tempfile.mkdtemp(prefix="pg_dtx_faults.", dir=base)
        os.chmod(self.workdir, 0o755)
        self.chown(self.workdir)
        self.sockdir = os.path.join(self.workdir, "sock")
        os.mkdir(self.sockdir)
        self.chown(self.sockdir)
        say("work directory %s (servers run as OS user %s)" % (self.workdir, self.pg_user))
        self.book = Book(os.path.join(self.workdir, "transfers.log"))

        if self.net_faults:
            NetNS.remove_stale(self.runner)
            self.netns = NetNS(self)
            try:
                self.netns.up()
                self.netns.rules("drop")    # nftables works in it?
                self.netns.heal()
            except HarnessError as e:
                self.netns.down()
                self.netns = None
                self.net_faults = False
                say("NOTE: cannot set up a network namespace with nftables here, the network "
                    "namespace faults (net_partition, net_loss) are skipped: %s" % str(e).strip())
        if self.netns:
            say("network namespace %s: p3 at %s behind veth %s/%s"
                % (self.netns.name, self.netns.ns_ip, self.netns.host_if, self.netns.ns_if))
        elif not self.root:
            say("NOTE: not running as root: the network namespace faults (net_partition, "
                "net_loss) are skipped; run test/faults/run.sh as root to include them")
        else:
            say("NOTE: --no-netns: the network namespace faults are skipped")

        used = set()
        base_port = self.args.port
        ports = {}
        for name in ["coord"] + PARTICIPANTS + ["proxy"]:
            ports[name] = free_port(base_port, used)
            used.add(ports[name])
            base_port = ports[name] + 1

        self.coord = Server(self, "coord", ports["coord"], "127.0.0.1")
        self.servers["coord"] = self.coord
        for name in PARTICIPANTS:
            if name == "p3" and self.netns:
                self.servers[name] = Server(self, name, ports[name], self.netns.ns_ip, self.netns.name)
            else:
                self.servers[name] = Server(self, name, ports[name], "127.0.0.1")

        # initdb all at once
        procs = []
        for s in self.servers.values():
            log = open(os.path.join(self.workdir, s.name + ".initdb.log"), "w")
            procs.append((s, subprocess.Popen(s.initdb_cmd(), stdout=log, stderr=log,
                                              stdin=subprocess.DEVNULL, env=self.runner.env,
                                              cwd="/")))
            log.close()
        for s, p in procs:
            if p.wait(300) != 0:
                raise HarnessError("initdb of %s failed: see %s.initdb.log" % (s.name, s.name))

        clients = self.cfg["clients"]
        common = {
            "port": None, "listen_addresses": None,
            "unix_socket_directories": "'%s'" % self.sockdir,
            "log_line_prefix": "'%m [%p] %q%a '",
            "fsync": "off",                 # processes crash here, not the machine
            "synchronous_commit": "off",    # pg_dtx must force its decision's flush itself
            "shared_buffers": "32MB",
            "max_wal_size": "256MB",
            "checkpoint_timeout": "60s",
            "log_checkpoints": "off",
            "lc_messages": "'C'",
            "wal_keep_size": "'1GB'",       # WAL kept for pg_waldump after a failure
        }
        if self.args.trace:
            common["log_statement"] = "'all'"
        for s in self.servers.values():
            conf = dict(common)
            conf["port"] = s.port
            conf["listen_addresses"] = "'%s'" % s.listen
            conf["cluster_name"] = "'%s'" % s.name
            hba = []
            if s is self.coord:
                conf.update({
                    "shared_preload_libraries": "'pg_dtx'",
                    "max_connections": clients + 25,
                    "max_worker_processes": 8,
                    "dtx.resolver_interval": "1000",
                    "dtx.commit_timeout": "'%dms'" % self.commit_timeout_ms,
                    "dtx.prepare_timeout": "'%dms'" % (self.commit_timeout_ms * 2),
                    "dtx.connect_timeout": "'3s'",
                })
            else:
                conf.update({
                    "max_connections": clients + 40,
                    "max_prepared_transactions": clients + 25,
                    # sessions of a coordinator backend that died without a
                    # FIN reaching us (partition, crash) go within seconds
                    "tcp_keepalives_idle": 5,
                    "tcp_keepalives_interval": 2,
                    "tcp_keepalives_count": 3,
                })
                if s.netns:
                    hba.append("host all all %s/32 trust" % self.netns.host_ip)
            s.configure(conf, hba)
        for s in self.servers.values():
            s.start()
        say("servers up: " + ", ".join("%s %s:%d%s" % (s.name, s.listen, s.port,
                                                       " (netns %s)" % s.netns if s.netns else "")
                                       for s in self.servers.values()))

        self.proxy = Proxy(self, ports["proxy"], self.servers["p2"].port)
        self.proxy.start()
        say("delaying proxy 127.0.0.1:%d -> p2 127.0.0.1:%d (pid %d)"
            % (ports["proxy"], self.servers["p2"].port, self.proxy.pid))

        for name in PARTICIPANTS:
            s = self.servers[name]
            s.sql("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);"
                  "CREATE TABLE ledger (transfer_id bigint PRIMARY KEY, account int NOT NULL,"
                  "                     amount bigint NOT NULL);"
                  "CREATE INDEX ON ledger (account);"
                  # the same leg as a function: a write that looks like a SELECT to
                  # pg_dtx (found by its read-only check); returns the remote xid
                  "CREATE FUNCTION leg(tid bigint, acct int, amt bigint) RETURNS text "
                  "LANGUAGE plpgsql AS $$ BEGIN "
                  "  UPDATE accounts SET balance = balance + amt WHERE id = acct;"
                  "  IF NOT FOUND THEN RAISE EXCEPTION 'no account %%', acct; END IF;"
                  "  INSERT INTO ledger VALUES (tid, acct, amt);"
                  "  RETURN pg_current_xact_id()::text;"
                  "END $$;"
                  "INSERT INTO accounts SELECT g, %d FROM generate_series(1, %d) g;"
                  "INSERT INTO accounts SELECT g, %d FROM generate_series(%d, %d) g;"
                  % (INIT_BALANCE, N_ACCOUNTS, INIT_BALANCE, SP_ACCOUNTS[0], SP_ACCOUNTS[-1]))
        addr = {"p1": ("127.0.0.1", self.servers["p1"].port),
                "p2": ("127.0.0.1", ports["proxy"]),
                "p3": (self.servers["p3"].listen, self.servers["p3"].port)}
        stmts = ["CREATE EXTENSION pg_dtx",
                 "CREATE TABLE journal (transfer_id bigint PRIMARY KEY)"]
        for name in PARTICIPANTS:
            stmts.append("CREATE SERVER %s FOREIGN DATA WRAPPER dtx OPTIONS "
                         "(host '%s', port '%d', dbname 'postgres')" % ((name,) + addr[name]))
            stmts.append("CREATE USER MAPPING FOR postgres SERVER %s OPTIONS (user 'postgres')" % name)
        self.coord.sql(";".join(stmts))
        self.total_accounts = len(PARTICIPANTS) * (N_ACCOUNTS + len(SP_ACCOUNTS))
        say("coordinator: pg_dtx, servers p1 (direct), p2 (through the proxy), p3 (%s)"
            % ("in the network namespace" if self.netns else "direct"))

    # --- faults ----------------------------------------------------------

    def build_lanes(self):
        ct = self.commit_timeout_ms / 1000.0
        short = self.mode == "short"
        u = lambda a, b: (lambda r: round(r.uniform(a, b), 1))
        coord_kinds = ["coord_immediate", "coord_kill9", "resolver_kill"]
        part_kinds = ["part_crash", "part_crash2", "part_pause", "part_terminate",
                      "net_latency", "proxy_cut", "crash_in_prepare"]
        if self.net_faults:
            part_kinds += ["net_partition", "net_loss"]
        coord_params = {
            "gap": u(4, 9) if short else u(5, 20),
            "coord_immediate": lambda r: dict(down=round(r.uniform(0, 2), 1)),
            "coord_kill9": lambda r: dict(children=r.random() < 0.5, down=round(r.uniform(0, 2), 1)),
            "resolver_kill": lambda r: dict(target=r.choice(["worker", "worker", "launcher"]),
                                            sig=r.choice(["KILL", "KILL", "TERM"])),
        }
        part_params = {
            "gap": u(0.5, 2.5) if short else u(1, 8),
            "part_crash": lambda r: dict(target=r.choice(PARTICIPANTS),
                                         how=r.choice(["immediate", "kill9"]),
                                         down=round(r.uniform(0.5, 4), 1)),
            "part_crash2": lambda r: dict(targets=",".join(sorted(r.sample(PARTICIPANTS, 2))),
                                          how=r.choice(["immediate", "kill9"]),
                                          down=round(r.uniform(0.5, 4), 1)),
            "part_pause": lambda r: dict(target=r.choice(PARTICIPANTS),
                                         seconds=round(ct + r.uniform(0.5, 3), 1)),
            "part_terminate": lambda r: dict(target=r.choice(PARTICIPANTS),
                                             times=r.randint(2, 6),
                                             every=round(r.uniform(0.1, 0.8), 2),
                                             which=r.choice(["pg_dtx:%", "pg_dtx:%", "pg_dtx%"])),
            "net_latency": lambda r: dict(delay_ms=r.choice([30, 100, 250, 600]),
                                          jitter_ms=r.choice([0, 50, 200]),
                                          seconds=round(r.uniform(3, 8), 1)),
            "proxy_cut": lambda r: dict(times=r.randint(1, 4), every=round(r.uniform(0.2, 1.5), 1)),
            "crash_in_prepare": lambda r: dict(targets=",".join(sorted(r.sample(PARTICIPANTS, 2))),
                                               after=round(r.uniform(0.3, ct), 1),
                                               how=r.choice(["immediate", "kill9"]),
                                               down=round(r.uniform(0.1, 1.5), 1),
                                               resume=round(r.uniform(0, 3), 1)),
            "net_partition": lambda r: dict(seconds=round(r.choice([r.uniform(1, ct), r.uniform(ct + 1, ct + 8)]), 1)),
            "net_loss": lambda r: dict(percent=r.choice([5, 15, 30, 60]),
                                       seconds=round(r.uniform(3, 8), 1)),
        }
        self.lanes = [
            Lane(self, "coordinator", make_schedule(self.seed, "coordinator", coord_kinds, coord_params)),
            Lane(self, "participants", make_schedule(self.seed, "participants", part_kinds, part_params)),
        ]
        return coord_kinds + part_kinds

    def nap(self, seconds):
        """Sleep within a fault; cut short when the test is interrupted."""
        self.abort.wait(seconds)

    def fault_coord_immediate(self, down):
        with self.coord_lock:
            self.coord.stop_immediate()
            self.nap(down)
            self.coord.start()

    def fault_coord_kill9(self, children, down):
        with self.coord_lock:
            self._coord_kill9(children, down)

    def _coord_kill9(self, children, down):
        kids = self.coord.kill9(children)
        if not children:
            # the orphaned backends notice the postmaster's death and exit;
            # the new postmaster cannot start before they are gone
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(proc_alive(p) for p in kids):
                time.sleep(0.1)
            left = [p for p in kids if proc_alive(p)]
            if left:
                self.problems.append("backends of a killed coordinator postmaster still alive after 30s: "
                                     + ", ".join("%d (%s)" % (p, proc_cmdline(p)) for p in left))
                for p in left:
                    signal_pid(p, signal.SIGKILL)
        self.nap(down)
        self.coord.start()

    def resolver_pids(self, target):
        pm = self.coord.postmaster_pid()
        if pm is None:
            return []
        pat = "pg_dtx resolver launcher" if target == "launcher" else "pg_dtx resolver for database"
        return [(p, proc_cmdline(p)) for p in proc_children(pm) if pat in proc_cmdline(p)]

    def fault_crash_in_prepare(self, targets, after, how, down, resume):
        """Two participants stop answering: every transfer touches one of
        them, so the clients pile up in COMMIT waiting for PREPARE answers
        (the third participant has prepared), and nothing commits on the
        coordinator meanwhile.  Then the coordinator crashes, comes back,
        and only later the two participants."""
        ss = [self.servers[t] for t in targets.split(",")]
        for s in ss:
            s.pause()
        try:
            self.nap(after)
            with self.coord_lock:
                if how == "kill9":
                    self._coord_kill9(True, down)
                else:
                    self.coord.stop_immediate()
                    self.nap(down)
                    self.coord.start()
            self.nap(resume)
        finally:
            for s in ss:
                s.resume()

    def fault_resolver_kill(self, target, sig):
        with self.coord_lock:
            self._resolver_kill(target, sig)

    def _resolver_kill(self, target, sig):
        deadline = time.monotonic() + 5
        found = []
        while time.monotonic() < deadline and not found:
            found = self.resolver_pids(target)
            if not found:
                time.sleep(0.01)
        if not found:
            say("  no %s process seen within 5s: nothing killed" % target)
            return
        for pid, cmd in found:
            signal_pid(pid, getattr(signal, "SIG" + sig))
            say("  sent SIG%s to %d (%s)" % (sig, pid, cmd))
        if sig == "KILL":
            # the postmaster restarts every process after a child's crash
            time.sleep(1)
            self.coord.wait_up()

    def _crash(self, s, how):
        if how == "kill9":
            s.kill9(True)
        else:
            s.stop_immediate()

    def fault_part_crash(self, target, how, down):
        s = self.servers[target]
        self._crash(s, how)
        self.nap(down)
        s.start()

    def fault_part_crash2(self, targets, how, down):
        ss = [self.servers[t] for t in targets.split(",")]
        for s in ss:
            self._crash(s, how)
        self.nap(down)
        for s in ss:
            s.start()

    def fault_part_pause(self, target, seconds):
        s = self.servers[target]
        n = s.pause()
        say("  %s: %d processes stopped" % (target, n))
        try:
            self.nap(seconds)
        finally:
            s.resume()

    def fault_part_terminate(self, target, times, every, which):
        s = self.servers[target]
        total = 0
        for _ in range(times):
            try:
                r = s.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE application_name LIKE %s AND pid <> pg_backend_pid()", (which,))
                total += r[0][0]
            except psycopg2.Error as e:
                say("  could not terminate on %s: %s" % (target, str(e).strip()))
            self.nap(every)
        say("  %d pg_dtx session(s) terminated on %s" % (total, target))

    def fault_net_latency(self, delay_ms, jitter_ms, seconds):
        self.proxy.set_delay(delay_ms, jitter_ms)
        try:
            self.nap(seconds)
        finally:
            self.proxy.set_delay(0, 0)

    def fault_proxy_cut(self, times, every):
        for i in range(times):
            self.proxy.cut()
            if i + 1 < times:
                self.nap(every)

    def fault_net_partition(self, seconds):
        self.netns.rules("drop")
        try:
            self.nap(seconds)
        finally:
            self.netns.heal()

    def fault_net_loss(self, percent, seconds):
        self.netns.rules("numgen random mod 100 < %d drop" % percent)
        try:
            self.nap(seconds)
        finally:
            self.netns.heal()

    def restore_all(self):
        """After a fault went wrong: everything back to normal."""
        for s in self.servers.values():
            s.resume()
        if self.netns:
            self.netns.heal()
        if self.proxy and self.proxy.pid:
            self.proxy.set_delay(0, 0)
        for s in self.servers.values():
            try:
                s.start()
            except HarnessError as e:
                self.problems.append(str(e))

    # --- the run -----------------------------------------------------------

    def progress(self, label=""):
        c = self.book.counts
        connected = sum(1 for cl in self.clients if cl.conn is not None)
        say("%sacked %d (%d with warning, %d asynchronous), failed %d, unknown %d; %d/%d clients connected"
            % (label, c["acked"], c["warned"], c["acked_async"], c["failed"], c["unknown"], connected,
               len(self.clients)))

    def check_stuck(self, limit):
        now = time.monotonic()
        for cl in self.clients:
            if cl.phase not in ("idle", "stopped", "connect") and now - cl.phase_since > limit:
                key = "client %d stuck in %s" % (cl.no, cl.phase)
                if not any(p.startswith(key) for p in self.problems):
                    info = ""
                    try:
                        r = self.coord.sql("SELECT state, wait_event_type, wait_event, left(query, 120) "
                                           "FROM pg_stat_activity WHERE pid = %s", (cl.backend_pid,))
                        info = " (backend %s: %s)" % (cl.backend_pid, r)
                    except psycopg2.Error:
                        pass
                    self.problems.append("%s for more than %ds%s" % (key, limit, info))
                    say("PROBLEM: " + self.problems[-1])

    def wait_with_progress(self, until, stuck_limit=90):
        next_report = time.monotonic() + 10
        while time.monotonic() < until:
            time.sleep(min(1.0, max(0.0, until - time.monotonic())))
            self.check_stuck(stuck_limit)
            if time.monotonic() >= next_report:
                self.progress()
                next_report += 10

    def run_workload(self):
        cfg = self.cfg
        banner("Workload: %d clients%s" % (cfg["clients"],
                                           "" if self.mode == "stress" else ", faults for %ds" % cfg["duration"]))
        for i in range(cfg["clients"]):
            cl = Client(self, i)
            self.clients.append(cl)
        say("clients with dtx.synchronous_commit_prepared = off (--async-fraction %s): %s"
            % (self.async_fraction, ", ".join(map(str, self.async_clients())) or "none"))
        if self.all_async_share:
            periods = [k for k in range(int((cfg["warmup"] + cfg["duration"] + cfg["cooldown"])
                                            // ALL_ASYNC_PERIOD) + 1) if self.is_all_async_period(k)]
            say("every client with dtx.synchronous_commit_prepared = off (--all-async-share %s) in the "
                "periods of %ds from the start of the workload: %s"
                % (self.all_async_share, ALL_ASYNC_PERIOD,
                   ", ".join("%d-%ds" % (k * ALL_ASYNC_PERIOD, (k + 1) * ALL_ASYNC_PERIOD)
                             for k in periods[:12]) + (", ..." if len(periods) > 12 else "")))
            threading.Thread(target=self.all_async_periods, name="all-async", daemon=True).start()
        for cl in self.clients:
            cl.start()

        if self.mode == "stress":
            return self.run_stress()

        kinds = self.build_lanes()
        say("fault kinds: " + ", ".join(kinds))
        self.wait_with_progress(time.monotonic() + cfg["warmup"])
        self.progress("warm-up done: ")
        self.faults_end = time.monotonic() + cfg["duration"]
        for lane in self.lanes:
            lane.start()
        self.wait_with_progress(self.faults_end)
        self.stop_faults.set()
        say("fault window over; waiting for the faults in progress to be undone")
        for lane in self.lanes:
            while lane.is_alive():
                lane.join(1)
                self.check_stuck(90)
        self.restore_all()
        self.progress("faults over: ")
        acked_before = self.book.counts["acked"]
        self.wait_with_progress(time.monotonic() + cfg["cooldown"])
        self.recovered = self.book.counts["acked"] - acked_before
        say("%d transfer(s) acknowledged in the %ds after the last fault" % (self.recovered, cfg["cooldown"]))
        self.stop_workload()

    def stop_workload(self):
        self.stop_clients.set()
        deadline = time.monotonic() + 40
        for cl in self.clients:
            cl.join(max(0.1, deadline - time.monotonic()))
        for cl in self.clients:
            if cl.is_alive():
                self.problems.append("client %d did not stop (phase %s for %.0fs)"
                                     % (cl.no, cl.phase, time.monotonic() - cl.phase_since))
                try:
                    if cl.conn is not None:
                        cl.conn.cancel()
                except psycopg2.Error:
                    pass
        for cl in self.clients:
            cl.join(5)
        self.progress("workload stopped: ")

    # --- stress ------------------------------------------------------------

    def participant_sessions(self):
        out = {}
        for name in PARTICIPANTS:
            r = self.servers[name].sql(
                "SELECT count(*) FILTER (WHERE application_name LIKE 'pg_dtx:%%'),"
                "       count(*) FILTER (WHERE application_name LIKE 'pg_dtx_resolver:%%') "
                "FROM pg_stat_activity")
            out[name] = r[0]
        return out

    def take_samples(self, label):
        self.sample_requests.append(label)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(label in cl.samples for cl in self.clients):
                break
            time.sleep(0.2)
        sessions = self.participant_sessions()
        decisions = self.coord.sql("SELECT count(*) FROM dtx.decisions")[0][0]
        return sessions, decisions

    def run_stress(self):
        cfg = self.cfg
        half = cfg["duration"] / 2.0
        start = time.monotonic()
        self.wait_with_progress(start + half)
        self.mid = self.take_samples("mid") + (self.book.counts["acked"],)
        say("middle sample taken")
        self.wait_with_progress(start + cfg["duration"])
        self.end = self.take_samples("end") + (self.book.counts["acked"],)
        say("end sample taken")
        self.recovered = None
        self.stop_workload()

    def stress_report(self, checks):
        banner("Stress: memory and connections, middle vs end")
        rows = []
        for cl in self.clients:
            a, b = cl.samples.get("mid"), cl.samples.get("end")
            if not a or not b or a["pid"] != b["pid"]:
                say("client %d: no comparable samples (reconnected?)" % cl.no)
                continue
            rows.append((cl.no, a, b))
        print("client  pid      tx(mid->end)   contexts kB(mid->end)   RssAnon kB(mid->end)   fds")
        for no, a, b in rows:
            print("%6d  %-7d  %5d->%-6d  %9.1f->%-9.1f  %8s->%-8s  %s->%s"
                  % (no, a["pid"], a["done"], b["done"], a["ctx_total"] / 1024.0, b["ctx_total"] / 1024.0,
                     a["rss_anon"], b["rss_anon"], a["fds"], b["fds"]))
        ctx_growth = [b["ctx_total"] - a["ctx_total"] for _, a, b in rows]
        rss_growth = [(b["rss_anon"] or 0) - (a["rss_anon"] or 0) for _, a, b in rows]
        fd_growth = [(b["fds"] or 0) - (a["fds"] or 0) for _, a, b in rows]
        tx_between = [b["done"] - a["done"] for _, a, b in rows]
        if rows:
            say("per backend, middle -> end: %d..%d transactions; memory contexts growth max %+d B, "
                "median %+d B; RssAnon growth max %+d kB, median %+d kB; open files growth max %+d"
                % (min(tx_between), max(tx_between), max(ctx_growth), statistics.median(ctx_growth),
                   max(rss_growth), statistics.median(rss_growth), max(fd_growth)))
        (smid, dmid, amid), (send, dend, aend) = self.mid, self.end
        for name in PARTICIPANTS:
            say("%s: pg_dtx sessions %d -> %d (resolver %d -> %d)"
                % (name, smid[name][0], send[name][0], smid[name][1], send[name][1]))
        say("coordinator: dtx.decisions rows %d -> %d; acknowledged %d -> %d" % (dmid, dend, amid, aend))

        # A leak per transaction shows up as growth proportional to the
        # hundreds of transactions between the samples; caches and the
        # allocator's block sizes allow a small fixed amount.
        ok_mem = bool(rows) and max(ctx_growth) <= 256 * 1024 and statistics.median(ctx_growth) <= 16 * 1024
        checks.append(("coordinator backend memory flat (contexts max %+d B, median %+d B)"
                       % (max(ctx_growth) if rows else 0, statistics.median(ctx_growth) if rows else 0),
                       ok_mem))
        ok_rss = bool(rows) and statistics.median(rss_growth) <= 512
        checks.append(("coordinator backend RssAnon flat (median %+d kB)"
                       % (statistics.median(rss_growth) if rows else 0), ok_rss))
        checks.append(("coordinator backend open files flat (max %+d)" % (max(fd_growth) if rows else 0),
                       bool(rows) and max(fd_growth) <= 0))
        nclients = len(self.clients)
        ok_conn = all(send[n][0] <= smid[n][0] and send[n][0] <= nclients for n in PARTICIPANTS)
        checks.append(("pg_dtx sessions on participants flat (%s)"
                       % ", ".join("%s %d->%d" % (n, smid[n][0], send[n][0]) for n in PARTICIPANTS), ok_conn))
        # Confirmed decisions are deleted in batches (by the resolver, or by
        # the backend's next transaction): a few seconds' worth is normal; a
        # leak would keep a share of all transactions.
        limit = max(1000, aend // 20)
        checks.append(("dtx.decisions does not keep finished decisions (%d -> %d rows, limit %d)"
                       % (dmid, dend, limit), dend <= limit))

    # --- verdict -----------------------------------------------------------

    def leftovers(self):
        prepared = {}
        for name in PARTICIPANTS:
            prepared[name] = self.servers[name].sql("SELECT count(*) FROM pg_prepared_xacts")[0][0]
        decisions = self.coord.sql("SELECT count(*) FROM dtx.decisions")[0][0]
        return prepared, decisions

    def resolve(self):
        banner("Resolution")
        cfg = self.cfg
        for s in self.servers.values():
            s.wait_up()
        start = time.monotonic()
        prepared, decisions = self.leftovers()
        say("after the workload: prepared %s, decisions %d" % (prepared, decisions))
        # the background resolver alone first
        while time.monotonic() < start + cfg["bg_wait"]:
            if sum(prepared.values()) == 0 and decisions == 0:
                say("background resolver finished everything in %.1fs" % (time.monotonic() - start))
                self.resolved_by = "background resolver"
                return prepared, decisions
            time.sleep(1)
            prepared, decisions = self.leftovers()
        say("after %ds of background resolver: prepared %s, decisions %d; now running dtx.resolve()"
            % (cfg["bg_wait"], prepared, decisions))
        try:
            say("dtx.in_doubt: %s" % self.coord.sql(
                "SELECT server, decision, failures, left(last_error, 80), next_attempt - now() FROM dtx.in_doubt "
                "LIMIT 10"))
            say("dtx.resolver_status: %s" % self.coord.sql(
                "SELECT server_id, failures, left(last_error, 80), next_attempt - now() FROM dtx.resolver_status"))
        except psycopg2.Error as e:
            say("could not read dtx.in_doubt: %s" % e)
        deadline = time.monotonic() + cfg["resolve_wait"]
        while time.monotonic() < deadline:
            try:
                rows = self.coord.sql("SELECT server, global_id, action, outcome FROM dtx.resolve()",
                                      timeout_ms=60000)
                for r in rows:
                    if r[2] != "forget":
                        say("  dtx.resolve(): %s %s on %s: %s" % (r[2], r[1], r[0], r[3]))
            except psycopg2.Error as e:
                say("dtx.resolve() failed: %s" % str(e).strip())
            prepared, decisions = self.leftovers()
            if sum(prepared.values()) == 0 and decisions == 0:
                say("dtx.resolve() finished everything %.1fs after the workload" % (time.monotonic() - start))
                self.resolved_by = "dtx.resolve()"
                return prepared, decisions
            time.sleep(1)
        self.resolved_by = "nobody"
        say("still left after %ds: prepared %s, decisions %d"
            % (cfg["bg_wait"] + cfg["resolve_wait"], prepared, decisions))
        for name in PARTICIPANTS:
            try:
                for r in self.servers[name].sql("SELECT gid, prepared FROM pg_prepared_xacts LIMIT 5"):
                    say("  left on %s: %s prepared at %s" % (name, r[0], r[1]))
            except psycopg2.Error:
                pass
        return prepared, decisions

    def verdict(self):
        prepared, decisions = self.resolve()
        banner("Verdict")
        book = self.book.transfers
        present = collections.defaultdict(dict)     # tid -> {server: (account, amount)}
        negative = []
        total = 0
        count = 0
        bad_accounts = []
        for name in PARTICIPANTS:
            s = self.servers[name]
            for tid, account, amount in s.sql("SELECT transfer_id, account, amount FROM ledger", timeout_ms=120000):
                if tid < 0:
                    negative.append((name, tid, account, amount))
                else:
                    present[tid][name] = (account, amount)
            r = s.sql("SELECT coalesce(sum(balance), 0)::bigint, count(*) FROM accounts")[0]
            total += r[0]
            count += r[1]
            for r in s.sql("SELECT a.id, a.balance, coalesce(l.s, 0)::bigint FROM accounts a "
                           "LEFT JOIN (SELECT account, sum(amount) s FROM ledger GROUP BY account) l "
                           "ON l.account = a.id WHERE a.balance <> %s + coalesce(l.s, 0)", (INIT_BALANCE,),
                           timeout_ms=120000):
                bad_accounts.append((name,) + tuple(r))
        journal = set(r[0] for r in self.coord.sql("SELECT transfer_id FROM journal", timeout_ms=120000))

        lost, half, phantom, corrupt, unknown_applied, applied = [], [], [], [], 0, 0
        applied_async = 0
        for tid, t in book.items():
            want = {srv: (acct, amt) for srv, acct, amt in t.legs}
            got = present.get(tid, {})
            full = set(got) == set(want)
            for srv, v in got.items():
                if want.get(srv) != v:
                    corrupt.append((t, "on %s: ledger has %s, expected %s" % (srv, v, want.get(srv))))
            if got and not full:
                half.append((t, "applied on %s only" % ",".join(sorted(got))))
            if t.local and (tid in journal) != full:
                half.append((t, "journal row on the coordinator %s, participants %s"
                             % ("present" if tid in journal else "missing",
                                ",".join(sorted(got)) or "none")))
            if not t.local and tid in journal:
                corrupt.append((t, "journal row for a transfer that wrote none"))
            if full:
                applied += 1
                if t.async_commit:
                    applied_async += 1
            if t.outcome == "acked" and not full:
                lost.append((t, "applied on %s" % (",".join(sorted(got)) or "no participant")))
            if t.outcome == "failed" and (got or tid in journal):
                phantom.append((t, "failed, yet applied on %s%s"
                                % (",".join(sorted(got)) or "no participant",
                                   " and in the journal" if tid in journal else "")))
            if t.outcome == "unknown" and full:
                unknown_applied += 1
        for tid in set(present) - set(book):
            phantom.append((None, "ledger row for unknown transfer id %d on %s" % (tid, sorted(present[tid]))))
        for tid in journal - set(book):
            phantom.append((None, "journal row for unknown transfer id %d" % tid))
        for name, tid, account, amount in negative:
            phantom.append((book.get(-tid), "leg rolled back to a savepoint is applied on %s (account %d, %+d)"
                            % (name, account, amount)))

        c = self.book.counts
        expected_total = self.total_accounts * INIT_BALANCE
        total_ok = total == expected_total and count == self.total_accounts and not bad_accounts
        left = sum(prepared.values()) + decisions
        faults = sum(self.fault_counts.values())
        floor = self.floor()

        def show(title, items):
            if items:
                say("%s: %d" % (title, len(items)))
                for t, why in items[:15]:
                    print("    %s: %s" % (why, t.describe() if t else ""))
                if len(items) > 15:
                    print("    ... %d more in %s/transfers.log" % (len(items) - 15, self.workdir))

        self.offenders = [t for t, _ in lost + half + phantom if t is not None]
        show("LOST (acknowledged, not applied everywhere)", lost)
        show("HALF-APPLIED", half)
        show("APPLIED ALTHOUGH FAILED", phantom)
        show("LEDGER ROWS THAT DO NOT MATCH", corrupt)
        if bad_accounts:
            say("accounts whose balance does not match their ledger: %s" % bad_accounts[:10])
        if not total_ok:
            say("total balance %d over %d accounts, expected %d over %d"
                % (total, count, expected_total, self.total_accounts))

        say("faults injected: %d (%s)" % (faults, ", ".join("%s %d" % kv for kv in sorted(self.fault_counts.items()))))
        if self.book.errors:
            say("client errors (phase, SQLSTATE, message: count), most frequent first:")
            for (phase, code, msg), n in self.book.errors.most_common(12):
                print("    %5d  %-14s %-6s %s" % (n, phase, code, msg))

        checks = [
            ("no acknowledged transfer lost (%d)" % len(lost), not lost),
            ("no half-applied transfer (%d)" % len(half), not half),
            ("no failed transfer or rolled-back leg applied (%d)" % len(phantom), not phantom),
            ("ledger rows as written (%d bad)" % len(corrupt), not corrupt),
            ("total balance unchanged and every balance matches its ledger", total_ok),
            ("nothing left prepared on participants (%s)" % prepared, sum(prepared.values()) == 0),
            ("dtx.decisions empty (%d)" % decisions, decisions == 0),
            ("acknowledged transfers %d >= floor %d" % (c["acked"], floor), c["acked"] >= floor),
        ]
        if self.async_clients() or self.all_async_share:
            checks.append(("transfers acknowledged with dtx.synchronous_commit_prepared off (%d)"
                           % c["acked_async"], c["acked_async"] > 0))
        if self.recovered is not None:
            checks.append(("transfers acknowledged after the last fault (%d)" % self.recovered,
                           self.recovered > 0))
        checks.append(("the harness could inject and undo every fault, no client stuck (%d problem(s))"
                       % len(self.problems), not self.problems))
        crashes = self.server_crashes()
        for line in crashes[:10]:
            say("crash in a server log: %s" % line)
        checks.append(("no PANIC, assertion failure or backend crash in the server logs (%d)" % len(crashes),
                       not crashes))
        if self.mode == "stress":
            self.stress_report(checks)

        banner("Checks")
        for what, ok in checks:
            print("%s  %s" % ("ok    " if ok else "FAILED", what))
        for p in self.problems:
            print("  problem: %s" % p)
        passed = sum(1 for _, ok in checks if ok)
        failed = len(checks) - passed
        print()
        print("bank summary (%s, seed %d): acknowledged %d (%d with warning, %d asynchronous), applied %d, "
              "unknown %d (%d applied), failed %d, faults injected %d, lost %d, half-applied %d, "
              "applied-although-failed %d, total %s, left %d (prepared %d + decisions %d), resolved by %s"
              % (self.mode, self.seed, c["acked"], c["warned"], c["acked_async"], applied, c["unknown"],
                 unknown_applied, c["failed"], faults, len(lost), len(half), len(phantom),
                 "ok" if total_ok else "NOT ok", left, sum(prepared.values()), decisions, self.resolved_by))
        async_no = self.async_clients()
        # COMMIT PREPAREDs of asynchronous commits whose answer was not a
        # success (or never read): left to the resolver, logged by the backend
        given_up = sum(1 for line in self.read_log("coord")
                       if "has not confirmed COMMIT PREPARED of" in line)
        print("asynchronous commits (dtx.synchronous_commit_prepared = off; clients %s, all clients "
              "%s of the time): acknowledged %d (%d by those clients, %d in the all-async periods), "
              "applied %d, lost %d, half-applied %d; COMMIT PREPARED answers left to the resolver %d"
              % (", ".join(map(str, async_no)) + " of %d" % len(self.clients) if async_no else "none",
                 self.all_async_share, c["acked_async"], c["acked_async_client"], c["acked_async_period"],
                 applied_async, sum(1 for t, _ in lost if t.async_commit),
                 sum(1 for t, _ in half if t.async_commit), given_up))
        return passed, failed

    def server_crashes(self):
        """Log lines of PANICs, failed assertions and processes that died of
        a signal other than the SIGKILLs the faults send."""
        pat = re.compile(r" PANIC: |TRAP: |terminated by signal (?!9:)\d+")
        out = []
        for name in self.servers:
            out += ["%s: %s" % (name, line.rstrip()) for line in self.read_log(name) if pat.search(line)]
        return out

    def floor(self):
        """The fewest acknowledged transfers for a run to prove anything: far
        below what a healthy run does (hundreds per second on 2 cores), but
        not nothing."""
        if self.cfg["floor"] is not None and self.args.duration is None:
            return self.cfg["floor"]
        return int(self.cfg["duration"] * (20 if self.mode != "stress" else 50))

    # --- teardown ---------------------------------------------------------

    def read_log(self, name):
        path = os.path.join(self.workdir, name + ".log")
        if not os.path.exists(path):
            return []
        with open(path, errors="replace") as f:
            return f.readlines()

    def offender_log_lines(self):
        """For the first offending transfers: the participant sessions that
        ran them (with --trace: their statements up to PREPARE/COMMIT), and
        every log line that names their global ids."""
        offenders = getattr(self, "offenders", [])[:5]
        if not offenders:
            return
        logs = {name: self.read_log(name) for name in self.servers}

        def line_pid(line):
            parts = line.split(" ", 4)
            return parts[3] if len(parts) > 4 and parts[3].startswith("[") else None

        by_fxid = collections.defaultdict(list)
        for other in self.book.transfers.values():
            if other.fxid:
                by_fxid[other.fxid].append(other)

        for t in offenders:
            print("\n---- transfer %d: %s" % (t.tid, t.describe()))
            for other in by_fxid.get(t.fxid, []):
                if other is not t:
                    print("NOTE: coordinator xid %s was used again by transfer %d (%s, from %.1fs): "
                          "a transaction id reused after a coordinator crash"
                          % (t.fxid, other.tid, other.outcome, other.t_start))
            fxids = set([t.fxid] if t.fxid else [])
            if self.args.trace:
                for name in PARTICIPANTS:
                    lines = logs[name]
                    hit = next((i for i, line in enumerate(lines) if "'%d'" % t.tid in line), None)
                    if hit is None:
                        print("%s: no statement with transfer id %d" % (name, t.tid))
                        continue
                    pid = line_pid(lines[hit])
                    shown = 0
                    for line in lines[max(0, hit - 1):]:
                        if line_pid(line) != pid:
                            continue
                        sys.stdout.write("%s: %s" % (name, line))
                        fxids.update(re.findall(r"dtx_\d+_\d+_(\d+)_\d+_\d+_\d+", line))
                        shown += 1
                        if shown >= 14 or re.search(r"statement: (PREPARE TRANSACTION|COMMIT|ROLLBACK)", line):
                            break
            else:
                print("(replay with --trace for the statements of its participant sessions)")
            for fxid in sorted(fxids):
                pat = re.compile(r"dtx_\d+_\d+_%s_" % re.escape(fxid))
                print("---- log lines naming coordinator xid %s:" % fxid)
                for name in self.servers:
                    hits = [line for line in logs[name] if pat.search(line)]
                    for line in hits[:12]:
                        sys.stdout.write("%s: %s" % (name, line))

    def dump_logs(self, lines=60):
        if not self.workdir:
            return
        self.offender_log_lines()
        for name in list(self.servers) + ["proxy"]:
            path = os.path.join(self.workdir, name + ".log")
            if os.path.exists(path):
                print("\n---- %s (last %d lines) ----" % (path, lines))
                with open(path, errors="replace") as f:
                    for line in collections.deque(f, lines):
                        sys.stdout.write(line)
        sys.stdout.flush()

    def cleanup(self, keep):
        self.abort.set()
        self.stop_faults.set()
        self.stop_clients.set()
        for lane in self.lanes:
            if lane.is_alive():
                lane.join(30)
        for s in self.servers.values():
            s.resume()
        for cl in self.clients:
            try:
                if cl.conn is not None:
                    cl.conn.cancel()
            except psycopg2.Error:
                pass
        for s in self.servers.values():
            try:
                s.stop_fast()
            except Exception as e:
                say("could not stop %s: %s" % (s.name, e))
        if self.proxy:
            self.proxy.stop()
        if self.netns:
            self.netns.down()
        if self.workdir and os.path.isdir(self.workdir):
            if keep:
                say("work directory kept: %s" % self.workdir)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)


def async_fraction(text):
    try:
        f = fractions.Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError("not a fraction: %r" % text)
    if not 0 <= f <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1: %r" % text)
    return f


def parse_args():
    ap = argparse.ArgumentParser(description="pg_dtx fault-injection bank test")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--short", dest="mode", action="store_const", const="short")
    g.add_argument("--long", dest="mode", action="store_const", const="long")
    g.add_argument("--stress", dest="mode", action="store_const", const="stress")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--async-fraction", type=async_fraction, default=fractions.Fraction(1, 3),
                    help="share of the clients with dtx.synchronous_commit_prepared = off "
                         "(0..1, e.g. 1/3 or 0.5; default 1/3)")
    ap.add_argument("--all-async-share", type=async_fraction, default=fractions.Fraction(1, 3),
                    help="with faults, share of the time (in periods of %ds) in which every "
                         "client runs with dtx.synchronous_commit_prepared = off (0..1; default 1/3)"
                    % ALL_ASYNC_PERIOD)
    ap.add_argument("--duration", type=int, default=None)
    ap.add_argument("--clients", type=int, default=None)
    ap.add_argument("--port", type=int, default=int(os.environ.get("PG_DTX_FAULTS_PORT", "56400")))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-netns", action="store_true")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--bindir", default=os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
    args = ap.parse_args()
    if args.mode is None:
        args.mode = "short"
    if args.seed is None:
        # the short run (make test) is reproducible by default
        args.seed = 1 if args.mode == "short" else random.SystemRandom().randrange(1, 1_000_000)
    return args


def main():
    args = parse_args()
    h = Harness(args)
    replay = "test/faults/run.sh --%s --seed %d%s%s%s" % (
        args.mode, args.seed, (" --duration %d" % args.duration) if args.duration else "",
        (" --async-fraction %s" % args.async_fraction)
        if args.async_fraction != fractions.Fraction(1, 3) else "",
        (" --all-async-share %s" % args.all_async_share)
        if args.all_async_share != fractions.Fraction(1, 3) else "")
    banner("pg_dtx fault test: %s mode, seed %d" % (args.mode, args.seed))
    say("replay with: " + replay)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    passed, failed = 0, 0
    ok = False
    interrupted = False
    try:
        h.setup()
        h.run_workload()
        passed, failed = h.verdict()
        ok = failed == 0
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: cleaning up")
    except Exception as e:
        say("ERROR: %s" % e)
        traceback.print_exc(file=sys.stdout)
        failed = max(failed, 1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if not ok and not interrupted:
            print("\nFAILED: pg_dtx fault test, %s mode, seed %d. Replay: %s" % (args.mode, args.seed, replay))
            h.dump_logs()
        h.cleanup(keep=args.keep or (not ok and not interrupted))
    if interrupted:
        print("%d passed, %d failed" % (passed, max(failed, 1)))
        sys.exit(130)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
