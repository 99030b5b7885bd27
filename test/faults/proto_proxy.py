#!/usr/bin/python3
"""proto_proxy.py - a PostgreSQL protocol-aware proxy for the failure matrix.

    proto_proxy.py --listen 127.0.0.1:PORT --target /socket/dir/.s.PGSQL.N
                   --control /path/control.sock [--pidfile FILE]

Every connection accepted on --listen is forwarded to --target (a Unix
socket path, or HOST:PORT).  The proxy follows the frontend protocol (the
startup packet, then typed messages: 'Q' simple query, 'P' Parse, 'B' Bind,
'E' Execute, 'S' Sync, ...) and the backend's answers, so that it can act on
exactly one command of pg_dtx's commit protocol.  Bytes are never reordered;
a connection no rule acts on is forwarded unchanged.

Commands are recognised by the SQL text of a 'Q' or 'P' message:
    begin              BEGIN ISOLATION LEVEL ... (pipelined with the first
                       statement on a participant)
    probe              SELECT pg_catalog.pg_current_xact_id_if_assigned() ...
    prepare            PREPARE TRANSACTION '...'
    commit             COMMIT (one-phase commit, or a reader's commit)
    commit_prepared    COMMIT PREPARED '...'
    rollback_prepared  ROLLBACK PREPARED '...'
    listing            the resolver's SELECT gid FROM pg_catalog.pg_prepared_xacts
    re:REGEX           any other text

Actions:
    cut           the command never reaches the participant: both sides of
                  the connection are closed (the client's with a reset)
    hold          the command, and everything after it from the client, is
                  held until "release" (then forwarded, in order; a client
                  that went away meanwhile is seen after that, as a delayed
                  packet followed by a FIN would be) or "drop" (cut)
    drop_answer   the command runs; its answer (every backend message up to
                  its ReadyForQuery) is discarded and both sides are closed
    hold_answer   the command runs; its answer is held until "release"
                  (forwarded) or "drop" (discarded, both sides closed)

Control: a Unix socket, one line per request, one line per answer.
    rule CMD ACTION [nth=N] [times=once|always] [app=PREFIX]
                  act on the N-th matching command (default 1) and, with
                  times=always, on every later one; app= restricts the rule
                  to connections whose application_name starts with PREFIX
                  -> "ok RULE_ID"
    clear         forget every rule                     -> "ok"
    release       forward everything held               -> "ok N" (holds released)
    drop          cut every connection holding something -> "ok N"
    status        -> "held=N conns=N fired=N matched=N"  (fired: actions taken;
                  matched: commands that matched a rule, acted on or not)
Every action is logged on stderr with the connection number.  The proxy
exits on SIGTERM, and by itself when the process that started it is gone.
"""

import argparse
import os
import re
import signal
import socket
import struct
import sys
import threading
import time

COMMANDS = {
    "begin": r"^\s*BEGIN ISOLATION LEVEL",
    "probe": r"pg_current_xact_id_if_assigned\(\) IS NOT NULL",
    "prepare": r"PREPARE TRANSACTION '",
    "commit": r"(^|;)\s*COMMIT\s*$",
    "commit_prepared": r"^\s*COMMIT PREPARED '",
    "rollback_prepared": r"^\s*ROLLBACK PREPARED '",
    "listing": r"FROM pg_catalog\.pg_prepared_xacts",
}
ACTIONS = ("cut", "hold", "drop_answer", "hold_answer")

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

lock = threading.Condition()
rules = []              # dicts: id, regex, action, nth, always, app, seen
rule_seq = 0
conns = set()
holds = set()           # Hold objects not yet released or dropped
fired = 0
matched = 0


def log(msg):
    sys.stderr.write("%s proto_proxy[%d]: %s\n"
                     % (time.strftime("%H:%M:%S"), os.getpid(), msg))
    sys.stderr.flush()


class Hold:
    """Something held on one connection until release or drop."""

    def __init__(self, conn, what):
        self.conn = conn
        self.what = what
        self.state = "held"     # then "released" or "dropped"

    def wait(self):
        """Blocks until released or dropped (or the connection closed);
        True when released."""
        with lock:
            holds.add(self)
            lock.notify_all()
            while self.state == "held" and not self.conn.closed:
                lock.wait(0.5)
            holds.discard(self)
            return self.state == "released"


