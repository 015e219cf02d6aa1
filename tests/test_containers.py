"""Apptainer definitions, the lock they and the conda envs share, the image names and the rules' container directives.

Apptainer itself cannot be installed where the tests run: the definition files are checked with a parser of the
definition format (the rules of Apptainer's own parser, pkg/build/types/parser/deffile.go), and Snakemake's
Apptainer code path runs with a stand-in `apptainer` that records what it is asked and runs the job on the host.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_workflow import TINY_CONFIG, with_changes
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

KINDS = ("cpu", "gpu")
DEFINITIONS = {kind: REPO / "containers" / f"ctrbench-{kind}.def" for kind in KINDS}
DIGEST_PINNED = re.compile(
    r"^(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::(?P<tag>[\w][\w.-]*))?@sha256:[0-9a-f]{64}$"
)


def load_lock_module():
    spec = importlib.util.spec_from_file_location("ctrbench_envs_lock", REPO / "envs" / "lock.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = load_lock_module()


# --- a parser of the Apptainer definition format ---------------------------------------------------------------

HEADER_KEYS = {
    "bootstrap",
    "from",
    "includecmd",
    "mirrorurl",
    "updateurl",
    "osversion",
    "include",
    "library",
    "registry",
    "namespace",
    "stage",
    "product",
    "user",
    "regcode",
    "productpgp",
    "registerurl",
    "modules",
    "fingerprints",
    "confurl",
    "setopt",
}
SECTIONS = {
    "help",
    "setup",
    "files",
    "labels",
    "environment",
    "pre",
    "post",
    "runscript",
    "test",
    "startscript",
    "arguments",
}
APP_SECTIONS = {"appinstall", "applabels", "appfiles", "appenv", "apptest", "apphelp", "apprun", "appstart"}


class DefinitionError(ValueError):
    pass


def parse_header(lines: list[str]) -> dict[str, str]:
    """`Key: value` lines (keys case-insensitive); blank and # lines skipped, trailing # comments cut, `\\` continues."""
    header: dict[str, str] = {}
    pending_key, pending_value = None, ""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            if pending_key:
                header[pending_key], pending_key, pending_value = pending_value, None, ""
            continue
        line = line.split("#", 1)[0]
        if pending_key is None:
            if ":" not in line:
                raise DefinitionError(f"header line {raw!r} has no 'key: value'")
            key, value = (part.strip() for part in line.split(":", 1))
            key = key.lower()
        else:
            key, value, pending_key = pending_key, pending_value + line.strip(), None
        if value.endswith("\\"):
            pending_key, pending_value = key, value[:-1]
            continue
        if key not in HEADER_KEYS and re.sub(r"\d+$", "&n", key) != "otherurl&n":
            raise DefinitionError(f"invalid header keyword {key!r}")
        header[key] = value
    if pending_key:
        header[pending_key] = pending_value
    return header


def parse_stage(text: str) -> dict:
    """One build stage: the header (every line before the first section), then the %sections.

    A section starts at a line whose first word starts with %; its name is that word, lower-cased, and the rest
    of the line its arguments. Only Apptainer's sections (and SCIF app sections) are allowed.
    """
    header_lines: list[str] = []
    sections: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if words and words[0].startswith("%"):
            name = words[0][1:].lower()
            if name in APP_SECTIONS:
                if len(words) < 2:
                    raise DefinitionError(f"app section %{name} names no app")
                name = f"{name} {words[1]}"
            elif name not in SECTIONS:
                raise DefinitionError(f"invalid section %{name}")
            current = sections.setdefault(name, {"args": " ".join(words[1:]), "body": []})
            continue
        if current is None:
            header_lines.append(line)
        else:
            current["body"].append(line)
    header = parse_header(header_lines)
    files = []
    if "files" in sections:
        for line in sections["files"]["body"]:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = re.findall(r'"[^"]*"|\'[^\']*\'|\S+', line)
            files.append((parts[0].strip("\"'"), parts[1].strip("\"'") if len(parts) > 1 else ""))
    labels = {}
    for line in sections.get("labels", {"body": []})["body"]:
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            labels[key] = value.strip()
    for name, section in sections.items():
        section["body"] = "\n".join(section["body"])
    if not header and not sections:
        raise DefinitionError("empty definition")
    return {"header": header, "sections": sections, "files": files, "labels": labels}


