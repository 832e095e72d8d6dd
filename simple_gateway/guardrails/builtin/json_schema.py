"""`json_schema`: the text (each reply choice) must be JSON valid against a schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simple_gateway.guardrails.base import Options, Subject, Verdict, action_of


class JSONSchema:
    blocking = False  # local and quick: run in the request thread

    def __init__(self, options: Options) -> None:
        self.name = options.name
        self.stage = options.stage
        self.priority = options.priority
        action_of(options, ("block",))
        schema = options.get("schema")
        schema_file = options.get("schema_file")
        if schema is None and schema_file is not None:
            schema = _load(str(schema_file))
        if not isinstance(schema, dict):
            raise ValueError("'schema' (a mapping) or 'schema_file' is required")
        # Imported here: a worker without a json_schema guardrail never pays its ~6 MB.
        import jsonschema
        from jsonschema.exceptions import SchemaError

        validator_class = jsonschema.validators.validator_for(schema)
        try:
            validator_class.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"invalid schema: {exc.message}") from None
        self.validator = validator_class(schema)
        self._best_match = jsonschema.exceptions.best_match

    def check(self, subject: Subject) -> Verdict:
        for index, part in enumerate(subject.parts):
            try:
                document = json.loads(part)
            except ValueError:
                return Verdict.blocked(f"text {index + 1} is not JSON")
            error = self._best_match(self.validator.iter_errors(document))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return Verdict.blocked(f"at {where}: {error.message}"[:300])
        return Verdict.passed()


def _load(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read schema_file {path}: {exc}") from None
