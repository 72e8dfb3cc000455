"""Interpreter settings for conveyor's long-running processes (``serve`` and its intake process).

Called once the imports are done and before the first request:

* The logging HOWTO's "Optimization" settings: the JSON lines carry no source file, thread or
  process fields, and computing them was a third of the cost of each per-event line.
* ``gc.freeze()`` (Python's ``gc`` docs: "freeze all the objects tracked by gc ... ignore them
  for all future collections"): the imports leave ~160,000 tracked objects (Starlette, pydantic,
  the server clients), and every full collection walked them all. Under load such a collection
  stopped the event loop for 138 ms, the longest stalls behind the receiver's p99 (measured
  with ``gc.callbacks``). Objects made while serving are collected as before.
"""

from __future__ import annotations

import gc
import logging


def settle() -> int:
    """Apply the settings above; the number of objects frozen."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
