"""The dataset formats a config's ``format`` names: one package each, over the shared reading core in
``ctrbench.data`` (line blocks, field parsing, bad rows, split writing, staged publishing, the manifest)."""

from ctrbench.data.formats import (
    aliexpress,
    avazu,
    bars_csv,
    criteo_dac,
    kuairand,
    taobao_ad,
    taobao_userbehavior,
    tenrec,
)
from ctrbench.data.formats.base import DatasetFormat

FORMATS: dict[str, DatasetFormat] = {
    f.name: f
    for f in (
        criteo_dac.FORMAT,
        taobao_userbehavior.FORMAT,
        taobao_ad.FORMAT,
        tenrec.FORMAT,
        aliexpress.FORMAT,
        kuairand.FORMAT,
        avazu.FORMAT,
        bars_csv.FORMAT,
    )
}