def parse_definition(text: str) -> list[dict]:
    """The stages of a definition file (a new stage starts at each `Bootstrap:` line)."""
    starts = [m.start() for m in re.finditer(r"(?mi)^bootstrap:", text)]
    pieces = [text[a:b] for a, b in zip([0] + starts, starts + [len(text)])]
    stages = [parse_stage(piece) for piece in pieces if piece.strip() and parse_stage_has_content(piece)]
    if not stages:
        raise DefinitionError("no stages")
    return stages


def parse_stage_has_content(piece: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in piece.splitlines())


def definition(kind: str) -> dict:
    stages = parse_definition(DEFINITIONS[kind].read_text())
    assert len(stages) == 1, "one build stage per image"
    return stages[0]


def test_the_parser_follows_the_definition_format():
    stage = parse_definition(
        "# a comment before the header\n"
        "Bootstrap: docker   # trailing comment\n"
        "From: example/image:1.0@sha256:" + "a" * 64 + "\n\n"
        '%files\n    a.txt /opt/a.txt\n    # skipped\n    "b c.txt" /opt/b\n'
        "%labels\n    org.example.title demo image\n"
        "%post\n    echo hi | grep -c '%not a section'\n"
    )[0]
    assert stage["header"] == {"bootstrap": "docker", "from": "example/image:1.0@sha256:" + "a" * 64}
    assert stage["files"] == [("a.txt", "/opt/a.txt"), ("b c.txt", "/opt/b")]
    assert stage["labels"] == {"org.example.title": "demo image"}
    assert "%not a section" in stage["sections"]["post"]["body"]
    assert len(parse_definition("Bootstrap: docker\nFrom: a\nStage: one\n%post\n\nBootstrap: docker\nFrom: b\n")) == 2
    with pytest.raises(DefinitionError, match="invalid section %postt"):
        parse_definition("Bootstrap: docker\nFrom: a\n%postt\n    true\n")
    with pytest.raises(DefinitionError, match="invalid header keyword 'form'"):
        parse_definition("Bootstrap: docker\nForm: a\n")
    with pytest.raises(DefinitionError, match="no 'key: value'"):
        parse_definition("Bootstrap docker\n%post\n")


# --- the definition files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_definition_parses_and_copies_files_that_exist(kind):
    stage = definition(kind)
    assert stage["header"]["bootstrap"] == "docker"
    assert set(stage["sections"]) <= {"arguments", "labels", "help", "files", "environment", "post", "test"}
    assert stage["sections"]["post"]["body"].strip()
    assert stage["labels"]["org.opencontainers.image.title"] == f"ctrbench-{kind}"
    for source, destination in stage["files"]:
        assert (REPO / source).is_file(), f"%files copies {source}, which is not in the checkout"
        assert destination.startswith("/opt/ctrbench/")
    assert {source for source, _ in stage["files"]} == {"envs/ctrbench.lock", "envs/lock.py"}


@pytest.mark.parametrize("kind", KINDS)
def test_base_image_is_pinned_by_digest(kind):
    source = definition(kind)["header"]["from"]
    assert DIGEST_PINNED.match(source), f"{kind}: base image {source!r} is not pinned by @sha256:<64 hex>"
    assert ":latest@" not in source
    # no other image reference hides anywhere in the file (docker://, another From:)
    text = DEFINITIONS[kind].read_text()
    assert len(re.findall(r"(?mi)^\s*from:", text)) == 1
    assert "docker://" not in text and "library://" not in text and "oras://" not in text


