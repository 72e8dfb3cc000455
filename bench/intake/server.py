"""The receiver under test: ``conveyor serve``'s own setup, optionally answering without storing.

    python bench/intake/server.py --port 18080 --state DIR [--no-store]

``--no-store`` is the baseline: the same app (verification, parsing, routing, the same JSON
answer) but nothing is written to SQLite and nothing is dispatched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from conveyor.cli.serve import build_receiver, run_server
from conveyor.receiver.logs import setup_logging

SPEC = Path(__file__).with_name("spec.yml")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-store", action="store_true")
    args = parser.parse_args()
    setup_logging("warning")
    receiver = build_receiver(
        (SPEC,),
        state=args.state,
        dispatch="none",
        workers=args.workers,
        max_body=5 * 1024 * 1024,
        require_signature=False,
        store=not args.no_store,
    )
    run_server(receiver, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
