"""The secret values a local run binds: from its environment, as Jenkins' credentials binding would.

A secret (``secrets: {VAR: credentials-id}`` of the pipeline, a stage or a deploy) takes its value from
the runner's environment variable ``VAR``. The values are masked in everything the run shows or
stores (:class:`conveyor.masking.Masker`) and never appear on a command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conveyor.errors import RunnerError
from conveyor.runner.containers import CLI_VARIABLES
from conveyor.spec.model import Spec, Stage


def secret_values(
    spec: Spec, environ: Mapping[str, str], stages: Sequence[Stage] | None = None
) -> dict[str, str]:
    """The secret variables bound by the pipeline and by ``stages`` (default: every stage; a run
    passes the stages it will run, as Jenkins binds a stage's credentials only when it runs), from
    ``environ``. RunnerError naming each missing variable and its credentials ID (never a value).
    """
    wanted: dict[str, str] = dict(spec.secrets)
    for stage in spec.all_stages() if stages is None else stages:
        wanted.update(stage.secrets)
        if stage.deploy is not None:
            wanted.update(stage.deploy.secrets)
    missing = [
        f"{var} (credentials {cred!r})" for var, cred in wanted.items() if var not in environ
    ]
    if missing:
        raise RunnerError(
            "secret variable(s) not set: " + ", ".join(missing),
            hint="Jenkins binds these from its credentials; for a local run export each variable",
        )
    clash = sorted(set(wanted) & CLI_VARIABLES)
    if clash:
        raise RunnerError(
            f"secret variable(s) {', '.join(clash)} clash with the docker CLI's own settings",
            hint="rename the variable in the spec's secrets",
        )
    return {var: environ[var] for var in wanted}
