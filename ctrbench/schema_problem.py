"""A jsonschema ValidationError as one short line, for config and format-option errors."""

from __future__ import annotations


def schema_problem(error) -> str:
    """Where in the config the error is, and what is wrong there (jsonschema's own message); for a key that is not
    allowed, the keys that are. Snakemake's message would add the whole failing sub-schema, ~175 lines for a
    dataset entry."""
    where = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in error.absolute_path).lstrip(".")
    message = f"{where or 'the config'}: {error.message}"
    if error.validator in ("additionalProperties", "unevaluatedProperties") and error.validator_value is False:
        # a key kept in the schema only to be refused with its own message (the top-level seed) is not offered
        taken = [key for key, spec in error.schema.get("properties", {}).items() if "replaced by" not in str(spec.get("description", ""))]
        message += f"; it takes {', '.join(sorted(taken))}"
    if error.validator == "type" and isinstance(error.instance, str) and error.instance.lstrip("-").replace(".", "", 1).isdigit():
        message += " (Snakemake's --config reads a number inside a list or mapping as a string: give it in a config file)"
    return message