def test_base_images_agree_with_the_lock():
    cpu_from = DIGEST_PINNED.match(definition("cpu")["header"]["from"])
    assert cpu_from["repository"] == "python"
    assert cpu_from["tag"].startswith(lock.python_version("cpu") + "."), (
        "the CPU base's Python is the lock's [cpu] python"
    )

    gpu_from = DIGEST_PINNED.match(definition("gpu")["header"]["from"])
    torch_version, _, cuda = lock.pins("gpu")["torch"].partition("+")
    assert gpu_from["repository"] == "pytorch/pytorch"
    tag = re.fullmatch(r"(?P<torch>[\d.]+)-cuda(?P<cuda>[\d.]+)-cudnn\d+-(?P<flavour>devel|runtime)", gpu_from["tag"])
    assert tag and tag["torch"] == torch_version, "the GPU base's torch is the lock's [gpu-base] torch"
    assert "cu" + tag["cuda"].replace(".", "") == cuda, "the GPU base's CUDA is the local version of the locked torch"
    assert tag["flavour"] == "devel", "the CUDA extensions compile against the base: it needs nvcc"
    # the same torch release on both kinds: a model trains the same code on CPU and GPU
    assert lock.pins("cpu")["torch"].split("+")[0] == torch_version


@pytest.mark.parametrize("kind", KINDS)
def test_every_version_a_definition_names_is_the_locks(kind):
    text = DEFINITIONS[kind].read_text()
    pins = lock.pins(kind)
    named = re.findall(r"([A-Za-z][A-Za-z0-9._-]*)==([\w.+*!-]+)", text)
    for name, version in named:
        assert pins.get(canonicalize_name(name)) == version, (
            f"{kind}.def pins {name}=={version}; the lock says {pins.get(canonicalize_name(name))}"
        )
    # and what the prose and labels say
    for version in re.findall(r"\btorch (\d+\.\d+\.\d+(?:\+\w+)?)", text):
        assert pins["torch"].startswith(version), f"{kind}.def mentions torch {version}; the lock has {pins['torch']}"
    for version in re.findall(r"\bPython (\d+\.\d+)\b", text):
        assert version == lock.python_version(kind), f"{kind}.def mentions Python {version}"


@pytest.mark.parametrize("kind", KINDS)
def test_definition_installs_only_through_the_lock(kind):
    post = definition(kind)["sections"]["post"]["body"]
    order = [
        f"check-base {kind}",
        f"requirements {kind} > ",
        "python3 -m pip install --no-deps -r",
        "python3 -m pip check",
        f"check-installed {kind}",
        "pip freeze --all",
    ]
    positions = [post.find(step) for step in order]
    assert all(p >= 0 for p in positions), dict(zip(order, positions))
    assert positions == sorted(positions), "base checked, lock installed, then verified"
    installs = re.findall(r"pip install[^\n]*", post)
    assert all("--no-deps" in line and " -r " in line for line in installs), installs
    if kind == "gpu":
        assert f"requirements {kind} --build" in post and "--no-build-isolation" in post
        for entry in lock.load()["gpu-build"]:
            variable = lock.FORCE_BUILD[entry.name]  # every compiled package is forced to build from source
            assert f"{variable}=TRUE" in post
        assert "{{ MAX_JOBS }}" in post and "MAX_JOBS" in definition(kind)["sections"]["arguments"]["body"]
    assert "python3 -m pip install --no-deps -r /opt/ctrbench/requirements.txt" in post


# --- the lock and the files derived from it ---------------------------------------------------------------------


