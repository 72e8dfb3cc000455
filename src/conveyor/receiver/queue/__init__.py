"""The durable event queue (the face of the package): one SQLite file (``<state>/receiver/events.db``) in WAL mode.

Durability promise: an event is answered 2xx only after its row is committed. The database
runs ``journal_mode=WAL`` with ``synchronous=FULL``: every commit fsyncs the WAL, so a
committed event survives a power loss or kernel crash, not only a killed process (``NORMAL``
would survive ``kill -9`` but may lose the last commits on power loss, which would break the
promise made by the 2xx). The cost of the fsync is paid once per *batch*: the
:class:`IntakeWriter` (on the server's event loop) sends every event waiting at that moment to
the intake process, which commits them in one transaction (group commit) before it replies,
and then acknowledges them all. Its connection never checkpoints (a checkpoint
fsyncs the database file and would stall acknowledgements); the :class:`Checkpointer`
thread does that in the background.

Workers, the status sender and operators open their connections with ``synchronous=NORMAL``:
in WAL mode their commits (claims, outcomes) survive a process crash without an fsync, and
become power-safe with the next ``FULL`` commit or checkpoint. A power loss can only roll
back the latest outcomes, and those events then run again: at least once, never lost.

Tables::

    events        one row per accepted delivery (dedupe, per project: unique idempotency_key,
                  and unique webhook_id for deliveries whose Standard Webhooks signature verified)
    deploy_locks  deploy target -> event holding it (lease-bound, so a crash frees it)
    status_outbox commit statuses to post to GitLab, in order (sent by the status sender)
    event_attempts one row per claim: who, when, how it ended (done, failed, retry, dead,
                  released, interrupted, lease expired) and what it found (``note``:
                  "followed build #3 started by an earlier attempt")

Event lifecycle::

    queued -> running -> done | failed            (failed: the build ran and failed)
       |         |-> queued (retry with backoff)  -> ... -> dead (retries exhausted)
       |         '-> queued (released on shutdown, lease expired after a crash)
       '-> superseded (a newer event in the same lane arrived while this one waited)
    ignored (stored with a reason, never run)

Modules: ``store`` (SQLite schema, migrations, connections, transactions, server lock,
checkpointer), ``records`` (the data), ``intake`` (the group-commit writer), ``events`` (insert,
claim, lease, finish, attempts, supersede, retention), ``outbox`` (commit statuses),
``compact`` (rewriting a stopped queue's file) and ``contract`` (what any store must keep, as
Protocols).
"""

from typing import TYPE_CHECKING

from conveyor.receiver.queue.contract import IntakeStore, QueueStore
from conveyor.receiver.queue.events import TARGETS_KEPT, EventQueue
from conveyor.receiver.queue.intake import (
    WORKER_OPS,
    BatchStore,
    IntakeWriter,
    Op,
    WriterQueue,
)
from conveyor.receiver.queue.intake_pipe import read_frame, write_frame
from conveyor.receiver.queue.outbox import StatusOutbox
from conveyor.receiver.queue.records import (
    FINAL,
    Accepted,
    Claim,
    Delivery,
    EventRecord,
    NewEvent,
    OutboxItem,
    Refusal,
    Status,
    StatusHead,
    StatusUpdate,
    short_ref,
)
from conveyor.receiver.queue.store import (
    SCHEMA_VERSION,
    Checkpointer,
    ServerLock,
    SQLiteStore,
    database_path,
    open_database,
)

if TYPE_CHECKING:  # mypy proves both stores keep the contract
    from conveyor.receiver.queue.pg_queue import PgQueue
    from conveyor.receiver.queue.postgres import PgBatchStore

    _queue_store: type[QueueStore] = EventQueue
    _intake_store: type[IntakeStore] = BatchStore
    _pg_queue_store: type[QueueStore] = PgQueue
    _pg_intake_store: type[IntakeStore] = PgBatchStore

__all__ = [
    "FINAL",
    "SCHEMA_VERSION",
    "TARGETS_KEPT",
    "WORKER_OPS",
    "Accepted",
    "BatchStore",
    "Checkpointer",
    "Claim",
    "Delivery",
    "EventQueue",
    "EventRecord",
    "IntakeStore",
    "IntakeWriter",
    "NewEvent",
    "Op",
    "OutboxItem",
    "QueueStore",
    "Refusal",
    "SQLiteStore",
    "ServerLock",
    "Status",
    "StatusHead",
    "StatusOutbox",
    "StatusUpdate",
    "WriterQueue",
    "database_path",
    "open_database",
    "read_frame",
    "short_ref",
    "write_frame",
]
