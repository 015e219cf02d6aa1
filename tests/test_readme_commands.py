"""Every `snakemake ...` command the README and the presets' headers show works as written (issue 9).

Each one is parsed by Snakemake's own argument parser (a target written after an option that takes several values,
such as --configfile, --config or --sdm, would be read as one more value of it) and dry-run (`-n`) in a scratch copy
of the workflow, with the placeholder data paths pointed at the small real samples in tests/data.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from preset_data import stand_ins
from test_workflow import snakemake, workflow_copy

PRESETS = sorted((REPO / "config" / "presets").glob("*.yaml"))

# the data paths the documentation names, and the samples that stand in for them here

def shown_commands() -> list[tuple[str, str]]:
    """(where, command) of every snakemake command in README.md (fenced blocks and `inline` spans, which
    include the table cells) and in the presets' header comments; `a; b` and `a && b` give one per command."""
    readme = (REPO / "README.md").read_text()
    found = []
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", readme, flags=re.MULTILINE | re.DOTALL)
    for block in blocks:
        found += [("README.md code block", line) for line in block.splitlines() if not line.startswith("#")]
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", readme, flags=re.MULTILINE | re.DOTALL)
    found += [("README.md", span) for span in re.findall(r"`([^`\n]+)`", prose)]
    for preset in PRESETS:
        for line in preset.read_text().splitlines():
            if not line.startswith("#"):
                break  # the header ends at the first setting
            found.append((f"config/presets/{preset.name}", line.lstrip("# ")))
    commands = []
    for where, text in found:
        for part in re.split(r"\s*(?:;|&&)\s*", text):
            if re.match(r"snakemake\s", part.strip() + " ") and (where, part.strip()) not in commands:
                commands.append((where, part.strip()))
    return commands


COMMANDS = shown_commands()


def test_the_documentation_shows_the_commands_checked_here():
    """The extraction itself: it finds the commands a reader copies (so the tests below can't pass on nothing)."""
    shown = [command for _, command in COMMANDS]
    assert len(shown) >= 20
    for preset in PRESETS:
        assert sum(f"config/presets/{preset.name}" in c and where.endswith(preset.name) for where, c in COMMANDS) == 1
    assert any("--config " in c for c in shown) and any("--sdm apptainer" in c for c in shown)
    assert "snakemake --cores 1 results/report_partial.html" in shown  # the second command of an `a; b` cell


def substituted(command: str, work: Path) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "snakemake"
    return [replace_placeholders(arg, work) for arg in argv[1:]]


def replace_placeholders(text: str, work: Path) -> str:
    """The presets' data paths pointed at data in their layouts (tests/preset_data.py), made under ``work``."""
    for placeholder, stand_in in stand_ins(work).items():
        text = text.replace(placeholder, stand_in)
    return text


def scratch_workflow(tmp_path: Path) -> Path:
    """The workflow with the presets' data paths pointed at the samples (the profiles are used as they are)."""
    work = workflow_copy(tmp_path)
    shutil.copytree(REPO / "profiles", work / "profiles")
    for preset in (work / "config" / "presets").glob("*.yaml"):
        preset.write_text(replace_placeholders(preset.read_text(), work))
    return work


def deployment_tools(argv: list[str], work: Path) -> set[str]:
    """The software deployment methods a command uses (given on the command line or by its profile)."""
    methods = set()
    for i, arg in enumerate(argv):
        if arg in ("--sdm", "--software-deployment-method"):
            methods.update(a for a in argv[i + 1 :] if not a.startswith("-"))  # nargs="+" up to the next option
            break
    if "--profile" in argv:
        profile = yaml.safe_load((work / argv[argv.index("--profile") + 1] / "config.yaml").read_text())
        method = profile.get("software-deployment-method", [])
        methods.update([method] if isinstance(method, str) else method)
    return methods & {"apptainer", "conda"}


def without_deployment(argv: list[str], work: Path) -> list[str]:
    """The command with its software deployment method taken out, on the command line and in its profile."""
    kept, skipping = [], False
    for arg in argv:
        if arg in ("--sdm", "--software-deployment-method"):
            skipping = True
        elif skipping and not arg.startswith("-"):
            continue
        elif not arg.startswith("--apptainer-args"):
            skipping = False
            kept.append(arg)
    if "--profile" in kept:
        profile_file = work / kept[kept.index("--profile") + 1] / "config.yaml"
        profile = yaml.safe_load(profile_file.read_text())
        profile.pop("software-deployment-method", None)
        profile.pop("apptainer-args", None)
        profile_file.write_text(yaml.safe_dump(profile))
    return kept


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{i:02d}" for i in range(len(COMMANDS))])
def test_command_parses_with_its_targets_as_targets(tmp_path, monkeypatch, where, command):
    """Snakemake's own parser (profiles included) reads the command's targets as targets and its config values
    as config: `--configfile x.yaml results/report.html` instead reads the target as a second config file."""
    from snakemake.cli import parse_args, parse_config

    work = scratch_workflow(tmp_path)
    argv = substituted(command, work)
    if "--profile" in argv and argv[argv.index("--profile") + 1] == "profiles/slurm":
        pytest.importorskip("snakemake_executor_plugin_slurm", reason="the slurm profile's options need the plugin")
    monkeypatch.chdir(work)
    _, args = parse_args(argv)
    targets = [arg for arg in argv if arg.startswith("results/")]
    assert sorted(args.targets) == sorted(targets), f"{where}: {command!r} reads its targets as {args.targets}"
    for configfile in args.configfile or []:
        assert (work / configfile).is_file(), f"{where}: {command!r} names a config file {configfile!r}"
    parse_config(args.config or [])


@pytest.mark.parametrize("where, command", COMMANDS, ids=[f"{i:02d}" for i in range(len(COMMANDS))])
def test_command_dry_runs_in_a_scratch_copy(tmp_path, where, command):
    """The command itself, as a dry run. --sdm apptainer (also set by profiles/slurm) and --sdm conda make
    Snakemake look for the apptainer / conda binary while it builds the DAG, even in a dry run; where the tool is
    absent the command runs without its deployment method, so its targets, config files, profile and executor are
    still exercised, and the parser test above still checks how the full command reads its targets."""
    work = scratch_workflow(tmp_path)
    argv = substituted(command, work)
    if "--profile" in argv and argv[argv.index("--profile") + 1] == "profiles/slurm":
        pytest.importorskip("snakemake_executor_plugin_slurm", reason="profiles/slurm uses the slurm executor plugin")
    if missing := {tool for tool in deployment_tools(argv, work) if shutil.which(tool) is None}:
        argv = without_deployment(argv, work)
        assert not deployment_tools(argv, work), argv
    if "-n" not in argv and "--dry-run" not in argv:
        argv.append("-n")
    # the snakemake helper adds --cores 2, which a later --cores of the command overrides
    run = snakemake(work, *argv, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"{where}: {command!r} (run as {argv}, without {missing or 'nothing'}):\n{output[-3000:]}"
    if "--lint" not in argv:
        assert "This was a dry-run" in output or "Nothing to be done" in output, output[-2000:]