def test_lock_parses_and_accepts_only_exact_pins():
    sections = lock.load()
    assert set(sections) == set(lock.SECTIONS)
    assert lock.python_version("cpu") == "3.11" and lock.python_version("gpu") == "3.12"
    assert lock.pins("cpu")["torch"] == "2.13.0+cpu" and lock.pins("gpu")["torch"] == "2.13.0+cu130"
    for name in ("transformers", "flash-attn", "mamba-ssm", "causal-conv1d", "pandas", "pyarrow", "snakemake"):
        assert name in lock.pins("gpu")
    template = (
        "[common]\n{common}\n[torch-deps]\n[cpu]\npython==3.11.*\n[gpu-base]\npython==3.12.*\n[gpu]\n[gpu-build]\n"
    )
    assert lock.parse(template.format(common="numpy==2.4.6"))["common"][0].version == "2.4.6"
    for bad, message in [
        ("numpy>=2", "not an exact pin"),
        ("numpy==2.*", "without wildcards"),
        ("[extras]", "unknown section"),
        ("[cpu]", "appears twice"),
    ]:
        with pytest.raises(lock.LockError, match=re.escape(message)):
            lock.parse(template.format(common=bad))
    with pytest.raises(lock.LockError, match="pinned in both"):
        lock.parse(template.format(common="numpy==2.4.6").replace("[gpu]\n", "[gpu]\nnumpy==2.4.5\n"))
    with pytest.raises(lock.LockError, match="exactly one python"):
        lock.parse(template.format(common="").replace("python==3.12.*\n", ""))


@pytest.mark.parametrize("kind", KINDS)
def test_lock_satisfies_the_packages_declared_dependencies(kind):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = lock.pins(kind)
    declared = [Requirement(r) for r in project["dependencies"]] + [Requirement("pytest")]
    for requirement in declared:
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} (pyproject.toml) is not in envs/ctrbench.lock for {kind}"
        assert requirement.specifier.contains(version, prereleases=True), f"{kind}: {requirement} vs locked {version}"


def test_conda_env_files_are_written_from_the_lock():
    assert lock.sync(check=True) == [], "run `python3 envs/lock.py sync` after editing envs/ctrbench.lock"
    for kind, (env_file, deploy_file) in lock.CONDA_FILES.items():
        env = yaml.safe_load((REPO / "envs" / env_file).read_text())
        dependencies = env["dependencies"]
        assert f"python={lock.python_version(kind)}" in dependencies
        pip = next(d["pip"] for d in dependencies if isinstance(d, dict))
        pinned = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in pip if "==" in line}
        locked = {
            e.name: e.version
            for s in lock.KINDS[kind].conda_pip
            for e in lock.load()[s]
            if e.name and e.name != "python"
        }
        assert pinned == locked
        assert "ctrbench" not in pinned, "jobs import ctrbench from the checkout, not from the env"
        if deploy_file:
            script = REPO / "envs" / deploy_file
            assert os.access(script, os.X_OK)
            for entry in lock.load()["gpu-build"]:
                assert entry.text in script.read_text()
    # every rule's conda env exists
    for match in re.finditer(
        r'conda:\s*\n\s*"([^"]+)"', "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    ):
        assert (REPO / "rules" / match.group(1)).resolve().is_file(), match.group(1)


# --- image names, the build script ------------------------------------------------------------------------------


def checkout_copy(
    tmp_path: Path,
    parts=("Snakefile", "rules", "workflow_scripts", "config", "envs", "containers", "ctrbench", "report"),
) -> Path:
    work = tmp_path / "wf"
    work.mkdir()
    for part in parts:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, work / part, ignore=shutil.ignore_patterns("*.sif", "__pycache__"))
        else:
            shutil.copy(source, work / part)
    return work


def test_image_name_changes_with_the_definition_or_the_locked_versions(tmp_path):
    work = checkout_copy(tmp_path, parts=("envs", "containers"))
    names = {kind: lock.image_name(kind, work) for kind in KINDS}
    assert names == {kind: lock.image_name(kind) for kind in KINDS}, "the name depends on content, not location"
    assert re.fullmatch(r"ctrbench-cpu-py3\.11-torch2\.13\.0-cpu-[0-9a-f]{12}\.sif", names["cpu"])
    assert re.fullmatch(r"ctrbench-gpu-py3\.12-torch2\.13\.0-cu130-[0-9a-f]{12}\.sif", names["gpu"])

    lock_file = work / "envs" / "ctrbench.lock"
    lock_file.write_text(lock_file.read_text() + "\n# a comment changes nothing\n")
    assert {kind: lock.image_name(kind, work) for kind in KINDS} == names
    lock_file.write_text(lock_file.read_text().replace("einops==0.8.2", "einops==0.8.1"))  # a GPU-only pin
    assert lock.image_name("gpu", work) != names["gpu"] and lock.image_name("cpu", work) == names["cpu"]
    lock_file.write_text(lock_file.read_text().replace("numpy==2.4.6", "numpy==2.4.5"))
    assert lock.image_name("cpu", work) != names["cpu"]
    gpu_def = work / "containers" / "ctrbench-gpu.def"
    gpu_def.write_text(
        gpu_def.read_text().replace('FLASH_ATTN_CUDA_ARCHS="80;90"', 'FLASH_ATTN_CUDA_ARCHS="80;90;100"')
    )
    assert lock.image_name("gpu", work) != names["gpu"]


