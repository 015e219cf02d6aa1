"""What a workflow job imports: each job is a fresh interpreter whose start-up is mostly imports, so a job must not
import what its path never uses (bench/job_startup.py times them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ctrbench.data.schema import Feature, FeatureMap, tasks_of
from ctrbench.models.registry import BUILT_IN, build_model

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "sklearn", "pandas", "ctrbench.data.formats", "transformers"]


def modules_after(code: str) -> list[str]:
    """Of the model modules and HEAVY, those a fresh interpreter holds after running ``code`` (in watched order)."""
    watched = [*BUILT_IN.values(), *HEAVY]
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {watched!r} if m in sys.modules))"
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'workflow_scripts'}"}
    run = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_model_lookup_imports_the_module_of_its_arch_alone():
    """A train or gold_eval job builds one model: looking up an arch imports its module and those it builds on, and
    the registry alone imports no torch."""
    assert modules_after("import ctrbench.models.registry") == []
    lookup = "from ctrbench.models.registry import model_class; model_class({!r})"
    assert modules_after(lookup.format("dcnv2")) == ["ctrbench.models.dcnv2", "torch"]
    assert modules_after(lookup.format("omoe")) == ["ctrbench.models.mmoe", "ctrbench.models.omoe", "torch"]
    # transformers is imported when an LLM-CTR model is built, not when its class is looked up (the config check)
    assert modules_after(lookup.format("llm_ctr")) == ["ctrbench.models.llm_ctr", "torch"]
    fm = FeatureMap(dataset="tiny", tasks=tasks_of(["y"]), features=[Feature("c", "categorical", vocab_size=3)])
    with pytest.raises(ValueError, match="unknown model arch 'dcn'; known: autoint, autoint_plus, bst, dcnv2, .*, sum_pooling"):
        build_model("dcn", fm)


def test_report_job_imports_no_torch_no_formats():
    """The report reads JSON records and the config's per-model view: no torch, scikit-learn or dataset formats."""
    imports = "import _source_tree\nimport ctrbench.report.build, ctrbench.results, ctrbench.data.manifest, ctrbench.provenance"
    assert modules_after(imports) == []


def test_gold_eval_job_imports_one_model():
    """workflow_scripts/gold_eval.py's imports and its checkpoint's model: torch, no other model module, no dataset
    format, and no scikit-learn (ctrbench.metrics computes its formulas) or pandas (gAUC alone imports it)."""
    imports = (
        "import _source_tree\nimport torch\nimport ctrbench.atomic, ctrbench.evaluate, ctrbench.joblog, ctrbench.provenance\n"
        "from ctrbench.models.registry import model_class; model_class('deepfm')"
    )
    assert modules_after(imports) == ["ctrbench.models.deepfm", "torch"]
