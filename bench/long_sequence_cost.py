"""Cost of the long-sequence models against history length: FLOPs per sample, training samples/s and peak memory.

For every model of MODELS that the registry has (LONGER and HyFormer where registered, else skipped with a note) and
every ``--lengths`` (default 64, 256, 1,024, 4,096): one forward's FLOPs per sample (``FlopCounterMode``: matmuls,
convolutions and attention (on SDPA's math path), not elementwise work such as Mamba's scan or Dice), training samples/s (forward, backward
and Adam on random full histories, after one warm-up step, for about ``--seconds``) and the training's peak memory
above the idle process (the model, its batch and torch loaded): CPU, the child's peak RSS (``VmHWM``, reset once set
up); CUDA, ``torch.cuda.max_memory_allocated``. Every (model, length) runs in a child process of its own, on a small
synthetic feature map (user, item, category; one history group of items and categories with times); the batch
shrinks at long lengths to ``--tokens`` history events per batch. Ratios are to sum pooling at the same length, measured
in the same invocation. A (model, length) whose training step is estimated over ``--max-step-seconds`` is skipped.

    python bench/long_sequence_cost.py [--lengths 64 256 1024 4096] [--models din sum_pooling longer_full ...] [--batch-size 64]
                                       [--tokens 16384] [--seconds 1] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

BASELINE = "sum_pooling"
# small widths, as the default CPU config; BST pools its outputs by mean (concatenating L+1 outputs into the MLP makes
# its width grow with L) and runs without dropout (attention dropout sends CPU SDPA down its L x L math path)
MODELS = {
    "sum_pooling": {"embedding_dim": 16, "mlp_hidden": [200, 80]},
    "din": {"embedding_dim": 16, "attention_hidden": [64], "mlp_hidden": [200, 80]},
    "bst": {
        "embedding_dim": 16,
        "d_model": 32,
        "num_heads": 2,
        "pooling": "mean",
        "dropout": 0.0,
        "mlp_hidden": [200, 80],
    },
    "mamba4rec": {"embedding_dim": 16, "d_model": 16, "d_state": 8, "mlp_hidden": [200, 80]},
    "longer": {"embedding_dim": 16},  # the model's own defaults otherwise: token merge K 4, 32 query tokens
    # LONGER's own baseline for its cost claim: no merge, every token a query (full causal attention)
    "longer_full": {"arch": "longer", "embedding_dim": 16, "merge_size": 1, "num_query_tokens": None},
    "hyformer": {"embedding_dim": 16},
}
CPU_FLOPS_PER_S = 4e9  # a rough single-thread rate, only to skip what would run for minutes
ITEMS, CATEGORIES, USERS = 10_000, 100, 1_000

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from long_sequence_cost import measure
print(json.dumps(measure(**json.loads(sys.argv[2]))))
"""


def feature_map(length: int):
    from ctrbench.data.schema import Feature, FeatureMap, SequenceGroup, tasks_of

    group = SequenceGroup(
        "history", length, timestamp="time_s", storage="events", start="start", end="end", row_time="t"
    )
    return FeatureMap(
        dataset="long_sequence_cost",
        tasks=tasks_of(["click"]),
        features=[
            Feature("user_id", "categorical", vocab_size=USERS),
            Feature("item_id", "categorical", vocab_size=ITEMS),
            Feature("category_id", "categorical", vocab_size=CATEGORIES),
            Feature("item_history", "sequence", vocab_size=ITEMS, shares_vocab_with="item_id", group="history"),
            Feature(
                "category_history", "sequence", vocab_size=CATEGORIES, shares_vocab_with="category_id", group="history"
            ),
        ],
        sequence_groups=[group],
    )


def random_batch(batch_size: int, length: int, seed: int = 0):
    """Full histories (every event real, the costliest case), most recent last, with increasing gaps into the past."""
    import torch

    from ctrbench.data.batch import Batch

    g = torch.Generator().manual_seed(seed)
    ids = lambda high, *shape: torch.randint(1, high, shape, generator=g)
    gaps = torch.randint(1, 3600, (batch_size, length), generator=g).flip(1).cumsum(1).flip(1)  # [B, L], 0 < .. oldest
    return Batch(
        labels=torch.randint(0, 2, (batch_size, 1), generator=g).float(),
        categorical=torch.stack([ids(USERS, batch_size), ids(ITEMS, batch_size), ids(CATEGORIES, batch_size)], dim=1),
        sequences={
            "item_history": ids(ITEMS, batch_size, length),
            "category_history": ids(CATEGORIES, batch_size, length),
        },
        time_gaps={"history": gaps},
    )


def rss_bytes(field: str) -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))


def arch_of(name: str) -> str:
    return MODELS.get(name, {}).get("arch", name)


