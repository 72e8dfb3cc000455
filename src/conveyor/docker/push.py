"""Push a build's tags to their registry with credentials from :mod:`conveyor.docker.credentials`.

Logs in first (so a wrong password or an unreachable registry fails before any layer moves, with a
:class:`~conveyor.errors.RegistryError` naming the registry and never the password), then pushes
every tag, reporting per-layer progress as :class:`PushEvent` and the digest the registry returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import docker
import requests.exceptions

from conveyor.docker.credentials import RegistryAuth, find_auth
from conveyor.docker.engine import local_client
from conveyor.docker.images import parse_ref
from conveyor.errors import RegistryError
from conveyor.masking import mask


@dataclass(frozen=True)
class PushEvent:
    """Progress of one push. ``layer`` is "" for messages about the whole tag.

    kinds: ``layer`` (a layer's status: Preparing, Waiting, Pushing, Pushed, Layer already exists;
    ``current``/``total`` bytes while pushing), ``note`` (conveyor's own remark, e.g. logged in).
    """

    kind: Literal["layer", "note"]
    tag: str
    layer: str
    status: str
    current: int = 0
    total: int = 0


PushCallback = Callable[[PushEvent], None]


def progress_line(event: PushEvent) -> str | None:
    """``event`` as one plain line (the runner's stage log, ``conveyor push`` without a terminal);
    None for the byte counts of a layer being pushed."""
    if event.kind == "note":
        return f"conveyor: {event.status}"
    if event.status == "Pushing":
        return None
    return f"{event.tag} {event.layer}: {event.status}" if event.layer else event.status


@dataclass(frozen=True)
class PushedTag:
    reference: str
    digest: str  # sha256:... of the manifest, as the registry reported it
    size: int


@dataclass(frozen=True)
class PushResult:
    registry: str
    pushed: tuple[PushedTag, ...]
    credentials: str  # where the credentials came from ("" when anonymous); never the secret

    exit_code = 0  # a failed push raises RegistryError

    def to_json(self) -> dict[str, object]:
        return {
            "registry": self.registry,
            "credentials": self.credentials,
            "pushed": [
                {"reference": p.reference, "digest": p.digest, "size": p.size} for p in self.pushed
            ],
        }

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        return [f"pushed {p.reference}@{p.digest}" for p in self.pushed]


def _scrub(text: str, auth: RegistryAuth | None) -> str:
    return mask(text, [auth.password]) if auth is not None and auth.password else text


def _registry_error(
    registry: str, action: str, detail: str, auth: RegistryAuth | None
) -> RegistryError:
    detail = _scrub(detail.strip(), auth)
    lowered = detail.lower()
    if any(
        w in lowered
        for w in ("unauthorized", "401", "authentication required", "no basic auth credentials")
    ):
        who = f"as {auth.username!r} (from {auth.origin})" if auth else "anonymously"
        hint = (
            "check the username/password"
            if auth
            else "set CONVEYOR_REGISTRY_USER/CONVEYOR_REGISTRY_PASSWORD or `docker login` it"
        )
        return RegistryError(f"registry {registry} refused {action} {who}: {detail}", hint=hint)
    if any(
        w in lowered for w in ("connection refused", "no such host", "timeout", "dial tcp", "eof")
    ):
        return RegistryError(
            f"registry {registry} is unreachable ({action}): {detail}",
            hint="check the registry address and that it is running",
        )
    return RegistryError(f"registry {registry}: {action} failed: {detail}")


def login(client: docker.DockerClient, registry: str, auth: RegistryAuth) -> None:
    """Check ``auth`` against ``registry`` through the engine. Raises RegistryError."""
    try:
        client.api.login(
            username=auth.username,
            password=auth.password,
            registry=registry,
            reauth=True,
        )
    except docker.errors.APIError as exc:
        raise _registry_error(registry, "the login", str(exc.explanation or exc), auth) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _registry_error(registry, "the login", str(exc), auth) from None


def _push_one(
    client: docker.DockerClient,
    reference: str,
    auth: RegistryAuth | None,
    on_event: PushCallback | None,
) -> PushedTag:
    ref = parse_ref(reference)
    digest, size = "", 0
    try:
        stream: Iterable[dict[str, Any]] = client.api.push(
            ref.name,
            tag=ref.tag,
            stream=True,
            decode=True,
            auth_config=auth.auth_config() if auth else None,
        )
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                raise _registry_error(
                    ref.registry or "docker.io", f"the push of {reference}", str(detail), auth
                )
            aux = chunk.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                digest, size = aux["Digest"], int(aux.get("Size") or 0)
                continue
            status = chunk.get("status")
            if not isinstance(status, str) or on_event is None:
                continue
            progress = chunk.get("progressDetail") or {}
            on_event(
                PushEvent(
                    "layer",
                    reference,
                    str(chunk.get("id") or ""),
                    status,
                    int(progress.get("current") or 0),
                    int(progress.get("total") or 0),
                )
            )
    except docker.errors.ImageNotFound:
        raise RegistryError(
            f"cannot push {reference}: no such image here", hint="build it first (`conveyor build`)"
        ) from None
    except docker.errors.APIError as exc:
        raise _registry_error(
            ref.registry or "docker.io",
            f"the push of {reference}",
            str(exc.explanation or exc),
            auth,
        ) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise _registry_error(
            ref.registry or "docker.io", f"the push of {reference}", str(exc), auth
        ) from None
    if not digest:
        raise RegistryError(f"registry {ref.registry}: the push of {reference} reported no digest")
    return PushedTag(reference, digest, size)


def push_tags(
    client: docker.DockerClient,
    tags: Sequence[str],
    *,
    registry: str | None = None,
    auth: RegistryAuth | None = None,
    on_event: PushCallback | None = None,
) -> PushResult:
    """Push every tag. ``registry`` defaults to the first tag's; credentials to :func:`find_auth`.

    Every tag must live on that one registry (ConfigError-like RegistryError otherwise)."""
    if not tags:
        raise RegistryError("nothing to push: no tags")
    host = (registry or parse_ref(tags[0]).registry).rstrip("/")
    if not host:
        raise RegistryError(
            f"{tags[0]} names no registry; conveyor does not push to Docker Hub implicitly",
            hint="tag images as REGISTRY/NAME:TAG, e.g. with {registry}/{project}:{sha}",
        )
    for tag in tags:
        if parse_ref(tag).registry != host.lower() and parse_ref(tag).registry != host:
            raise RegistryError(
                f"tag {tag} is not on registry {host}", hint="push one registry at a time"
            )
    if auth is None:
        lookup = find_auth(host)
        auth = lookup.auth
        if lookup.note and on_event is not None:
            on_event(PushEvent("note", "", "", lookup.note))
    if auth is not None:
        login(client, host, auth)
        if on_event is not None:
            on_event(
                PushEvent("note", "", "", f"logged in to {host} as {auth.username} ({auth.origin})")
            )
    pushed = tuple(_push_one(client, tag, auth, on_event) for tag in tags)
    return PushResult(host, pushed, auth.origin if auth else "")


def push_on_engine(
    tags: Sequence[str],
    *,
    registry: str | None = None,
    progress: AbstractContextManager[PushCallback | None] | None = None,
) -> PushResult:
    """:func:`push_tags` from the local engine (``DOCKER_HOST`` or the socket), reached first;
    ``progress`` is entered for the push only and yields its event callback."""
    with local_client() as client, progress or nullcontext() as on_event:
        return push_tags(client, tags, registry=registry, on_event=on_event)
