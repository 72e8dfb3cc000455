"""Every error conveyor raises, drawn once.

::

    ConveyorError                    base: message + hint (what to do), subject (what it is about),
                                     status (a server's HTTP status), log_tail (output showing why)
    ├── ConfigError                  a setting is missing or wrong (names the CONVEYOR_* variable)
    ├── UsageError                   bad input from the command line or a file it names (an option,
    │                                an event file, a stage, an image reference, duplicate specs)
    ├── SpecError                    one or more spec problems, each with file:line:col and field path
    ├── PluginError                  a plugin failed to load or implements an unknown hook
    ├── RenderError                  a spec cannot be turned into a Jenkinsfile / config.xml
    ├── RemoteError                  a server answered badly (names the server; subject, status set)
    │   ├── GitLabError
    │   │   ├── GitLabAuthError      401: token missing or invalid
    │   │   ├── GitLabForbiddenError 403: e.g. not Maintainer of the project
    │   │   ├── GitLabNotFoundError  404: project or hook does not exist (or is hidden)
    │   │   └── GitLabTransitionError 400: a commit status cannot move from its current state
    │   └── JenkinsError
    │       ├── JenkinsAuthError     401: credentials refused; 403: a permission is missing
    │       └── JenkinsNotFoundError 404
    │   └── KubernetesError          the apiserver refused a request (names the context and object)
    │       └── KubernetesConflictError  server-side apply: fields owned by other managers
    ├── DockerError                  the engine or a registry refused something
    │   ├── BuildError               a build step failed (carries the step; log_tail is the build's)
    │   ├── RegistryError            push/pull/login failed (names the registry)
    │   └── DeployError              a deploy did not converge
    │       └── HealthCheckError     the new version never became healthy (log_tail: the health log)
    ├── RunnerError                  the local runner could not run a pipeline
    └── QueueError                   the durable event queue is unusable

Every boundary (python-gitlab, python-jenkins, docker SDK, sqlite3, YAML) catches its own library's
exceptions in one place (``GitLabClient._errors``, ``JenkinsClient._errors``, ``docker_errors``)
and raises one of these, so callers and the CLI handle conveyor errors only, and read ``subject``,
``status`` and ``log_tail`` from any of them (empty when the error has none).
Messages never contain secret values: only names of variables and credential IDs.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConveyorError(Exception):
    """Base of every conveyor error. ``hint`` says what the user can do about it, ``subject``
    names what it is about (a project, a job, an image), ``status`` is the HTTP status a server
    answered, ``log_tail`` the end of the output that shows why (a build's, a health check's)."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        subject: str | None = None,
        status: int | None = None,
        log_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.subject = subject
        self.status = status
        self.log_tail = log_tail

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(ConveyorError):
    """A setting is missing or invalid. The message names the variable."""

    exit_code = 2


class UsageError(ConveyorError):
    """The command was asked something it cannot do: a bad option, or a bad file or name it was
    given (an event file, a stage that does not exist, an invalid image reference, two specs for one
    project). The message names the option, the file or the name. Exit code 2, like click's own
    usage errors."""

    exit_code = 2


@dataclass(frozen=True)
class SpecIssue:
    """One problem in one spec file, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class SpecError(ConveyorError):
    """A spec (or several) is invalid. ``issues`` lists every problem found in one pass."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in pipeline spec"
        super().__init__(head + ":\n" + "\n".join(f"  {i}" for i in self.issues))


class PluginError(ConveyorError):
    """A plugin could not be loaded or implements a hook that does not exist."""


class RenderError(ConveyorError):
    """A spec could not be rendered."""


class RemoteError(ConveyorError):
    """A remote server refused or failed a request."""


class GitLabError(RemoteError):
    """GitLab answered with an error."""


class GitLabAuthError(GitLabError):
    """GitLab rejected the token (401)."""


class GitLabForbiddenError(GitLabError):
    """GitLab refused the operation (403), usually missing Maintainer role."""


class GitLabNotFoundError(GitLabError):
    """The GitLab project or object does not exist or is not visible (404)."""


class GitLabTransitionError(GitLabError):
    """GitLab refused a commit-status move (400 "Cannot transition status via :E from :S").

    ``current`` is the state GitLab's status is in (the ``:S``), ``event`` the refused move.
    """

    def __init__(
        self,
        message: str,
        *,
        event: str,
        current: str,
        hint: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(message, status=400, hint=hint, subject=subject)
        self.event = event
        self.current = current


class JenkinsError(RemoteError):
    """Jenkins answered with an error."""


class JenkinsAuthError(JenkinsError):
    """Jenkins rejected the credentials (401) or the user lacks a permission (403)."""


class JenkinsNotFoundError(JenkinsError):
    """The Jenkins job or folder does not exist (404)."""


class KubernetesError(RemoteError):
    """The Kubernetes apiserver (or the way to it) failed a request; names the context and object."""


class KubernetesConflictError(KubernetesError):
    """A server-side apply would change fields other field managers own. ``conflicts`` lists
    (manager, field path) pairs; ``--force`` takes the fields."""

    def __init__(
        self, message: str, *, conflicts: list[tuple[str, str]], hint: str | None = None
    ) -> None:
        super().__init__(message, status=409, hint=hint)
        self.conflicts = list(conflicts)


class DockerError(ConveyorError):
    """The Docker engine or a registry refused something."""


class BuildError(DockerError):
    """An image build failed."""

    def __init__(
        self, message: str, *, step: str | None = None, log_tail: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, log_tail=log_tail)
        self.step = step


class RegistryError(DockerError):
    """A registry refused a login, push or pull. The message names the registry."""


class DeployError(DockerError):
    """A deploy did not converge."""


class HealthCheckError(DeployError):
    """The new version never became healthy; the old one keeps serving."""

    def __init__(self, message: str, *, health_log: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint, log_tail=health_log)

    @property
    def health_log(self) -> str:
        """The health check's output (this error's ``log_tail``)."""
        return self.log_tail


class RunnerError(ConveyorError):
    """The local runner could not run a pipeline."""


class QueueError(ConveyorError):
    """The durable event queue could not be used."""
