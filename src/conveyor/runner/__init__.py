"""The local runner: run a pipeline spec's stages in Docker exactly as the generated Jenkinsfile would.

``plan`` decides (pure), ``containers`` says how each stage's container is started (pure), ``execute``
runs, ``output`` shows, ``history`` remembers.
"""
