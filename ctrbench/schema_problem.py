"""A jsonschema ValidationError as one short line, for config and format-option errors."""

from __future__ import annotations


def schema_problem(error) -> str:
    """Where in the config the error is, and what is wrong there (jsonschema's own message); for a key that is not
    allowed, the keys that are. Snakemake's message would add the whole failing sub-schema, ~175 lines for a
    dataset entry."""
    where = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in error.absolute_path).lstrip(".")
    message = f"{where or 'the config'}: {error.message}"
    if error.validator in ("additionalProperties", "unevaluatedProperties") and error.validator_value is False:
        message += f"; it takes {', '.join(sorted(error.schema.get('properties', {})))}"
    return message
