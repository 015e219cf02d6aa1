"""Format ``criteo_dac``: the Criteo Display Advertising Challenge's ``train.txt`` layout (and DeepCTR's CSV sample).

- ``reader``: the streaming reader (``CriteoReader``);
- ``preprocess``: raw file -> randomly split train / valid / gold parquet;
- ``synthetic``: a seeded file in the same layout with a planted signal (the embedded default);
- ``options.yaml``: the dataset-config keys it takes, with their defaults.
"""

from collections.abc import Mapping

from ctrbench.data.formats.base import DatasetFormat
from ctrbench.data.formats.criteo_dac.options import OPTIONS
from ctrbench.data.formats.criteo_dac.preprocess import preprocess_criteo
from ctrbench.data.formats.criteo_dac.synthetic import write_synthetic_criteo
from ctrbench.data.splits import REST, resolve_split_counts


def split_problems(options: Mapping) -> list[str]:
    """Splits that no file can satisfy, found without the data: fractions are tried on any total, counts on the
    smallest total that holds them."""
    spec = {"train": REST, **options["splits"]}
    sizes = [v for v in spec.values() if v != REST]
    total = sum(sizes) if all(isinstance(v, int) for v in sizes) else 1_000_000
    try:
        resolve_split_counts(total, spec)
    except ValueError as error:
        return [f"splits: {error}"]
    return []


FORMAT = DatasetFormat(
    name="criteo_dac",
    options=OPTIONS,
    preprocess=preprocess_criteo,
    write_synthetic=write_synthetic_criteo,
    option_problems=split_problems,
)
