"""Build the agent image (``conveyor-agent:1``) from a conveyor source checkout (a developer tool).

The image (``docker-in-docker/agent/Dockerfile``) holds the docker CLI, git and conveyor. Its build
context is prepared here, not taken from the repository root: the Dockerfile plus wheels built with
``pip wheel`` from the checkout (conveyor's own wheel apart from its dependencies', so a source change
rebuilds one small layer). Run ``.venv/bin/python scripts/agent_image.py [REPO_ROOT] [--tag TAG]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker

from conveyor.docker.build import BuildCallback, BuildRequest, BuildResult, build_image
from conveyor.errors import BuildError, ConfigError, UsageError

AGENT_TAG = "conveyor-agent:1"
DOCKERFILE = Path("docker-in-docker") / "agent" / "Dockerfile"
SOURCE_FILES = ("pyproject.toml", "README.md")


def find_repo_root(start: Path | None = None) -> Path:
    """The conveyor checkout containing ``start`` (default: this script): the directory with
    ``docker-in-docker/agent/Dockerfile`` and ``pyproject.toml``. ConfigError when there is none."""
    here = (start or Path(__file__)).resolve()
    for candidate in (here, *here.parents):
        if (candidate / DOCKERFILE).is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise ConfigError(
        f"no conveyor source checkout around {here}",
        hint="pass the repository root (the directory holding docker-in-docker/agent/Dockerfile)",
    )


def prepare_agent_context(root: Path, dest: Path) -> Path:
    """Fill ``dest`` with the agent's build context: Dockerfile, wheels/deps/, wheels/conveyor/."""
    source = dest / "source"
    source.mkdir(parents=True)
    for name in SOURCE_FILES:
        shutil.copy2(root / name, source / name)
    shutil.copytree(
        root / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = dest / "wheels"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--wheel-dir",
            str(wheels / "all"),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-20:])
        raise BuildError("pip wheel for the agent image failed", step="pip wheel", log_tail=tail)
    (wheels / "deps").mkdir()
    (wheels / "conveyor").mkdir()
    for wheel in (wheels / "all").glob("*.whl"):
        target = "conveyor" if wheel.name.startswith("conveyor-") else "deps"
        wheel.rename(wheels / target / wheel.name)
    (wheels / "all").rmdir()
    shutil.rmtree(source)
    shutil.copy2(root / DOCKERFILE, dest / "Dockerfile")
    return dest


def build_agent_image(
    client: docker.DockerClient,
    root: Path | None = None,
    *,
    tag: str = AGENT_TAG,
    on_event: BuildCallback | None = None,
) -> BuildResult:
    """Build the agent image from the checkout ``root`` (default: the one this script lives in)."""
    root = root or find_repo_root()
    with tempfile.TemporaryDirectory(prefix="conveyor-agent-") as tmp:
        context = prepare_agent_context(root, Path(tmp) / "context")
        return build_image(client, BuildRequest(context=context, tags=(tag,)), on_event)


def main(argv: list[str] | None = None) -> int:
    from conveyor.docker.engine import connect

    parser = argparse.ArgumentParser(prog="scripts/agent_image.py", description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, help="conveyor checkout (default: this one)")
    parser.add_argument("--tag", default=AGENT_TAG)
    args = parser.parse_args(argv)
    client = connect()
    try:
        result = build_agent_image(
            client,
            find_repo_root(args.root) if args.root else None,
            tag=args.tag,
            on_event=lambda e: (
                print(f"Step {e.step}/{e.total} : {e.text}") if e.kind == "step" else None
            ),
        )
    except (BuildError, ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, BuildError) and exc.log_tail:
            print(exc.log_tail, file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"built {result.tags[0]} ({result.image_id[7:19]}) in {result.duration:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
