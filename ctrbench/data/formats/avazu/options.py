"""This format's dataset-config options: options.yaml beside this file says which, their types and defaults."""

from pathlib import Path

from ctrbench.data.formats.base import FormatOptions

OPTIONS = FormatOptions(Path(__file__).with_name("options.yaml"))
DEFAULTS = OPTIONS.resolve({})  # for the readers' keyword defaults: the values live in options.yaml only
