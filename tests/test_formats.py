"""The format packages: each one's options live in its options.yaml (types, defaults), the config schema composes
exactly the registered formats, and no format reaches into another's modules or any module's private names."""

import ast
import inspect
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from ctrbench.data.formats import FORMATS
from ctrbench.data.formats.base import OptionsError
from ctrbench.data.formats.criteo_dac.reader import CriteoReader
from ctrbench.data.formats.taobao_ad.reader import TaobaoAdReader

PACKAGE = REPO / "ctrbench"
FORMATS_DIR = PACKAGE / "data" / "formats"


def test_the_config_schema_composes_every_format_fragment_by_its_format():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    entry = schema["properties"]["datasets"]["additionalProperties"]
    assert entry["properties"]["format"]["enum"] == list(FORMATS)
    composed = {branch["if"]["properties"]["format"]["const"]: branch["then"]["$ref"] for branch in entry["allOf"]}
    assert composed == {name: f"../ctrbench/data/formats/{name}/options.yaml#/$defs/options" for name in FORMATS}
    assert entry["unevaluatedProperties"] is False
    for name, dataset_format in FORMATS.items():
        assert dataset_format.options.schema == FORMATS_DIR / name / "options.yaml"


def test_defaults_come_from_the_fragment_and_nested_ones_are_filled():
    options = FORMATS["taobao_userbehavior"].options.resolve({"history": {"max_len": 7}})
    fragment = yaml.safe_load((FORMATS_DIR / "taobao_userbehavior" / "options.yaml").read_text())["$defs"]["options"]
    history = fragment["properties"]["history"]["properties"]
    assert options["history"] == {"max_len": 7, "behaviors": history["behaviors"]["default"]}
    assert options["targets"]["negatives"] == fragment["properties"]["targets"]["properties"]["negatives"]["default"]
    common = yaml.safe_load((FORMATS_DIR / "common_options.yaml").read_text())["$defs"]["options"]["properties"]
    assert options["input_hash"] == common["input_hash"]["default"] == "sha256"
    with pytest.raises(
        OptionsError, match=r"taobao_userbehavior options: history.max_len: 0 is less than the minimum of 1"
    ):
        FORMATS["taobao_userbehavior"].options.resolve({"history": {"max_len": 0}})
    with pytest.raises(OptionsError, match=r"criteo_dac takes no option time_split; it takes hash_bins, input_hash"):
        FORMATS["criteo_dac"].options.resolve({"time_split": {}})


def test_reader_keyword_defaults_are_the_fragment_defaults():
    """The readers' keyword defaults are read from options.yaml, not written a second time."""
    criteo = inspect.signature(CriteoReader).parameters
    defaults = FORMATS["criteo_dac"].options.resolve({})
    assert criteo["hash_bins"].default == defaults["hash_bins"] == 2_000_000
    assert criteo["delimiter"].default == defaults["reader"]["delimiter"] == "\t"
    taobao = inspect.signature(TaobaoAdReader).parameters
    assert taobao["max_len"].default == FORMATS["taobao_ad"].options.resolve({})["history"]["max_len"]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def test_no_format_imports_another_format_or_a_private_name():
    problems = []
    for path in sorted(FORMATS_DIR.glob("*/*.py")):
        own = path.parent.name
        for module, names in _imports(path):
            other = re.match(r"ctrbench\.data\.formats\.([a-z_]+)", module)
            if other and other.group(1) not in (own, "base"):
                problems.append(f"{path.relative_to(REPO)} imports {module}")
            if module.startswith("ctrbench") and (private := [n for n in names if n.startswith("_")]):
                problems.append(f"{path.relative_to(REPO)} imports private {private} from {module}")
    assert problems == []


def test_no_module_of_the_package_is_much_over_400_lines():
    lengths = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {path: n for path, n in lengths.items() if n > 420} == {}
