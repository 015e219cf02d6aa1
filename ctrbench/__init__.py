"""ctrbench: a reproducible benchmark suite for click-through-rate prediction models."""

__version__ = "0.1.0"
