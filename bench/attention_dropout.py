"""What attention dropout costs on a CPU: training samples/s of the field Transformer (arch
field_transformer, the suite's AutoInt before the paper's took that name) and FT-Transformer (the default's sizes,
batch 1024, one thread as a default-run job) with and without dropout, in one process. With dropout, SDPA leaves
its fused kernel for the math path and draws a mask over every attention weight; this is why the default config
trains them without dropout.

    python bench/attention_dropout.py [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, tasks_of
from ctrbench.models.registry import build_model
from ctrbench.train.optim import GroupedOptimizer
from ctrbench.train.step import train_step

VARIANTS = {
    "field_transformer": ({"embedding_dim": 16, "num_layers": 2, "num_heads": 2, "dropout": 0.1},
                          {"embedding_dim": 16, "num_layers": 2, "num_heads": 2, "dropout": 0.0}),
    "ft_transformer": ({"d_token": 16, "num_layers": 2, "num_heads": 2},
                       {"d_token": 16, "num_layers": 2, "num_heads": 2, "attention_dropout": 0.0, "ffn_dropout": 0.0}),
}  # fmt: skip


def rate(arch: str, params: dict, batch: Batch, steps: int) -> float:
    torch.manual_seed(0)
    fm = FeatureMap(dataset="bench", tasks=tasks_of(["label"]),
                    features=[Feature(f"I{i}", "dense") for i in range(1, 14)]
                    + [Feature(f"C{i}", "categorical", vocab_size=10_000) for i in range(1, 27)])  # fmt: skip
    model = build_model(arch, fm, params, sparse_embeddings=True)
    optimizer = GroupedOptimizer(model.parameter_groups(), {"embedding": {"name": "sgd", "lr": 1.0},
                                 "dense": {"name": "adamw", "lr": 1e-3}}, model.no_weight_decay())  # fmt: skip
    device = torch.device("cpu")
    for step in range(steps + 3):  # 3 warm-up steps, not timed
        if step == 3:
            start = time.perf_counter()
        train_step(model, model, optimizer, batch, device)
    return steps * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batch = Batch(labels=torch.randint(0, 2, (1024, 1), generator=g).float(),
                  categorical=torch.randint(0, 10_000, (1024, 26), generator=g), dense=torch.randn(1024, 13, generator=g))  # fmt: skip
    print(f"batch 1024, {args.threads} thread(s), {args.steps} timed steps")
    for arch, (with_dropout, without) in VARIANTS.items():
        a, b = rate(arch, with_dropout, batch, args.steps), rate(arch, without, batch, args.steps)
        print(f"{arch:<16} with dropout {a:>8,.0f} samples/s, without {b:>8,.0f} ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