def match_rule(conn, text):
    """The action of the first rule text triggers on conn, or None.
    Called with the lock held."""
    global fired, matched
    for r in rules:
        if r["app"] is not None and not conn.appname.startswith(r["app"]):
            continue
        if not r["regex"].search(text):
            continue
        r["seen"] += 1
        matched += 1
        if r["seen"] < r["nth"] or (r["seen"] > r["nth"] and not r["always"]):
            continue
        fired += 1
        return r["action"]
    return None


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class Conn:
    def __init__(self, num, client, server):
        self.num = num
        self.client = client
        self.server = server
        self.closed = False
        self.appname = ""
        self.raw = False            # protocol not followed (TLS, cancel)
        self.single_bytes = 0       # answers to SSL/GSS requests to pass
        self.units_sent = 0         # 'Q' and 'S' messages forwarded
        self.answer_rules = {}      # unit number -> drop_answer | hold_answer
        self.cond = threading.Condition()
        self.startup_done = threading.Event()

    def close(self, reset=False):
        """Closes both sides (idempotent); with reset, the client gets an
        RST.  Wakes the threads blocked on either socket."""
        with lock:
            if self.closed:
                return
            self.closed = True
            conns.discard(self)
            lock.notify_all()
        for sock, rst in ((self.server, False), (self.client, reset)):
            try:
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def cut(self, why):
        log("conn %d: cut (%s)" % (self.num, why))
        self.close(reset=True)

    # --- client -> server ------------------------------------------------

    def frontend(self):
        try:
            self._frontend()
        except OSError:
            pass
        finally:
            # the client went away: the server sees the end of the stream
            # after everything forwarded
            if not self.closed:
                try:
                    self.server.shutdown(socket.SHUT_WR)
                except OSError:
                    self.close()

    def _frontend(self):
        c = self.client
        # startup: SSL / GSS requests (answered by one byte), then the
        # startup message or a cancel request
        while True:
            head = read_exact(c, 8)
            if head is None:
                return
            length, code = struct.unpack("!ii", head)
            body = read_exact(c, length - 8) if length > 8 else b""
            if body is None:
                return
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                with self.cond:
                    self.single_bytes += 1
                self.server.sendall(head + body)
                # the answer decides whether the protocol stays readable
                self.startup_done.wait()
                self.startup_done.clear()
                if self.raw:
                    break
                continue
            if code == CANCEL_REQUEST:
                self.raw = True
                self.server.sendall(head + body)
                break
            parts = body.split(b"\0")
            for i in range(0, len(parts) - 1, 2):
                if parts[i] == b"application_name":
                    self.appname = parts[i + 1].decode("utf-8", "replace")
            self.server.sendall(head + body)
            break
        if self.raw:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                self.server.sendall(data)

        buf = b""
        while True:
            data = c.recv(65536)
            if not data:
                if buf:
                    self.server.sendall(buf)
                return
            buf += data
            out = bytearray()
            pos = 0
            while len(buf) - pos >= 5:
                mtype = buf[pos:pos + 1]
                length = struct.unpack("!i", buf[pos + 1:pos + 5])[0]
                end = pos + 1 + length
                if len(buf) < end:
                    break
                msg = buf[pos:end]
                action = None
                text = None
                if mtype == b"Q":
                    text = msg[5:].split(b"\0", 1)[0]
                elif mtype == b"P":
                    text = msg[5:].split(b"\0", 2)[1]
                if text is not None:
                    text = text.decode("utf-8", "replace")
                    with lock:
                        action = match_rule(self, text)
                if action is None:
                    out += msg
                    if mtype in (b"Q", b"S"):
                        self.units_sent += 1
                    pos = end
                    continue

                # act on this message
                log("conn %d (%s): %s on %r" % (self.num, self.appname, action, text[:60]))
                if out:
                    self.server.sendall(bytes(out))
                    out = bytearray()
                if action == "cut":
                    self.cut("before " + text[:40])
                    return
                if action == "hold":
                    if not Hold(self, text).wait():
                        self.cut("held command dropped")
                        return
                    log("conn %d: released %r" % (self.num, text[:40]))
                    if self.closed:
                        return
                    out += msg
                    if mtype in (b"Q", b"S"):
                        self.units_sent += 1
                    pos = end
                    continue
                # drop_answer / hold_answer: the answer of the unit this
                # message belongs to (ended by the next 'Q' or 'S')
                with self.cond:
                    self.answer_rules[self.units_sent + 1] = action
                out += msg
                if mtype in (b"Q", b"S"):
                    self.units_sent += 1
                pos = end
            buf = buf[pos:]
            if out:
                self.server.sendall(bytes(out))

    # --- server -> client ------------------------------------------------

    def backend(self):
        try:
            self._backend()
        except OSError:
            pass
        finally:
            self.close()

    def _backend(self):
        s = self.server
        buf = b""
        unit = 0                # the startup's answer ends with ReadyForQuery 0
        held = bytearray()      # the answer being dropped or held
        while True:
            data = s.recv(65536)
            if not data:
                return
            buf += data
            with self.cond:
                while self.single_bytes > 0 and buf:
                    self.single_bytes -= 1
                    answer = buf[:1]
                    buf = buf[1:]
                    self.client.sendall(answer)
                    if answer != b"N":
                        self.raw = True
                    self.startup_done.set()
            if self.raw:
                if buf:
                    self.client.sendall(buf)
                while True:
                    data = s.recv(65536)
                    if not data:
                        return
                    self.client.sendall(data)
            out = bytearray()
            pos = 0
            while len(buf) - pos >= 5:
                mtype = buf[pos:pos + 1]
                length = struct.unpack("!i", buf[pos + 1:pos + 5])[0]
                end = pos + 1 + length
                if len(buf) < end:
                    break
                msg = buf[pos:end]
                pos = end
                with self.cond:
                    action = self.answer_rules.get(unit)
                if action is None:
                    out += msg
                    if mtype == b"Z":
                        unit += 1
                    continue
                held += msg
                if mtype != b"Z":
                    continue
                # the whole answer of the unit is here
                if out:
                    self.client.sendall(bytes(out))
                    out = bytearray()
                if action == "drop_answer":
                    self.cut("answer of unit %d dropped" % unit)
                    return
                log("conn %d: answer of unit %d held" % (self.num, unit))
                if not Hold(self, "answer").wait():
                    self.cut("held answer dropped")
                    return
                log("conn %d: answer of unit %d released" % (self.num, unit))
                out += held
                held = bytearray()
                unit += 1
            buf = buf[pos:]
            if out:
                self.client.sendall(bytes(out))


