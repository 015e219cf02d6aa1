"""Small inputs in each preset's raw layout, put where a preset's `path` placeholder points: real samples where
tests/data holds them, else files the format's own generator writes in the exact layout (no public sample)."""

import shutil
from pathlib import Path

from conftest import DATA

from ctrbench.data.formats.kuairand.synthetic_writer import write_synthetic_kuairand
from ctrbench.data.formats.tenrec.synthetic import write_synthetic_tenrec

# placeholder path in config/presets/*.yaml -> how to make a stand-in under a scratch folder
FILES = {
    "/data/criteo/train.txt": lambda work: DATA / "criteo" / "train_head50.txt",
    "/data/taobao/UserBehavior.csv": lambda work: DATA / "taobao_userbehavior" / "UserBehavior_head1000.csv",
    "/data/avazu/train.csv": lambda work: DATA / "avazu" / "avazu_sample.txt",
}


def _taobao_ad(work: Path) -> Path:
    folder = work / "TaobaoAd_x1"
    folder.mkdir(exist_ok=True)
    for split in ("train", "test"):
        shutil.copy(DATA / "taobao_ad" / f"{split}_sample.csv", folder / f"{split}.csv")
    return folder


def _aliexpress(work: Path) -> Path:
    folder = work / "AliExpress_NL"
    folder.mkdir(exist_ok=True)
    for split in ("train", "test"):
        shutil.copy(DATA / "aliexpress" / f"{split}.csv", folder / f"{split}.csv")
    return folder


def _tenrec(work: Path) -> Path:
    path = work / "QB-video.csv"
    if not path.exists():
        write_synthetic_tenrec(path, rows=3000, seed=1)
    return path


def _kuairand(work: Path) -> Path:
    folder = work / "KuaiRand" / "data"
    if not folder.exists():
        write_synthetic_kuairand(folder, rows=3000, seed=1)
    return folder


def _split_three(lines: list[str], folder: Path) -> Path:
    """A header and rows as BARS distributes a split: train.csv, valid.csv and test.csv with the header each."""
    folder.mkdir(exist_ok=True)
    header, rows = lines[0], lines[1:]
    third = len(rows) // 3
    for name, part in (("train", rows[:third]), ("valid", rows[third : 2 * third]), ("test", rows[2 * third :])):
        (folder / f"{name}.csv").write_text("\n".join([header, *part]) + "\n")
    return folder


def _criteo_x4(work: Path) -> Path:
    """BARS's Criteo_x4 layout (header Label,I1..I13,C1..C26) from the real DAC rows in tests/data."""
    header = ",".join(["Label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)])
    rows = [line.replace("\t", ",") for line in (DATA / "criteo" / "train_head50.txt").read_text().splitlines()]
    return _split_three([header, *rows], work / "Criteo_x4")


def _avazu_x4(work: Path) -> Path:
    """BARS's Avazu_x4 layout: the raw Avazu header and rows (tests/data's real sample) in three files."""
    return _split_three((DATA / "avazu" / "avazu_sample.txt").read_text().splitlines(), work / "Avazu_x4")


def local_qwen3(work: Path) -> Path:
    """A Hugging Face folder in the layout of a local Qwen3 (config.json, safetensors weights, tokenizer files), holding
    a tiny random Qwen3 and the byte-level tokenizer: where a preset's ``lm_path`` points at Qwen3-0.6B."""
    import torch

    from ctrbench.models.language_model import TinyLM, load_language_model

    folder = work / "Qwen3-tiny"
    if not folder.exists():
        torch.manual_seed(0)
        model, tokenizer, _ = load_language_model(None, TinyLM(layers=1, width=16, heads=2, kv_heads=1, intermediate=16), "sdpa")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


MADE = {
    "/data/TaobaoAd_x1": _taobao_ad,
    "/data/AliExpress_NL": _aliexpress,
    "/data/Tenrec/QB-video.csv": _tenrec,
    "/data/KuaiRand-Pure/data": _kuairand,
    "/data/KuaiRand-27K/data": _kuairand,  # the Pure layout: the reader takes both (27K's logs come in _part files)
    "/data/KuaiRand-1K/data": _kuairand,
    "/models/Qwen3-0.6B": local_qwen3,
    "/data/criteo/Criteo_x4": _criteo_x4,
    "/data/avazu/Avazu_x4": _avazu_x4,
}


def stand_ins(work: Path) -> dict[str, str]:
    """{placeholder: a path under ``work`` (or a sample) holding data in that layout}."""
    return {placeholder: str(make(work)) for placeholder, make in {**FILES, **MADE}.items()}
