"""Kubernetes as a deploy target: manifests (pure), the API boundary, apply, rollout, history, prune.

Layout: :mod:`.manifests` renders a ``target: kubernetes`` deploy block to objects; :mod:`.config`
finds the cluster (kubeconfig context or in-cluster); :mod:`.client` is the one boundary to the
official ``kubernetes`` client (errors mapped once); :mod:`.apply` server-side applies (field
manager ``conveyor``) and plans with ``dryRun=All``; :mod:`.rollout` decides a rollout as
``kubectl rollout status`` does; :mod:`.deploy` is the target's deploy / rollback / history.
"""
