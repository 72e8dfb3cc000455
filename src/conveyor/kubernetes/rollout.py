"""Is a Deployment's rollout done? Decided exactly as ``kubectl rollout status`` decides it
(kubernetes/kubernetes ``staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go``,
``DeploymentStatusViewer.Status``), on the Deployment's JSON:

1. ``generation <= status.observedGeneration``, else "Waiting for deployment spec update to be
   observed...";
2. then a Progressing condition with reason ``ProgressDeadlineExceeded`` fails the rollout;
3. ``updatedReplicas < spec.replicas``, ``replicas > updatedReplicas`` (old pods pending
   termination) or ``availableReplicas < updatedReplicas``: wait, with kubectl's message;
4. else "successfully rolled out".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TIMED_OUT = "ProgressDeadlineExceeded"  # deploymentutil.TimedOutReason


@dataclass(frozen=True)
class RolloutStatus:
    message: str
    done: bool
    failed: bool = False


def rollout_status(deployment: dict[str, Any]) -> RolloutStatus:
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "")
    if int(meta.get("generation") or 0) <= int(status.get("observedGeneration") or 0):
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == TIMED_OUT:
                return RolloutStatus(
                    f'deployment "{name}" exceeded its progress deadline', False, failed=True
                )
        updated = int(status.get("updatedReplicas") or 0)
        replicas = int(status.get("replicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        wanted = spec.get("replicas")
        if wanted is not None and updated < int(wanted):
            return RolloutStatus(
                f'Waiting for deployment "{name}" rollout to finish: {updated} out of {wanted} '
                "new replicas have been updated...",
                False,
            )
        if replicas > updated:
            return RolloutStatus(
                f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old '
                "replicas are pending termination...",
                False,
            )
        if available < updated:
            return RolloutStatus(
                f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
                "updated replicas are available...",
                False,
            )
        return RolloutStatus(f'deployment "{name}" successfully rolled out', True)
    return RolloutStatus("Waiting for deployment spec update to be observed...", False)
