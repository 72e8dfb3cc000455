"""The JSON Schema of the spec, from the model (so it cannot drift from what validation accepts)."""

from __future__ import annotations

from typing import Any

from conveyor.spec.model import API_VERSION, Spec


def spec_json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    # filled in from the project when absent (see Spec._defaults_from_project)
    for model, key in (
        (schema, "jenkins"),
        (schema["$defs"]["Jenkins"], "job"),
        (schema["$defs"]["Deploy"], "name"),
    ):
        model["required"] = [r for r in model.get("required", []) if r != key]
        if not model["required"]:
            del model["required"]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://conveyor.dev/schema/{API_VERSION}.json"
    schema["title"] = "conveyor pipeline spec"
    return schema
