"""Training throughput and peak memory of the multi-task family on the default data, against Shared-Bottom.

Writes the default config's ``kuairand_synthetic`` data (same generator, size, tasks and histories), preprocesses
it with the real reader, then trains every model of that dataset for a fixed number of steps, each in a child
process of its own (``_family_cost.py``). Prints samples/s, peak memory and the ratios to Shared-Bottom measured in
this invocation, one thread per model (as a default-run job).

    python bench/multitask_models.py [--steps 40] [--batch-size 1024] [--threads 1]
"""

from __future__ import annotations

from _family_cost import arguments, measure  # bench/ is sys.path[0] when run as a script

if __name__ == "__main__":
    measure("kuairand_synthetic", "shared_bottom", arguments(__doc__.splitlines()[0], batch_size=1024, steps=40).parse_args())
