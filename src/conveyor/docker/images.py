"""Image references, tag placeholders and OCI labels: pure functions shared by build, push and deploy.

Placeholders ``{registry} {project} {sha} {short_sha} {branch} {tag} {build_number}`` (see
:mod:`conveyor.spec.model`) are replaced by value; any other text in braces is left alone. Values are
made legal for their place: a branch ``feature/x`` becomes ``feature-x`` in a tag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from conveyor.docker.gitfacts import GitFacts
from conveyor.errors import UsageError
from conveyor.spec.model import PLACEHOLDERS

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")
# reference grammar (distribution/reference), reduced: [host[:port]/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?)"
_REFERENCE = re.compile(
    rf"^(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)

OCI = "org.opencontainers.image"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. ``registry`` is "" for Docker Hub-style short names."""

    registry: str
    repository: str  # the path, without registry
    tag: str = "latest"

    @property
    def name(self) -> str:
        """``registry/repository`` (what ``docker push`` takes before the colon)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"


def parse_ref(reference: str) -> ImageRef:
    """Parse ``[registry/]path[:tag]``; the first component is a registry when it has a dot, a port or
    is ``localhost`` (Docker's rule). Raises UsageError for an invalid reference."""
    match = _REFERENCE.match(reference)
    if not match or match.group("digest"):
        raise UsageError(
            f"invalid image reference {reference!r}",
            hint="use [REGISTRY/]NAME[:TAG] with a lower-case name, e.g. localhost:5000/demo/app:1",
        )
    host, path, tag = match.group("host"), match.group("path"), match.group("tag") or "latest"
    if host and not ("." in host or ":" in host or host == "localhost"):
        path, host = f"{host.lower()}/{path}", ""
    if host is None:
        host = ""
    return ImageRef(registry=host, repository=path, tag=tag)


def is_reference(text: str) -> bool:
    """Is ``text`` an image reference ``docker run`` takes (``[registry/]path[:tag][@digest]``)?"""
    return _REFERENCE.match(text) is not None


def tag_safe(value: str) -> str:
    """``value`` as a legal tag fragment: other characters become ``-``; at most 128 characters."""
    return _TAG_BAD.sub("-", value)[:128]


def placeholder_values(
    facts: GitFacts, *, project: str, registry: str | None, build_number: str = ""
) -> dict[str, str]:
    """The values of every placeholder for one build."""
    return {
        "registry": (registry or "").rstrip("/"),
        "project": project.lower(),
        "sha": facts.sha,
        "short_sha": facts.short_sha,
        "branch": facts.branch,
        "tag": facts.tag,
        "build_number": build_number,
    }


def expand(template: str, values: Mapping[str, str]) -> str:
    """Replace the known placeholders in ``template`` (other braces stay as they are)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def expand_tags(templates: list[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """Image references for ``templates``: the tag part's values are made tag-safe; every result is a
    valid reference (UsageError naming the template otherwise). Duplicates are dropped."""
    safe = {k: tag_safe(v) if k in ("branch", "tag") else v for k, v in values.items()}
    out: list[str] = []
    for template in templates:
        head, sep, tail = template.rpartition(":")
        if sep and "/" not in tail:  # a tag part: sanitise the values substituted into it
            ref = expand(head, values) + ":" + expand(tail, safe)
        else:
            ref = expand(template, values)
        empty = [m.group(1) for m in _PLACEHOLDER.finditer(template) if not values.get(m.group(1))]
        try:
            parse_ref(ref)
        except UsageError:
            detail = f" ({', '.join('{' + e + '}' for e in empty)} empty)" if empty else ""
            raise UsageError(
                f"image tag {template!r} expands to the invalid reference {ref!r}{detail}",
                hint="pass --branch/--tag/--sha, or build in a checkout that has them",
            ) from None
        if ref not in out:
            out.append(ref)
    return tuple(out)


def oci_labels(facts: GitFacts, *, project: str, created: datetime | None = None) -> dict[str, str]:
    """The OCI annotations conveyor puts on every image it builds."""
    when = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return {
        f"{OCI}.revision": facts.sha,
        f"{OCI}.source": facts.source or project,
        f"{OCI}.created": when.isoformat().replace("+00:00", "Z"),
        f"{OCI}.version": facts.tag
        or (f"{facts.branch}-{facts.short_sha}" if facts.branch else facts.short_sha),
    }
