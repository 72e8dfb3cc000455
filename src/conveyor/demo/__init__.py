"""``conveyor demo``: the whole loop on one machine with a Docker engine and nothing else.

:mod:`.services` starts and stops the demo's local processes (a registry with auth, the
receiver), :mod:`.repo` plays the GitLab repository, :mod:`.events` builds GitLab's push
payloads, :mod:`.probe` measures availability during the switch, and :mod:`.loop` runs the steps
and checks that each one happened.
"""
