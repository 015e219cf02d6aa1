"""Training in bf16 against fp32 with the trainer's own pieces (``train_step`` under autocast): samples/s of
DCNv2 at batch 4096 and the loss after 60 Adam steps from the same initial weights and batches, in one process.

    python bench/precision.py [--steps 60] [--batch-size 4096] [--threads 2]

On a CPU, what bf16 buys depends on the matrix units: AMX (Sapphire Rapids and later) runs bf16 matmuls several
times faster than fp32, AVX512-BF16 much less so. The first line says which this CPU has.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, tasks_of
from ctrbench.models.registry import build_model
from ctrbench.train.optim import GroupedOptimizer
from ctrbench.train.step import train_step


def cpu_flags() -> str:
    flags = Path("/proc/cpuinfo").read_text().split()
    return ", ".join(f for f in ("amx_bf16", "avx512_bf16", "avx512f") if f in flags) or "no AVX-512 or AMX"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fm = FeatureMap(dataset="bench", tasks=tasks_of(["label"]),
                    features=[Feature(f"I{i}", "dense") for i in range(1, 14)]
                    + [Feature(f"C{i}", "categorical", vocab_size=10_000) for i in range(1, 27)])  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(args.steps + 3):  # a batch of its own for every step (cycled batches are memorised)
        categorical = torch.randint(0, 10_000, (args.batch_size, 26), generator=generator)
        dense = torch.randn(args.batch_size, 13, generator=generator)
        logit = (categorical[:, 0] % 2 * 2 - 1).float() + dense[:, 0]
        labels = (torch.rand(args.batch_size, generator=generator) < torch.sigmoid(logit)).float().unsqueeze(1)
        batches.append(Batch(labels=labels, categorical=categorical, dense=dense))
    initial = build_model("dcnv2", fm, {"embedding_dim": 16, "dropout": 0.0})
    settings = {"embedding": {"name": "adam", "lr": 1e-3}, "dense": {"name": "adam", "lr": 1e-3}}
    figures = {}
    for precision in ("fp32", "bf16"):
        model = copy.deepcopy(initial)
        optimizer = GroupedOptimizer(model.parameter_groups(), settings, model.no_weight_decay())
        device = torch.device("cpu")
        for step in range(3):  # warm-up, not timed
            train_step(model, model, optimizer, batches[step], device, precision)
        start = time.perf_counter()
        for step in range(args.steps):
            loss = train_step(model, model, optimizer, batches[3 + step], device, precision)
        seconds = time.perf_counter() - start
        figures[precision] = (args.steps * args.batch_size / seconds, float(loss))
    (fp32, loss32), (bf16, loss16) = figures["fp32"], figures["bf16"]
    print(f"CPU: {cpu_flags()}; {args.threads} threads; DCNv2 (d 16), batch {args.batch_size}, {args.steps} Adam steps")
    print(f"fp32 {fp32:,.0f} samples/s, loss {loss32:.4f}; bf16 {bf16:,.0f} samples/s ({bf16 / fp32:.2f}x), "
          f"loss {loss16:.4f} ({loss16 - loss32:+.4f} from fp32)")


if __name__ == "__main__":
    main()