FAKE_APPTAINER = r"""#!/usr/bin/env bash
# A stand-in for apptainer: records exec (image, options, command) and build calls in $FAKE_APPTAINER_LOG, runs the
# command on the host instead of in the image, and fails like apptainer when the image file does not exist.
set -euo pipefail
log="${FAKE_APPTAINER_LOG:-/dev/null}"
args=()
for arg in "$@"; do case "$arg" in --quiet | --silent) ;; *) args+=("$arg") ;; esac; done
set -- "${args[@]}"
case "${1:-}" in
    --version) echo "apptainer version 1.3.6" ;;
    exec)
        shift; options=()
        while [[ "$1" == -* ]]; do
            case "$1" in
                --home | --bind | -B | --pwd | --env) options+=("$1" "$2"); shift 2 ;;
                *) options+=("$1"); shift ;;
            esac
        done
        image="$1"; shift
        [[ -f "$image" ]] || { echo "FATAL: could not open image $image" >&2; exit 255; }
        python3 -c 'import json, sys; print(json.dumps({"exec": sys.argv[1], "options": sys.argv[2], "command": sys.argv[3]}))' \
            "$image" "${options[*]}" "$*" >> "$log"
        exec "$@" ;;
    build)
        shift; positional=(); build_args=()
        while (($#)); do
            case "$1" in
                --build-arg) build_args+=("$2"); shift 2 ;;
                -*) shift ;;
                *) positional+=("$1"); shift ;;
            esac
        done
        [[ -f "${positional[1]}" ]] || { echo "FATAL: no definition ${positional[1]}" >&2; exit 255; }
        printf '{"build": "%s", "definition": "%s", "build_args": "%s"}\n' "${positional[0]}" "${positional[1]}" "${build_args[*]:-}" >> "$log"
        : > "${positional[0]}" ;;
    *) echo "fake apptainer: unsupported: $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def fake_apptainer(tmp_path, monkeypatch):
    """`apptainer` on PATH is the stand-in; returns a function that reads what it was asked."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "apptainer"
    script.write_text(FAKE_APPTAINER)
    script.chmod(0o755)
    log = tmp_path / "apptainer.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_APPTAINER_LOG", str(log))
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def build_sh(*args, cwd=REPO, checkout=REPO):
    return subprocess.run(
        ["bash", str(checkout / "containers" / "build.sh"), *args],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_build_script_names_and_builds_each_image_once(tmp_path, fake_apptainer):
    out = tmp_path / "images"
    printed = build_sh("--print-name", "-o", str(out))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.split() == [str(out / lock.image_name(kind)) for kind in KINDS]
    assert not out.exists() and fake_apptainer() == []

    built = build_sh("gpu", "-o", str(out), "-j", "12", cwd=tmp_path)  # from any directory
    assert built.returncode == 0, built.stderr
    image = out / lock.image_name("gpu")
    assert built.stdout.split() == [str(image)] and image.is_file()
    (call,) = fake_apptainer()
    assert call == {
        "build": f"{image}.partial",
        "definition": "containers/ctrbench-gpu.def",
        "build_args": "MAX_JOBS=12",
    }
    assert not Path(f"{image}.partial").exists()

    again = build_sh("gpu", "-o", str(out))
    assert again.returncode == 0 and "kept" in again.stderr and len(fake_apptainer()) == 1
    assert build_sh("gpu", "-o", str(out), "--force").returncode == 0 and len(fake_apptainer()) == 2
    assert build_sh("tpu").returncode == 2


# --- the rules ---------------------------------------------------------------------------------------------------

def _one_small_model(config: dict) -> None:
    config["benchmark"] = {"datasets": ["tiny"], "models": ["dcnv2"], "seeds": [11]}
    config["datasets"] = {"tiny": {**config["datasets"]["tiny_criteo"], "synthetic": {"rows": 3000, "seed": 3}, "hash_bins": 200}}
    config["models"] = {"dcnv2": {"arch": "dcnv2", "params": {"embedding_dim": 4, "num_cross_layers": 1, "mlp_hidden": [8]}}}
    config["training"]["max_epochs"] = 1


TINY = with_changes(TINY_CONFIG, _one_small_model)
RULE_IMAGES = {"generate_synthetic": "cpu", "preprocess": "cpu", "train": "gpu", "gold_eval": "gpu", "report": "cpu"}


def run_snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=work, check=False, capture_output=True, text=True, timeout=600
    )


