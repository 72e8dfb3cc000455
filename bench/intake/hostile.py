"""Hostile senders for the intake bench: unauthenticated 5 MB deliveries, looping.

    python bench/intake/hostile.py --port P --senders 4 --size 5000000 --duration 12

Each sender opens a connection, sends a well-formed GitLab push of ``--size`` bytes with a
wrong ``X-Gitlab-Token``, reads the answer (401 expected), and starts again, until the
duration is over. Prints one JSON line: requests sent and the answers' status counts.

The project comes first, as GitLab writes it (the receiver refuses such a body once 64 KB of
it are in); ``--padded`` puts the filler before it instead, the attacker who knows that rule:
that body must be read whole before it can be refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections import Counter


def body(size: int, *, padded: bool = False) -> bytes:
    project = b'"project": {"path_with_namespace": "bench/app"}'
    if padded:
        head = b'{"object_kind": "push", "ref": "refs/heads/main", "message": "'
        tail = b'", ' + project + b"}"
    else:
        head = (
            b'{"object_kind": "push", "ref": "refs/heads/main", '
            + project
            + b', "commits": [{"message": "'
        )
        tail = b'"}]}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def sender(
    port: int, payload: bytes, deadline: float, counts: Counter[int], lock: threading.Lock
) -> None:
    request = (
        "POST /hooks/gitlab HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "X-Gitlab-Event: Push Hook\r\nX-Gitlab-Token: not-the-token\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    while time.monotonic() < deadline:
        status = 0
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                # answered and closed before the whole body was sent: read the answer
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(request)
                status = int(sock.recv(64).split(b" ", 2)[1])
        except (OSError, ValueError, IndexError):
            status = -1
        with lock:
            counts[status] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--size", type=int, default=5_000_000)
    parser.add_argument("--duration", type=float, default=12.0)
    parser.add_argument("--padded", action="store_true", help="the project after the filler")
    args = parser.parse_args()
    payload = body(args.size, padded=args.padded)
    counts: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + args.duration
    threads = [
        threading.Thread(target=sender, args=(args.port, payload, deadline, counts, lock))
        for _ in range(args.senders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"hostile_requests": sum(counts.values()), "statuses": dict(counts)}))


if __name__ == "__main__":
    main()
