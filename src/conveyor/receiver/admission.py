"""A verified delivery turned into the row to store: routed (queued, in its lane) or ignored.

:meth:`Admission.admit` is pure: it reads the payload, asks the router, and returns the
:class:`NewEvent` to store or a :class:`Refusal` (a payload that fails a check: 400). It runs
where the delivery is cheapest to route:

* in the **intake process**, for the deliveries the event loop parsed itself (bodies up to
  ``app.INLINE_PARSE_BYTES``): the loop sends the raw :class:`Delivery` and the intake process
  parses and routes it before it commits it. The loop is the receiver's one busy thread;
  routing was a fifth of its time a delivery (bench/RESULTS.md), the intake process has a core
  of its own. It routes with a replica of the serving process's router (:class:`RoutingSetup`:
  the specs, the project ids learnt so far, the dispatcher's job links), sent again by the
  intake writer whenever a project id is learnt (:class:`RoutingFeed`), before the batch of the
  delivery that taught it;
* in the **serving process**, for larger bodies, already parsed on a thread there: parsing them
  again in the intake process would hold up every other delivery's commit.

Either way the same function decides, so a delivery is stored the same wherever it was routed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from conveyor.gitlab.events import PayloadError, header_kind, parse_event, project_path_of
from conveyor.gitlab.status import CommitState, status_target
from conveyor.receiver.queue import Delivery, NewEvent, Refusal, Status, StatusUpdate, short_ref
from conveyor.receiver.routing import Ignore, ProjectIds, Router
from conveyor.spec.model import Spec


@dataclass(frozen=True)
class RoutingSetup:
    """What the intake process routes with (pickled to it): a replica of the router."""

    specs: tuple[Spec, ...]
    ids: dict[int, str | None]  # ProjectIds.snapshot()
    job_urls: dict[str, str | None]  # by spec project (lower-case); empty without statuses
    post_statuses: bool


class Admission:
    """Routes verified deliveries (see the module docstring)."""

    def __init__(
        self,
        router: Router,
        *,
        post_statuses: bool,
        job_url: Callable[[Spec], str | None],
    ) -> None:
        self.router = router
        self.post_statuses = post_statuses
        self.job_url = job_url

    @classmethod
    def replica(cls, setup: RoutingSetup) -> Admission:
        """The intake process's: routes as the serving process whose setup this is."""
        urls = setup.job_urls
        return cls(
            Router(setup.specs, ProjectIds.of(setup.ids)),
            post_statuses=setup.post_statuses,
            job_url=lambda spec: urls.get(spec.project.lower()),
        )

    def admit(
        self, delivery: Delivery, payload: Mapping[str, Any] | None = None
    ) -> NewEvent | Refusal:
        """The row to store for ``delivery`` (its body parsed here unless ``payload`` is given).

        Raises ``orjson.JSONDecodeError`` for a body that is not JSON: the serving process sends
        only bodies it parsed itself.
        """
        if payload is None:
            payload = orjson.loads(delivery.body)
        if not isinstance(payload, Mapping):
            raise TypeError("a delivery's body must be a JSON object")
        event_header = delivery.event_header
        common: dict[str, Any] = {
            "event_header": event_header,
            "body": delivery.body,
            "received_at": delivery.received_at,
            "idempotency_key": delivery.idempotency_key,
            "delivery_uuid": delivery.delivery_uuid,
            "webhook_id": delivery.webhook_id,
            "project": project_path_of(payload),
        }
        if header_kind(event_header) is None:
            return NewEvent(
                status=Status.IGNORED,
                reason=f"event kind {event_header[:60]!r} not handled",
                **common,
            )
        try:
            event = parse_event(event_header, payload)
        except PayloadError as exc:
            return Refusal("payload", str(exc))
        common.update(
            kind=event.kind.value, project=event.project_path, ref=event.ref, sha=event.sha
        )
        decision = self.router.decide(event)
        if isinstance(decision, Ignore):
            return NewEvent(status=Status.IGNORED, reason=decision.reason, **common)
        target = status_target(event)
        pending = None
        if self.post_statuses:
            pending = StatusUpdate(
                CommitState.PENDING,
                "queued by conveyor",
                self.job_url(decision.spec),
                target=target,
            )
        return NewEvent(
            status=Status.QUEUED,
            status_ref=short_ref(event.ref),
            lane=decision.lane,
            deploy_targets=decision.deploy_targets,
            pending_status=pending,
            status_target=target,
            merged=event.merged,
            **common,
        )


class RoutingFeed:
    """The serving process's routing as the intake writer sends it: :meth:`setup`, again
    whenever :attr:`version` changes (a project id was learnt)."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._specs = admission.router.specs
        job_urls: dict[str, str | None] = {}
        if admission.post_statuses:
            job_urls = {spec.project.lower(): admission.job_url(spec) for spec in self._specs}
        self._job_urls = job_urls

    @property
    def version(self) -> int:
        return self._admission.router.ids.version

    def setup(self) -> RoutingSetup:
        return RoutingSetup(
            specs=self._specs,
            ids=self._admission.router.ids.snapshot(),
            job_urls=self._job_urls,
            post_statuses=self._admission.post_statuses,
        )
