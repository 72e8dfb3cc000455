"""The web dashboard ``conveyor serve`` serves at ``/dashboard``: events and what conveyor decided,
runs with live logs, deploys with rollback, intake health.

Modules: ``access`` (who may read and act: loopback, token, CSRF), ``reads`` (read-only
queries on either queue store), ``decisions`` (an event's decision in words), ``health`` (samples
of the metrics and their chart), ``hooks`` (each served project's conveyor hook as GitLab reports
it), ``deploys`` (deploy histories and rollback), ``routes`` (the pages), ``templates/``
(Jinja2, autoescaped) and ``static/`` (CSS and the one script, which streams logs).
"""

from conveyor.dashboard.access import TOKEN_ENV
from conveyor.dashboard.routes import PREFIX, Dashboard

__all__ = ["PREFIX", "TOKEN_ENV", "Dashboard"]
