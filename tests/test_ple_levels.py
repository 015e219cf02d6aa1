"""PLE with its own expert widths per level (``expert_hidden: [[...], [...]]``, as Multitask-Recommendation-
Library's PLE): each level's experts have that level's widths and read the previous level's output; one list is
still every level's widths; a list of lists of the wrong length, or a mix, is refused when the config is read."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from ctrbench.config import ConfigError, check_config
from ctrbench.models.multitask import ParallelLinear
from ctrbench.models.registry import build_model, check_params
from tests.test_multitask_models import FM, make_batch, mlp_written_out, towers_written_out

PARAMS = {"embedding_dim": 4, "tower_hidden": [5], "num_specific_experts": 2, "num_shared_experts": 1}


def linears(mlp) -> list[tuple[int, int, int]]:
    """``(n, in, out)`` of each layer of a ParallelMLP."""
    return [tuple(m.weight.shape) for m in mlp if isinstance(m, ParallelLinear)]


def test_each_level_has_its_own_expert_widths():
    torch.manual_seed(0)
    model = build_model("ple", FM, {**PARAMS, "num_levels": 3, "expert_hidden": [[8, 6], [7], [3]]})
    D, experts = model.inputs.output_dim, 3 * 2 + 1  # 3 tasks x 2 own experts + 1 shared
    assert [linears(level.experts) for level in model.levels] == [
        [(experts, D, 8), (experts, 8, 6)],
        [(experts, 6, 7)],
        [(experts, 7, 3)],
    ]
    # every level's gates read that level's input width
    assert [linears(level.task_gates)[0][1] for level in model.levels] == [D, 6, 7]
    assert linears(model.towers)[0] == (3, 3, 5)
    out = model(make_batch())
    assert out.logits.shape == (6, 3) and out.aux["gates"].shape == (6, 3, 3)


def test_per_level_widths_follow_the_cgc_equations_level_by_level():
    """Level l's outputs, y_k = sum_i g^k(x_k)_i [E_k(x_k); E_s(x_s)]_i, computed with that level's widths."""
    torch.manual_seed(1)
    model = build_model("ple", FM, {**PARAMS, "num_levels": 2, "expert_hidden": [[8], [6, 4]]}).eval()
    batch = make_batch()
    T, specific = 3, 2
    inputs = [model.inputs(batch)] * (T + 1)
    for level in model.levels:
        experts = [mlp_written_out(level.experts, i, inputs[min(i // specific, T)], final_linear=False)
                   for i in range(T * specific + 1)]  # fmt: skip
        outputs = []
        for k in range(T):
            g = torch.softmax(inputs[k] @ level.task_gates[0].weight[k], dim=1)
            mixed = experts[k * specific : (k + 1) * specific] + experts[T * specific :]
            outputs.append(sum(g[:, i : i + 1] * e for i, e in enumerate(mixed)))
        if level.shared_gate is not None:
            g = torch.softmax(inputs[T] @ level.shared_gate[0].weight[0], dim=1)
            outputs.append(sum(g[:, i : i + 1] * e for i, e in enumerate(experts)))
        inputs = outputs
    assert inputs[0].shape == (6, 4)
    torch.testing.assert_close(model(batch).logits, towers_written_out(model, inputs))


def test_one_list_is_every_levels_widths():
    torch.manual_seed(2)
    flat = build_model("ple", FM, {**PARAMS, "num_levels": 2, "expert_hidden": [8, 6]})
    torch.manual_seed(2)
    nested = build_model("ple", FM, {**PARAMS, "num_levels": 2, "expert_hidden": [[8, 6], [8, 6]]})
    assert [linears(level.experts) for level in flat.levels] == [linears(level.experts) for level in nested.levels]
    torch.testing.assert_close(flat.eval()(make_batch()).logits, nested.eval()(make_batch()).logits)


@pytest.mark.parametrize(
    "params,message",
    [
        (
            {"num_levels": 2, "expert_hidden": [[8], [6], [4]]},
            "expert_hidden lists 3 levels' widths, but num_levels is 2",
        ),
        (
            {"expert_hidden": [[8]]},
            "expert_hidden lists 1 levels' widths, but num_levels is 2",
        ),  # the default: 2 levels
        ({"num_levels": 2, "expert_hidden": [[8], 6]}, "a list of widths or a list of such lists"),
        ({"num_levels": 2, "expert_hidden": [[8], []]}, "positive integer widths for every level"),
        ({"num_levels": 1, "expert_hidden": [0]}, "positive integer widths for every level"),
        ({"num_levels": 0}, "num_levels must be an integer >= 1"),
    ],
)
def test_wrong_per_level_widths_are_refused(params, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        check_params("ple", params)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        build_model("ple", FM, params)


def test_the_config_check_refuses_a_wrong_level_count():
    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    ple = next(name for name, m in config["models"].items() if m["arch"] == "ple")
    levels = config["models"][ple]["params"].get("num_levels", 2)
    config["models"][ple]["params"]["expert_hidden"] = [[16]] * levels
    check_config(copy.deepcopy(config))
    config["models"][ple]["params"]["expert_hidden"] = [[16]] * (levels + 1)
    with pytest.raises(
        ConfigError, match=f"models.{ple}: .*lists {levels + 1} levels' widths, but num_levels is {levels}"
    ):
        check_config(copy.deepcopy(config))


def test_without_shared_experts_a_task_shares_nothing_but_the_inputs():
    """``num_shared_experts: 0`` (the default's ``ple_no_shared``): one task's loss moves its own expert and tower
    only; what the tasks still share is the input (embeddings, pooled histories)."""
    torch.manual_seed(0)
    params = {**PARAMS, "num_levels": 1, "num_specific_experts": 1, "num_shared_experts": 0, "expert_hidden": [8]}
    model = build_model("ple", FM, params)
    model(make_batch()).logits[:, 0].sum().backward()
    expert_grad = next(m for m in model.levels[0].experts if isinstance(m, ParallelLinear)).weight.grad  # [3, in, 8]
    tower_grad = next(m for m in model.towers if isinstance(m, ParallelLinear)).weight.grad  # [3, 8, 5]
    for grad in (expert_grad, tower_grad):
        assert grad[0].abs().sum() > 0 and grad[1:].abs().sum() == 0
    assert model.inputs.embedding.embedding.weight.grad.abs().sum() > 0
