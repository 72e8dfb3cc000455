"""Test support for nested Docker daemons started by the tests themselves (the docker:dind stand-in
of ``docker-in-docker/base/dind``): ``docker run`` options as docker SDK arguments, and moving images
into a daemon that cannot pull here. conveyor's own nested daemons are ``conveyor.runner.engines``."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from typing import Any

import docker

from conveyor.docker.engine import docker_errors
from conveyor.errors import ConfigError, DockerError


def _split(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """``["--cap-add=ALL", "-v", "a:b"]`` -> ``[("--cap-add", "ALL"), ("-v", "a:b")]``."""
    words: list[str] = []
    for arg in args:
        words.extend(shlex.split(arg) if " " in arg else [arg])
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-"):
            raise ConfigError(f"dind argument {word!r} is not an option (expected --name[=value])")
        if "=" in word:
            flag, value = word.split("=", 1)
            out.append((flag, value))
        elif word == "--privileged":
            out.append((word, None))
        else:
            if i + 1 >= len(words):
                raise ConfigError(f"dind argument {word} needs a value")
            out.append((word, words[i + 1]))
            i += 1
        i += 1
    return out


def run_kwargs(args: Sequence[str]) -> dict[str, Any]:
    """``docker run`` options as keyword arguments of the SDK's ``api.create_host_config`` (plus
    ``environment``, and ``systempaths_unconfined`` for ``--security-opt systempaths=unconfined``,
    which the CLI -- not the engine -- turns into empty MaskedPaths/ReadonlyPaths).

    Supported: --cap-add, --cap-drop, --security-opt, -v/--volume, --tmpfs, --privileged, --cgroupns,
    --device, -e/--env, --network. Anything else is a ConfigError naming it."""
    kwargs: dict[str, Any] = {}
    for flag, value in _split(args):
        if flag == "--privileged":
            kwargs["privileged"] = value is None or value.lower() == "true"
            continue
        assert value is not None
        if flag == "--security-opt" and value == "systempaths=unconfined":
            kwargs["systempaths_unconfined"] = True
        elif flag in ("--cap-add", "--cap-drop", "--security-opt", "--device"):
            key = {
                "--cap-add": "cap_add",
                "--cap-drop": "cap_drop",
                "--security-opt": "security_opt",
                "--device": "devices",
            }[flag]
            kwargs.setdefault(key, []).append(value)
        elif flag in ("-v", "--volume"):
            parts = value.split(":")
            if len(parts) < 2:
                raise ConfigError(f"dind volume {value!r}: use SOURCE:TARGET[:ro|rw]")
            mode = parts[2] if len(parts) > 2 else "rw"
            kwargs.setdefault("binds", {})[parts[0]] = {"bind": parts[1], "mode": mode}
        elif flag == "--tmpfs":
            path, _, opts = value.partition(":")
            kwargs.setdefault("tmpfs", {})[path] = opts
        elif flag in ("-e", "--env"):
            name, _, val = value.partition("=")
            kwargs.setdefault("environment", {})[name] = val
        elif flag == "--cgroupns":
            kwargs["cgroupns"] = value
        elif flag == "--network":
            kwargs["network_mode"] = value
        else:
            raise ConfigError(
                f"unsupported dind argument {flag}",
                hint="use --cap-add, --cap-drop, --security-opt, -v, --tmpfs, --privileged, "
                "--cgroupns, --device, -e or --network",
            )
    return kwargs


def copy_images(
    source: docker.DockerClient, target: docker.DockerClient, references: Iterable[str]
) -> None:
    """``docker save REF | docker load`` from ``source``'s engine into ``target``'s, streamed."""
    for ref in references:
        with docker_errors(f"copy image {ref} into the nested daemon"):
            stream = source.api.get_image(ref)
            for chunk in target.api.load_image(stream):
                if isinstance(chunk, dict) and "error" in chunk:
                    raise DockerError(f"load {ref} into the nested daemon: {chunk['error']}")
