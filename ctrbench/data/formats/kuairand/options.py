"""This format's dataset-config options: options.yaml beside this file says which, their types and defaults."""

from collections.abc import Mapping
from pathlib import Path

from ctrbench.data.formats.base import FormatOptions

OPTIONS = FormatOptions(Path(__file__).with_name("options.yaml"))
DEFAULTS = OPTIONS.resolve({})  # for the readers' keyword defaults: the values live in options.yaml only


def option_problems(options: Mapping) -> list[str]:
    """What the schema cannot say about resolved options: a history length for a behaviour without a history."""
    history = options["history"]
    if unused := sorted(set(history["max_len_by_behavior"]) - set(history["behaviors"])):
        return [f"history.max_len_by_behavior names {unused}, which history.behaviors does not list"]
    return []
