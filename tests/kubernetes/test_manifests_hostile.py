"""Every spec string that reaches a manifest comes back exactly as data (property test): env values,
the image, probe paths and commands, mount paths, the project annotation. PyYAML's safe dumper is the
one YAML escaper; no value can add a key, a document or a tag."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.kubernetes.manifests import render_manifests
from conveyor.spec.model import Deploy

text = st.text(min_size=1, max_size=60)
no_colon = st.text(min_size=1, max_size=40).filter(lambda s: ":" not in s)


@settings(max_examples=100, deadline=None)
@given(
    value=text,
    image=text,
    path=text,
    cmd=st.lists(text, min_size=1, max_size=3),
    mount=no_colon,
    live=text,
)
def test_hostile_spec_strings_come_back_exactly(
    value: str, image: str, path: str, cmd: list[str], mount: str, live: str
) -> None:
    deploy = Deploy.model_validate(
        {
            "target": "kubernetes",
            "name": "web",
            "ports": ["80:8000"],
            "env": {"HOSTILE": value},
            "health": {"http": "/" + path},
            "volumes": ["data:/" + mount],
            "kubernetes": {"liveness": {"cmd": [*cmd, live]}},
        }
    )
    for manifest in render_manifests(deploy, project="demo/web", image=image):
        text_out = manifest.yaml()
        docs = list(yaml.safe_load_all(text_out))
        assert docs == [manifest.body]
        if manifest.kind == "Deployment":
            container = docs[0]["spec"]["template"]["spec"]["containers"][0]
            assert container["image"] == image
            assert container["env"] == [{"name": "HOSTILE", "value": value}]
            assert container["readinessProbe"]["httpGet"]["path"] == "/" + path
            assert container["livenessProbe"]["exec"]["command"] == [*cmd, live]
            assert container["volumeMounts"][0]["mountPath"] == "/" + mount
