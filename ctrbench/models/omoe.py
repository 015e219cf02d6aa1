"""OMoE, One-gate Mixture-of-Experts (the baseline of Ma et al., KDD'18): MMoE with one gate for every task."""

from __future__ import annotations

from ctrbench.models.mmoe import MMoE
from ctrbench.models.registry import register

# FuxiCTR's model zoo has no OMoE; MMoE's config applies (see mmoe.py). Multitask-Recommendation-Library
# (AliExpress): embedding 128, 8 experts of (512, 256), one linear gate, towers (128, 64), dropout 0.2, batch norm.


@register
class OMoE(MMoE):
    """``y_k = h^k(f(x))``, ``f(x) = sum_i g(x)_i f_i(x)``, ``g(x) = softmax(W_g x)``: E expert MLPs and ONE gate
    shared by the tasks, one tower ``h^k`` per task (MMoE's parameters). ``aux["gates"]``: ``g(x)`` repeated for
    each task, ``[B, T, E]`` (as MMoE's, so that the two read alike)."""

    arch = "omoe"
    one_gate = True
