#!/usr/bin/python3
"""delay_proxy.py - a small TCP proxy for the pg_dtx fault test.

    delay_proxy.py --listen 127.0.0.1:PORT --target HOST:PORT \
                   --control FILE --pidfile FILE

Every connection accepted on --listen is forwarded to --target.  Both
directions go through a queue that holds each chunk of bytes until its due
time, so that the proxy adds latency without reordering anything.

Control (the fault test drives it with signals):
  SIGHUP   re-read the control file: one line "DELAY_MS JITTER_MS"; every
           chunk read from then on is held DELAY_MS plus a random 0..JITTER_MS
           (order is kept: a chunk is never sent before the previous one).
           "0 0" turns the delay off.
  SIGUSR1  cut every open connection at once with a TCP reset (as a broken
           network would), on both sides.
  SIGTERM  exit.

It only ever listens on and connects to the addresses it is given (loopback
in the fault test).
"""

import argparse
import collections
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

delay_ms = 0.0
jitter_ms = 0.0
control_file = None
conns_lock = threading.Lock()
conns = set()           # open Pipe objects


def log(msg):
    sys.stderr.write("%s delay_proxy[%d]: %s\n"
                     % (time.strftime("%H:%M:%S"), os.getpid(), msg))
    sys.stderr.flush()


def close_socket(sock, reset=False):
    """Close sock for good, also while another thread is blocked in recv()
    on it (close() alone would leave the connection open until that call
    returns, which may be never).  With reset, the peer gets a RST (SO_LINGER
    0) instead of a FIN."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # wakes the blocked readers without sending anything
            sock.shutdown(socket.SHUT_RD)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def hard_close(sock):
    close_socket(sock, reset=True)


class Direction:
    """One direction of a connection: a reader fills the queue, a writer
    empties it when each chunk is due."""

    def __init__(self, pipe, src, dst):
        self.pipe = pipe
        self.src = src
        self.dst = dst
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.last_due = 0.0

    def reader(self):
        try:
            while True:
                data = self.src.recv(65536)
                now = time.monotonic()
                due = now
                if delay_ms > 0 or jitter_ms > 0:
                    due = now + (delay_ms + random.uniform(0, jitter_ms)) / 1000.0
                due = max(due, self.last_due)
                self.last_due = due
                with self.cond:
                    self.queue.append((due, data))
                    self.cond.notify()
                if not data:
                    return
        except OSError:
            self.pipe.close()

    def writer(self):
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.pipe.closed:
                        self.cond.wait(0.5)
                    if self.pipe.closed:
                        return
                    due, data = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self.cond:
                    self.queue.popleft()
                if not data:
                    try:
                        self.dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    self.pipe.half_closed()
                    return
                self.dst.sendall(data)
        except OSError:
            self.pipe.close()


class Pipe:
    def __init__(self, client, server):
        self.client = client
        self.server = server
        self.closed = False
        self.halves = 0
        self.lock = threading.Lock()
        self.dirs = [Direction(self, client, server), Direction(self, server, client)]

    def start(self):
        with conns_lock:
            conns.add(self)
        for d in self.dirs:
            threading.Thread(target=d.reader, daemon=True).start()
            threading.Thread(target=d.writer, daemon=True).start()

    def half_closed(self):
        with self.lock:
            self.halves += 1
            done = self.halves == 2
        if done:
            self.close()

    def close(self, reset=False):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        with conns_lock:
            conns.discard(self)
        for s in (self.client, self.server):
            close_socket(s, reset)
        for d in self.dirs:
            with d.cond:
                d.cond.notify_all()


def read_control():
    global delay_ms, jitter_ms
    try:
        with open(control_file) as f:
            parts = f.read().split()
        delay_ms = float(parts[0]) if parts else 0.0
        jitter_ms = float(parts[1]) if len(parts) > 1 else 0.0
    except (OSError, ValueError) as e:
        log("cannot read %s: %s" % (control_file, e))
        return
    log("delay now %.0f ms + up to %.0f ms jitter" % (delay_ms, jitter_ms))


def cut_all():
    with conns_lock:
        victims = list(conns)
    for p in victims:
        p.close(reset=True)
    log("cut %d connection(s)" % len(victims))


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def main():
    global control_file
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, type=hostport)
    ap.add_argument("--target", required=True, type=hostport)
    ap.add_argument("--control", required=True)
    ap.add_argument("--pidfile", required=True)
    args = ap.parse_args()
    control_file = args.control

    # Signals only set flags; the main loop acts on them (a handler must not
    # take the locks that the interrupted code may hold).
    pending = {"hup": False, "cut": False, "stop": False}

    def on_signal(signum, frame):
        if signum == signal.SIGHUP:
            pending["hup"] = True
        elif signum == signal.SIGUSR1:
            pending["cut"] = True
        else:
            pending["stop"] = True

    for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(args.listen)
    lsock.listen(128)
    lsock.settimeout(0.2)
    read_control()
    with open(args.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(args.pidfile + ".tmp", args.pidfile)
    log("listening on %s:%d, forwarding to %s:%d" % (args.listen + args.target))

    while not pending["stop"]:
        if pending["hup"]:
            pending["hup"] = False
            read_control()
        if pending["cut"]:
            pending["cut"] = False
            cut_all()
        try:
            client, _ = lsock.accept()
        except socket.timeout:
            continue
        except OSError as e:
            log("accept: %s" % e)
            continue
        try:
            server = socket.create_connection(args.target, timeout=5)
            server.settimeout(None)
        except OSError as e:
            log("connect to target: %s" % e)
            hard_close(client)
            continue
        client.settimeout(None)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Pipe(client, server).start()
    cut_all()
    log("stopped")


if __name__ == "__main__":
    main()
