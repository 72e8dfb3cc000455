"""Which Docker engine a deploy runs on: a named, long-lived one, never a stage's nested daemon.

A deployed service must outlive the stage that deployed it, and its history (:mod:`conveyor.docker.
history`) lives on the same engine, so ``deploy``, ``history`` and ``rollback`` must all find the same
engine from any agent. The first of these that is set wins:

1. ``--engine URL`` of ``conveyor deploy / rollback / history`` (the operator, for one command);
2. ``CONVEYOR_DEPLOY_HOST`` in the environment (the operator, for an agent or a Jenkins node);
3. the spec's ``deploy.engine`` (the project: "this service runs on tcp://apps.example.com:2376");
4. the host's engine: with ``jenkins.agent.docker: dind`` that is ``unix:///var/run/docker.sock``,
   whatever ``DOCKER_HOST`` says, because there ``DOCKER_HOST`` names the stage's nested daemon, which
   Jenkins' ``withRun`` removes with its volumes when the stage ends (``Docker.groovy:214``); with
   ``socket`` (and ``none``) it is Docker's own default, ``DOCKER_HOST`` or the local socket.

TLS for 1-3 comes from ``CONVEYOR_DEPLOY_TLS_VERIFY`` (any non-empty value) and
``CONVEYOR_DEPLOY_CERT_PATH`` (a directory with ``ca.pem``, ``cert.pem``, ``key.pem``, e.g. the
``/certs/client`` an official ``docker:dind`` writes). They are separate from ``DOCKER_TLS_VERIFY`` /
``DOCKER_CERT_PATH`` because in a DinD stage those belong to the nested daemon. Case 4 with
``socket`` uses ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH`` as Docker does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from conveyor.docker.engine import EngineAddress
from conveyor.spec.model import Deploy

DEPLOY_HOST = "CONVEYOR_DEPLOY_HOST"
DEPLOY_TLS_VERIFY = "CONVEYOR_DEPLOY_TLS_VERIFY"
DEPLOY_CERT_PATH = "CONVEYOR_DEPLOY_CERT_PATH"
HOST_SOCKET = "unix:///var/run/docker.sock"


def deploy_engine(
    deploy: Deploy,
    *,
    agent_docker: str = "socket",
    environ: Mapping[str, str] | None = None,
    override: str | None = None,
) -> EngineAddress:
    """The engine ``deploy`` runs on (see the module docstring for the order)."""
    environ = os.environ if environ is None else environ
    tls_verify = bool(environ.get(DEPLOY_TLS_VERIFY))
    cert_path = environ.get(DEPLOY_CERT_PATH) or None
    for url, origin in (
        (override, "--engine"),
        (environ.get(DEPLOY_HOST), DEPLOY_HOST),
        (deploy.engine, "deploy.engine"),
    ):
        if url:
            return EngineAddress(url, tls_verify=tls_verify, cert_path=cert_path, origin=origin)
    if agent_docker == "dind":
        return EngineAddress(HOST_SOCKET, origin="the host's engine (dind stages never deploy)")
    return EngineAddress()
