#!/usr/bin/env python3
"""An outsider on the network against a running job's tcp-transport ports.

    flood.py PORT [PORT...] --idle N --garbage-seconds S

Opens N idle connections spread over the ports (they never send a byte),
and for S seconds keeps opening connections that send garbage or a forged
HELLO header and linger. Prints what it managed: connections opened,
refused or reset, garbage connections made. Exits 0 (it measures; the
calling test judges the job).
"""
import argparse
import os
import random
import resource
import socket
import struct
import time


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(True)
    s.settimeout(2.0)
    s.connect(("127.0.0.1", port))
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ports", type=int, nargs="+")
    ap.add_argument("--idle", type=int, default=20000)
    ap.add_argument("--garbage-seconds", type=float, default=5.0)
    args = ap.parse_args()
    limit = raise_fd_limit(args.idle + 256)
    idle, opened, failed = [], 0, 0
    for i in range(min(args.idle, limit - 128)):
        try:
            idle.append(connect(args.ports[i % len(args.ports)]))
            opened += 1
        except OSError:
            failed += 1
    rng = random.Random(7)
    garbage, resets = 0, 0
    end = time.time() + args.garbage_seconds
    while time.time() < end:
        port = rng.choice(args.ports)
        try:
            s = connect(port)
            if rng.random() < 0.5:
                s.sendall(os.urandom(rng.randint(1, 200)))
            else:
                # A well-formed header of the wrong kind, or a HELLO that
                # claims rank 0 of a 4-rank job with a made-up session.
                s.sendall(struct.pack("<BBHI", 9, 0, 0, 0) + os.urandom(48))
            garbage += 1
            s.close()
        except OSError:
            resets += 1
    still = 0
    for s in idle:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                pass  # closed by the rank (HELLO timeout): expected
            else:
                still += 1
        except BlockingIOError:
            still += 1  # still open
        except OSError:
            pass
        s.close()
    print(f"flood: idle opened {opened}, failed {failed}; garbage connections {garbage}, "
          f"refused/reset {resets}; idle connections still open at the end {still}")


if __name__ == "__main__":
    main()
