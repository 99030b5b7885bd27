#!/usr/bin/python3
"""delay_proxy.py - a TCP proxy that adds a fixed one-way delay (pg_dtx benchmark).

    delay_proxy.py --listen 127.0.0.1:PORT --target 127.0.0.1:PORT --delay-ms 0.5
                   [--pidfile FILE]

Every connection accepted on --listen is forwarded to --target.  Every chunk
of bytes, in either direction, is held --delay-ms after it was read before it
is written on, in order: a round trip through the proxy costs 2 x delay more
than a direct one (plus the proxy's own few tens of microseconds).

Threads and time.sleep() (nanosleep) rather than asyncio: an event loop waits
in epoll with a millisecond granularity, too coarse for half a millisecond.
Standard library only.  Listens on and connects to the given addresses only.
"""

import argparse
import collections
import os
import signal
import socket
import sys
import threading
import time


def log(msg):
    sys.stderr.write("delay_proxy[%d]: %s\n" % (os.getpid(), msg))
    sys.stderr.flush()


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Direction:
    """One direction of a connection: a reader thread queues chunks with
    their due time, a writer thread sends each one when it is due."""

    def __init__(self, src, dst, delay, on_close):
        self.src = src
        self.dst = dst
        self.delay = delay
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.eof = False
        self.on_close = on_close

    def start(self):
        threading.Thread(target=self.read_loop, daemon=True).start()
        threading.Thread(target=self.write_loop, daemon=True).start()

    def read_loop(self):
        try:
            while True:
                data = self.src.recv(65536)
                if not data:
                    break
                with self.cond:
                    self.queue.append((time.monotonic() + self.delay, data))
                    self.cond.notify()
        except OSError:
            pass
        with self.cond:
            self.eof = True
            self.cond.notify()

    def write_loop(self):
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.eof:
                        self.cond.wait()
                    if not self.queue:
                        break
                    due, data = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.dst.sendall(data)
        except OSError:
            pass
        self.on_close()


def serve(client, target, delay):
    try:
        upstream = socket.create_connection(target)
    except OSError as e:
        log("cannot connect to %s:%d: %s" % (target[0], target[1], e))
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    lock = threading.Lock()
    closed = [0]

    def on_close():
        # either direction ending ends the connection (PostgreSQL's protocol
        # has no half-closed state worth keeping)
        with lock:
            closed[0] += 1
            first = closed[0] == 1
        shut(client)
        shut(upstream)
        if not first:
            client.close()
            upstream.close()

    Direction(client, upstream, delay, on_close).start()
    Direction(upstream, client, delay, on_close).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--pidfile")
    args = ap.parse_args()

    listen = parse_addr(args.listen)
    target = parse_addr(args.target)
    delay = args.delay_ms / 1000.0

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(listen)
    srv.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    log("%s:%d -> %s:%d, %.3f ms each way" % (listen + target + (args.delay_ms,)))
    while True:
        client, _ = srv.accept()
        serve(client, target, delay)


if __name__ == "__main__":
    main()
