"""The JSON Schema of the spec, from the model (so it cannot drift from what validation accepts)."""

from __future__ import annotations

from typing import Any

from conveyor.spec.model import API_VERSION, Spec


def spec_json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    # deploy.name is filled in from the project when absent (see Spec._default_deploy_names).
    deploy = schema["$defs"]["Deploy"]
    deploy["required"] = [r for r in deploy.get("required", []) if r != "name"]
    if not deploy["required"]:
        del deploy["required"]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://conveyor.dev/schema/{API_VERSION}.json"
    schema["title"] = "conveyor pipeline spec"
    return schema
