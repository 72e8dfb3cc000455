"""Spec -> Jenkins job files: the pure entry point used by ``conveyor render``, the sync and plugins."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.errors import RenderError
from conveyor.jenkins import xml
from conveyor.jenkins.config_xml import render_config_xml
from conveyor.jenkins.jenkinsfile import render_jenkinsfile
from conveyor.spec.load import format_loc
from conveyor.spec.model import Spec
from conveyor.spec.rules import xml_fields


@dataclass(frozen=True)
class RenderedJob:
    """The files of one Jenkins job. ``job_path`` is the folder path plus job name (``a/b/job``)."""

    job_path: str
    jenkinsfile: str
    config_xml: str


def clone_url_for(spec: Spec, gitlab_url: str | None) -> str | None:
    """The repository URL: ``jenkins.scm.url``, else ``<gitlab_url>/<project>.git`` when known."""
    if spec.jenkins.scm.url is not None:
        return spec.jenkins.scm.url
    if gitlab_url:
        return f"{gitlab_url.rstrip('/')}/{spec.project}.git"
    return None


def render(
    spec: Spec, *, trigger_token: str | None = None, gitlab_url: str | None = None
) -> RenderedJob:
    """Render ``spec``. Same spec and arguments, same bytes.

    ``trigger_token`` is the GitLab trigger's secret: pass it only for the config.xml sent to Jenkins,
    never for files written to disk. ``gitlab_url`` lets conveyor derive the clone URL when the spec
    names none. Raises RenderError naming the project when the spec cannot be rendered (for example a
    character XML 1.0 cannot carry).
    """
    clone_url = clone_url_for(spec, gitlab_url)
    try:
        jenkinsfile = render_jenkinsfile(spec, clone_url=clone_url)
        config = render_config_xml(
            spec, jenkinsfile, trigger_token=trigger_token, clone_url=clone_url
        )
    except xml.XmlCharError as exc:
        where = _xml_field(spec, exc.char) or "a field that reaches config.xml"
        raise RenderError(
            f"{spec.project}: {where} holds U+{ord(exc.char):04X}, which config.xml cannot carry",
            hint="remove the control character from the spec",
        ) from exc
    except RenderError as exc:
        if exc.message.startswith(spec.project + ":"):
            raise
        raise RenderError(f"{spec.project}: {exc.message}", hint=exc.hint) from exc
    return RenderedJob(job_path=spec.jenkins.job, jenkinsfile=jenkinsfile, config_xml=config)


def _xml_field(spec: Spec, char: str) -> str | None:
    """The spec field holding ``char`` among those written to config.xml (secrets are never named)."""
    for loc, value in xml_fields(spec):
        if char in value:
            return format_loc(loc)
    return None