def test_lint_is_clean_with_the_container_directives(tmp_path):
    run = run_snakemake(checkout_copy(tmp_path), "--lint")
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_rule_declares_its_image_next_to_its_conda_env():
    rules = "".join(path.read_text() for path in sorted((REPO / "rules").glob("*.smk")))
    for rule, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", rules, flags=re.MULTILINE):
        kind = {"partial_report": "cpu"}.get(rule, RULE_IMAGES.get(rule))
        assert kind, f"rule {rule}: which image does it use?"
        assert re.search(
            r'conda:\s*\n\s*"\.\./envs/ctrbench\.yaml"\s*\n\s*container:\s*\n\s*container_image\("' + kind + r'"\)',
            body,
        ), f"rule {rule} should run in the {kind} image"


def test_apptainer_runs_every_job_in_its_image_with_this_checkouts_ctrbench(tmp_path, fake_apptainer):
    """snakemake --sdm apptainer, through Snakemake's real Apptainer code path (the stand-in runs the jobs)."""
    work = checkout_copy(tmp_path)
    init = work / "ctrbench" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+checkout-'))
    images = {}
    for kind in KINDS:
        printed = build_sh("--print-name", kind, checkout=work)
        images[kind] = Path(printed.stdout.strip())
        assert images[kind] == work / "containers" / "images" / lock.image_name(kind)
        images[kind].parent.mkdir(parents=True, exist_ok=True)
        images[kind].touch()  # a "built" image under the name the rules ask for
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))

    run = run_snakemake(
        work,
        "results/report.html",
        "--cores",
        "2",
        "--sdm",
        "apptainer",
        "--apptainer-args=--nv",
        "--configfile",
        "tiny.yaml",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    calls = fake_apptainer()
    ran = {}
    for call in calls:
        script = re.search(r"\.snakemake/scripts/tmp\w+\.(\w+)\.py", call["command"]).group(1)
        ran[script] = call
    assert set(ran) == set(RULE_IMAGES)
    for script, kind in RULE_IMAGES.items():
        assert ran[script]["exec"] == str(images[kind]), f"{script} ran in {ran[script]['exec']}"
        assert "--nv" in ran[script]["options"].split()
    metrics = json.loads((work / "results" / "tiny" / "dcnv2" / "seed11" / "train_metrics.json").read_text())
    assert metrics["provenance"]["packages"]["ctrbench"].startswith("9.9.9+checkout-"), (
        "the job imported another ctrbench"
    )


def test_apptainer_warns_about_an_image_not_built_yet(tmp_path, fake_apptainer):
    work = checkout_copy(tmp_path)
    run = run_snakemake(work, "results/report.html", "-n", "--sdm", "apptainer")
    assert run.returncode == 0, run.stderr[-2000:]
    output = run.stdout + run.stderr
    assert "containers/build.sh cpu" in output and "containers/build.sh gpu" in output