def serve_control(path):
    global rule_seq, fired, matched
    if os.path.exists(path):
        os.unlink(path)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(path)
    ctl.listen(8)
    while True:
        s, _ = ctl.accept()
        f = s.makefile("rw")
        for line in f:
            words = line.split()
            if not words:
                continue
            try:
                answer = control(words)
            except (ValueError, KeyError, re.error) as e:
                answer = "error %s" % e
            f.write(answer + "\n")
            f.flush()
        f.close()
        s.close()


def control(words):
    global rule_seq
    cmd = words[0]
    if cmd == "rule":
        name, action = words[1], words[2]
        if action not in ACTIONS:
            raise ValueError("unknown action " + action)
        pattern = name[3:] if name.startswith("re:") else COMMANDS[name]
        opts = dict(w.split("=", 1) for w in words[3:])
        with lock:
            rule_seq += 1
            rules.append({
                "id": rule_seq, "regex": re.compile(pattern), "action": action,
                "nth": int(opts.get("nth", "1")),
                "always": opts.get("times", "once") == "always",
                "app": opts.get("app"), "seen": 0})
        log("rule %d: %s" % (rule_seq, " ".join(words[1:])))
        return "ok %d" % rule_seq
    if cmd == "clear":
        with lock:
            rules.clear()
        return "ok"
    if cmd in ("release", "drop"):
        with lock:
            n = 0
            for h in list(holds):
                if h.state == "held":
                    h.state = "released" if cmd == "release" else "dropped"
                    n += 1
            lock.notify_all()
        log("%s: %d hold(s)" % (cmd, n))
        return "ok %d" % n
    if cmd == "status":
        with lock:
            return "held=%d conns=%d fired=%d matched=%d" % (
                sum(1 for h in holds if h.state == "held"), len(conns), fired, matched)
    raise ValueError("unknown request " + cmd)


def connect_target(target):
    if target.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(target)
    else:
        host, port = target.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    return s


def watch_parent():
    """Exits once the process that started the proxy is gone (a test that
    died without stopping it)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1)
    log("parent %d gone: exiting" % parent)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--pidfile")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    host, port = args.listen.rsplit(":", 1)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, int(port)))
    lsock.listen(64)
    threading.Thread(target=serve_control, args=(args.control,), daemon=True).start()
    threading.Thread(target=watch_parent, daemon=True).start()
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    log("listening on %s, forwarding to %s, control %s"
        % (args.listen, args.target, args.control))
    num = 0
    while True:
        client, _ = lsock.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server = connect_target(args.target)
        except OSError as e:
            log("cannot connect to %s: %s" % (args.target, e))
            client.close()
            continue
        num += 1
        conn = Conn(num, client, server)
        with lock:
            conns.add(conn)
        threading.Thread(target=conn.frontend, daemon=True).start()
        threading.Thread(target=conn.backend, daemon=True).start()


if __name__ == "__main__":
    main()
