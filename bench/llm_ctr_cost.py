"""Training throughput and peak memory of the LLM-CTR family on the default's synthetic Avazu, against DeepFM+GEN.

Writes the default config's ``avazu_synthetic`` data, preprocesses it with the real reader, then trains DeepFM+GEN
and each LLM-CTR model of that dataset (path C, and path A's phases with their frozen parts; phases start from
random weights here, which costs the same) for a fixed number of steps, each in a child process of its own
(``_family_cost.py``), with ratios to DeepFM+GEN measured in this invocation. By default the LM is the config's tiny
random Qwen3 on the CPU; ``--lm-shape qwen3-0.6b`` builds a random LM with Qwen3-0.6B's configuration (28 layers,
width 1024, 16 query / 8 key-value heads of 128, MLP 3072, 151,936-token table) for a GPU in bf16:

    python bench/llm_ctr_cost.py [--steps 20] [--batch-size 256] [--threads 1]
    python bench/llm_ctr_cost.py --lm-shape qwen3-0.6b --device cuda --precision bf16 --batch-size 32
"""

from __future__ import annotations

from _family_cost import arguments, measure  # bench/ is sys.path[0] when run as a script

QWEN3_0_6B = {"lm_layers": 28, "lm_width": 1024, "lm_heads": 16, "lm_kv_heads": 8, "lm_head_dim": 128,
              "lm_intermediate": 3072, "lm_vocab_size": 151936, "projector_hidden": 512}  # fmt: skip

if __name__ == "__main__":
    parser = arguments(__doc__.splitlines()[0], batch_size=256, steps=20)
    parser.add_argument("--lm-shape", choices=["config", "qwen3-0.6b"], default="config")
    args = parser.parse_args()
    overrides = {"llm_ctr": QWEN3_0_6B} if args.lm_shape == "qwen3-0.6b" else {}
    measure("avazu_synthetic", "deepfm_gen", args, ["deepfm_gen", "llm_ctr", "llm_ctr_phase1", "llm_ctr_phase2"], overrides)
