"""SFT, DPO and GRPO (full and LoRA) through internflow.training on a tiny model, in-process;
the reward registry; recipes for every method load as validated parameters."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# trackio fixes its folder at import: keep this module's runs out of the user's cache.
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="internflow-trackio-"))

from internflow.training import UnknownMethodError, get_method  # noqa: E402
from internflow.training.rewards import REWARDS, UnknownRewardError, get_reward_funcs, register_reward  # noqa: E402
from tests.training_data import method_request  # noqa: E402


def _digits(completions: list, **_: object) -> list[float]:
    texts = [c if isinstance(c, str) else "".join(m["content"] for m in c) for c in completions]
    return [float(sum(ch.isdigit() for ch in text)) for text in texts]


if "digit_count" not in REWARDS:
    register_reward("digit_count")(_digits)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_supervised_and_preference_methods_lower_the_loss(
    tiny_model: Path, tmp_path: Path, method: str, use_lora: bool
) -> None:
    from internflow.training.common import run_training

    steps = 6 if method == "sft" else 4
    request = method_request(
        tiny_model, tmp_path, f"{method}-{use_lora}", method=method, use_lora=use_lora, max_steps=steps
    )
    result = run_training(request)

    losses = [p.loss for p in result.losses]
    assert result.steps == steps and len(losses) == steps
    assert _mean(losses[-2:]) < losses[0], losses
    assert (Path(result.model_path) / "config.json").is_file()
    assert not list(Path(result.model_path).glob("adapter_*")), "LoRA is merged into a plain model folder"
    assert result.per_device_train_batch_size == 8 and result.gradient_accumulation_steps == 1


@pytest.mark.parametrize("use_lora", [False, True], ids=["full", "lora"])
def test_grpo_with_a_registered_reward_moves_the_reward(tiny_model: Path, tmp_path: Path, use_lora: bool) -> None:
    from internflow.training.common import run_training

    request = method_request(
        tiny_model,
        tmp_path,
        f"grpo-{use_lora}",
        method="grpo",
        use_lora=use_lora,
        reward_funcs=("digit_count", "format"),
        num_generations=4,
        max_completion_length=8,
    )
    result = run_training(request)

    rewards = [p.loss for p in result.rewards]
    assert result.steps == 6 and len(rewards) == 6
    assert len(set(rewards)) > 1, f"the reward never moved: {rewards}"


def test_builtin_rewards_use_the_benchmarks_own_judge() -> None:
    exact, fmt, length = get_reward_funcs(["exact_answer", "format", "length_penalty"], "arithmetic")
    completions = [[{"role": "assistant", "content": "The answer is 12"}], "13", "no idea", "12" + " pad" * 100]
    assert exact(completions, answer=["12", "12", "12", "12"]) == [1.0, 0.0, 0.0, 1.0]
    assert fmt(completions) == [1.0, 1.0, 0.0, 1.0]
    penalties = length(completions)
    assert penalties[:3] == [0.0, 0.0, 0.0] and -1.0 <= penalties[3] < 0.0
    (choice,) = get_reward_funcs(["exact_answer"], "family-mc")
    assert choice(["The answer is (C)", "B"], answer=["C", "C"]) == [1.0, 0.0]


def test_rewards_resolve_by_import_path_and_unknown_names_list_the_known_ones() -> None:
    (by_path,) = get_reward_funcs(["tests.test_training_methods:_digits"], "arithmetic")
    assert by_path(["a1b22"]) == [3.0]
    with pytest.raises(UnknownRewardError, match="known: .*exact_answer.*format"):
        get_reward_funcs(["nope"], "arithmetic")
    with pytest.raises(ValueError, match="already registered"):
        register_reward("format")(_digits)


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(UnknownMethodError, match="known: dpo, grpo, sft"):
        get_method("ppo")


def test_missing_columns_name_the_method_and_the_file(tiny_model: Path, tmp_path: Path) -> None:
    from internflow.training.common import run_training

    request = method_request(tiny_model, tmp_path, "wrong-data", method="sft")
    dpo_request = request.model_copy(update={"params": request.params.model_copy(update={"method": "dpo"})})
    with pytest.raises(ValueError, match=r"sft.jsonl:1: no \['chosen', 'rejected'\] in this row; method 'dpo' needs"):
        run_training(dpo_request)


@pytest.mark.parametrize("recipe", ["sft/default", "dpo/default", "grpo/default"])
def test_every_method_has_a_recipe(recipe: str) -> None:
    from internflow.recipes import load_recipe

    params = load_recipe("smollm2-135m", recipe, ("arithmetic-direct",))
    assert params.method == recipe.split("/")[0]


def test_cli_runs_a_recipe_directly(tiny_model: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.training_data import method_data

    data = method_data(tmp_path / "data", "dpo")
    command = [sys.executable, "-m", "internflow.deployments.cli", "train", "--recipe", "dpo/smoke"]
    command += ["--data", data.path]
    command += ["--model", str(tiny_model), "--workspace", str(tmp_path / "ws"), "--max-steps", "2"]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert result["steps"] == 2 and result["trackio_run"].startswith("dpo-")
    assert (Path(result["model_path"]) / "config.json").is_file()

    bad = subprocess.run([*command[:5], "dpo/nope", *command[6:]], capture_output=True, text=True, cwd=root)
    assert bad.returncode == 2 and "recipe: no recipe 'dpo/nope'" in bad.stderr


def test_completion_only_loss_and_a_screens_share_of_the_steps_reach_trls_sft_config(
    tiny_model: Path, tmp_path: Path
) -> None:
    from internflow.training.common import base_arguments
    from internflow.training.sft import make_config

    request = method_request(
        tiny_model, tmp_path, "screen", max_steps=40, warmup_steps=4, train_fraction=0.25, completion_only_loss=False
    )
    config = make_config(request, base_arguments(request))

    assert config.completion_only_loss is False
    assert (config.max_steps, config.warmup_steps) == (10, 1), "a screen trains a quarter of the recipe's steps"
    full = method_request(tiny_model, tmp_path, "full", max_steps=40, warmup_steps=4)
    assert make_config(full, base_arguments(full)).completion_only_loss is True