def measure(arch: str, length: int, batch_size: int, seconds: float, device: str, threads: int) -> dict:
    """One (model, length) in this process: FLOPs per sample, training samples/s and peak bytes above idle."""
    import torch

    from ctrbench.models.registry import build_model, model_class
    from ctrbench.train.cost import forward_flops_per_sample

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    name, arch = arch, arch_of(arch)  # a MODELS entry may be a variant of an arch
    accepted = inspect.signature(model_class(arch).__init__).parameters
    params = {k: v for k, v in MODELS.get(name, {}).items() if k in accepted}
    model = build_model(arch, feature_map(length), params).to(device)
    batch = random_batch(batch_size, length).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else lambda: None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.loss(model(batch), batch).backward()
        optimizer.step()

    # training first, so that the peak is the training's (the allocator keeps what a forward freed)
    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        idle = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
        idle = rss_bytes("VmRSS")
    step()  # warm-up: first-call overheads and Adam's state
    sync()
    steps, start = 0, time.perf_counter()
    while steps == 0 or (time.perf_counter() - start < seconds and steps < 200):
        step()
        steps += 1
    sync()
    samples_per_s = steps * batch_size / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - idle if cuda else rss_bytes("VmHWM") - idle

    # the trainer's own count (attention on SDPA's math path); FLOPs per sample do not depend on the batch
    flops = forward_flops_per_sample(model, random_batch(min(batch_size, 4), length, seed=1).to(device))
    return {
        "flops_per_sample": flops,
        "samples_per_s": samples_per_s,
        "peak_bytes": peak,
        "steps": steps,
        "batch_size": batch_size,
        "params": sum(p.numel() for p in model.parameters()),
    }


def estimated_flops_per_sample(arch: str, length: int) -> float:
    """A forward's FLOPs from the widths above, to skip a (model, length) that would run for minutes: full attention
    grows with L^2, the rest with L."""
    d_model = 32
    per_event = 4 * 2 * 32 * 64 if arch == "din" else 2 * 64 * d_model * 12  # DIN's unit / a layer's projections + FFN
    quadratic = 4 * length * length * d_model if arch in ("bst", "longer_full") else 0  # QK^T and AV
    return length * per_event + quadratic


def ratio(result: dict, base: dict | None, key: str) -> str:
    return f"{result[key] / base[key]:>9.2f}" if base and base[key] > 0 else f"{'':>9}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=16384, help="history events per batch at most (batch >= 4)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed training per (model, length)")
    parser.add_argument("--max-step-seconds", type=float, default=20.0, help="CPU: skip longer estimated steps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _child import run_child

    from ctrbench.models.registry import MODELS as REGISTERED
    from ctrbench.models.registry import _load_models

    _load_models()
    models = [m for m in args.models if arch_of(m) in REGISTERED]
    notes = [f"{m}: not registered in this checkout, skipped" for m in args.models if arch_of(m) not in REGISTERED]
    results: dict[tuple[str, int], dict] = {}
    started = time.perf_counter()
    for length in args.lengths:
        batch_size = max(4, min(args.batch_size, args.tokens // length))
        for arch in models:
            step_s = 3 * estimated_flops_per_sample(arch, length) * batch_size / CPU_FLOPS_PER_S
            if args.device == "cpu" and step_s > args.max_step_seconds:
                notes.append(f"{arch} at {length}: skipped, a training step is estimated at {step_s:.0f} s")
                continue
            spec = {"arch": arch, "length": length, "batch_size": batch_size, "seconds": args.seconds}
            spec |= {"device": args.device, "threads": args.threads}
            try:
                results[(arch, length)], _ = run_child(CHILD, str(Path(__file__).resolve().parent), json.dumps(spec))
            except SystemExit as failure:  # e.g. out of memory: note it, measure the rest
                notes.append(f"{arch} at {length}: failed, {str(failure.code).strip().splitlines()[-1]}")

    print(f"device {args.device}, {args.threads} thread(s); batch {args.batch_size} (at most {args.tokens:,} events "
          f"per batch); ~{args.seconds} s timed training each; {time.perf_counter() - started:.0f} s in all")  # fmt: skip
    print("FLOPs: one forward, matmuls/attention only (FlopCounterMode); peak: training above the idle process "
          f"({'CUDA max allocated' if args.device.startswith('cuda') else 'CPU peak RSS'}); x: ratio to {BASELINE}")  # fmt: skip
    header = f"{'model':<12}{'length':>7}{'batch':>6}{'params':>10}{'MFLOPs/sample':>15}{'x':>9}"
    print(header + f"{'samples/s':>11}{'x':>9}{'peak MiB':>10}{'x':>9}")
    for length in args.lengths:
        base = results.get((BASELINE, length))
        for arch in models:
            r = results.get((arch, length))
            if r is None or "samples_per_s" not in r:
                continue
            print(f"{arch:<12}{length:>7}{r['batch_size']:>6}{r['params']:>10,}{r['flops_per_sample'] / 1e6:>15,.2f}"
                  f"{ratio(r, base, 'flops_per_sample')}{r['samples_per_s']:>11,.0f}{ratio(r, base, 'samples_per_s')}"
                  f"{r['peak_bytes'] / 2**20:>10,.1f}{ratio(r, base, 'peak_bytes')}")  # fmt: skip
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
