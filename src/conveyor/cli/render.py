"""``conveyor render PATH... -o DIR``: write each spec's generated files, offline.

Every plugin's ``conveyor_render_files`` answer is written (:func:`conveyor.plugins.answers.render_files`):
the jenkins plugin's land in ``DIR/<job path>/Jenkinsfile`` and ``DIR/<job path>/config.xml``. A spec's
``target: kubernetes`` deploys land in ``DIR/<job path>/k8s/<kind>-<name>.yaml``
(:mod:`conveyor.kubernetes.render`; image placeholders from git in the current directory). Everything
is rendered before anything is written. The GitLab trigger's secret token is never written: only the
config sent to Jenkins by ``apply`` carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from conveyor.cli.output import console, print_json
from conveyor.errors import RenderError
from conveyor.kubernetes.render import render_checkout, write_manifests
from conveyor.plugins.answers import render_files
from conveyor.plugins.hookspecs import RenderedFile
from conveyor.spec.load import load_specs


def write_files(out_dir: Path, files: Sequence[RenderedFile]) -> list[Path]:
    """Write ``files`` under ``out_dir`` (their paths are checked relative ones); the paths written."""
    written = []
    for file in files:
        target = out_dir.joinpath(*file.path.split("/"))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content, encoding="utf-8", newline="\n")
        except OSError as exc:
            raise RenderError(
                f"cannot write {file.path} under {out_dir}: {exc.strerror}",
                hint="choose a writable -o directory",
            ) from exc
        written.append(target)
    return written


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to write the files into (<job path>/Jenkinsfile, <job path>/config.xml).",
)
@click.option(
    "--gitlab-url",
    envvar="CONVEYOR_GITLAB_URL",
    help="GitLab base URL, to derive clone URLs of specs without jenkins.scm.url "
    "(default: $CONVEYOR_GITLAB_URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def command(paths: tuple[Path, ...], out_dir: Path, gitlab_url: str | None, as_json: bool) -> None:
    """Render pipeline specs (files or directories; default: ./pipelines) to Jenkins job files
    (and any plugin's generated files).

    Offline and deterministic: the same spec always gives the same bytes.
    """
    loaded = load_specs(list(paths) or [Path("pipelines")])
    rendered = [
        (item, render_files(item.spec, gitlab_url), render_checkout(item.spec, Path(".")))
        for item in loaded
    ]
    written = []
    for item, files, k8s in rendered:
        paths_written = write_files(out_dir, files)
        manifests = write_manifests(out_dir, item.spec.jenkins.job, k8s)
        written.append(
            {
                "spec": str(item.path),
                "project": item.spec.project,
                "job": item.spec.jenkins.job,
                "files": [str(p) for p in paths_written],
                **({"kubernetes": [str(p) for p in manifests]} if manifests else {}),
            }
        )
    if as_json:
        print_json({"output": str(out_dir), "jobs": written})
        return
    for entry in written:
        console.print(f"{entry['spec']} -> {', '.join(entry['files'])}", markup=False)
        for path in entry.get("kubernetes", []):
            console.print(f"  {path}", markup=False)
    console.print(f"{len(written)} spec(s) rendered into {out_dir}", markup=False)
