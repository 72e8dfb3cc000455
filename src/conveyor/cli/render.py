"""``conveyor render PATH... -o DIR``: write each spec's Jenkinsfile and config.xml, offline.

Files land in ``DIR/<job path>/Jenkinsfile`` and ``DIR/<job path>/config.xml``, and a spec's
``target: kubernetes`` deploys in ``DIR/<job path>/k8s/<kind>-<name>.yaml``
(:mod:`conveyor.kubernetes.render`; image placeholders from git in the current directory). The GitLab trigger's
secret token is never written: only the config sent to Jenkins by ``apply`` carries it.
"""

from __future__ import annotations

from pathlib import Path

import click

from conveyor.cli.output import console, print_json
from conveyor.errors import RenderError
from conveyor.jenkins.render import RenderedJob, render
from conveyor.kubernetes.render import render_checkout, write_manifests
from conveyor.spec.load import load_specs


def write_job(out_dir: Path, job: RenderedJob) -> tuple[Path, Path]:
    """Write one job's files under ``out_dir``; return their paths (Jenkinsfile, config.xml)."""
    target = out_dir.joinpath(*job.job_path.split("/"))
    try:
        target.mkdir(parents=True, exist_ok=True)
        jenkinsfile = target / "Jenkinsfile"
        config = target / "config.xml"
        jenkinsfile.write_text(job.jenkinsfile, encoding="utf-8", newline="\n")
        config.write_text(job.config_xml, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise RenderError(
            f"cannot write the files of job {job.job_path!r} under {out_dir}: {exc.strerror}",
            hint="choose a writable -o directory",
        ) from exc
    return jenkinsfile, config


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to write <job path>/Jenkinsfile and <job path>/config.xml into.",
)
@click.option(
    "--gitlab-url",
    envvar="CONVEYOR_GITLAB_URL",
    help="GitLab base URL, to derive clone URLs of specs without jenkins.scm.url "
    "(default: $CONVEYOR_GITLAB_URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def command(paths: tuple[Path, ...], out_dir: Path, gitlab_url: str | None, as_json: bool) -> None:
    """Render pipeline specs (files or directories; default: ./pipelines) to Jenkins job files.

    Offline and deterministic: the same spec always gives the same bytes.
    """
    loaded = load_specs(list(paths) or [Path("pipelines")])
    jobs = [(item, render(item.spec, gitlab_url=gitlab_url)) for item in loaded]
    written = []
    for item, job in jobs:
        jenkinsfile, config = write_job(out_dir, job)
        manifests = write_manifests(out_dir, job.job_path, render_checkout(item.spec, Path(".")))
        written.append(
            {
                "spec": str(item.path),
                "project": item.spec.project,
                "job": job.job_path,
                "jenkinsfile": str(jenkinsfile),
                "config_xml": str(config),
                **({"kubernetes": [str(p) for p in manifests]} if manifests else {}),
            }
        )
    if as_json:
        print_json({"output": str(out_dir), "jobs": written})
        return
    for entry in written:
        console.print(
            f"{entry['spec']} -> {entry['jenkinsfile']}, {entry['config_xml']}", markup=False
        )
        for path in entry.get("kubernetes", []):
            console.print(f"  {path}", markup=False)
    console.print(f"{len(written)} job(s) rendered into {out_dir}", markup=False)
