"""Writes the synthetic failure and healthy curves beside it (the real ones were read from trackio).

Shapes follow what TRL's trainers log each step (logging_steps=1): SFT/DPO loss, GRPO's reward,
reward_std, kl and completions/mean_length; seeded noise, so re-running gives the same files.
Run: `python tests/recordings/curves/make_synthetic.py`.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

HERE = Path(__file__).parent


def _sft_loss(steps: int, seed: int, start: float = 2.1, floor: float = 0.3) -> list[float]:
    noise = random.Random(seed)
    return [floor + (start - floor) * 0.88**s * (1 + noise.uniform(-0.12, 0.12)) for s in range(steps)]


def _points(values: list[float], first_step: int = 1) -> list[list[float]]:
    return [[step, round(v, 5) if math.isfinite(v) else v] for step, v in enumerate(values, start=first_step)]


def _write(name: str, description: str, metrics: dict[str, list[float]]) -> None:
    body = {
        "description": description,
        "source": "synthetic (tests/recordings/curves/make_synthetic.py)",
        "metrics": {metric: _points(values) for metric, values in metrics.items()},
    }
    (HERE / f"{name}.json").write_text(compact_json(body))


def compact_json(body: dict) -> str:
    """One line per metric: the files stay short and diff well."""
    metrics = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in body["metrics"].items())
    head = json.dumps({k: v for k, v in body.items() if k != "metrics"}, indent=1, ensure_ascii=False)[:-2]
    return f'{head},\n "metrics": {{\n{metrics}\n }}\n}}\n'


def _grpo(
    steps: int,
    seed: int,
    reward: list[float],
    reward_std: list[float],
    kl: list[float],
    length: list[float],
) -> dict[str, list[float]]:
    noise = random.Random(seed)
    return {
        "train/loss": [noise.uniform(-0.02, 0.03) for _ in range(steps)],
        "train/reward": reward,
        "train/reward_std": reward_std,
        "train/kl": kl,
        "train/completions/mean_length": length,
    }


def main() -> None:
    noise = random.Random(7)
    steps = 60

    diverging = _sft_loss(25, 1) + [0.45 * 1.12**s * (1 + noise.uniform(-0.1, 0.1)) for s in range(1, 36)]
    _write("sft_diverging", "SFT at lr 2e-3: loss falls for 25 steps, then climbs past it", {"train/loss": diverging})

    nan = _sft_loss(steps, 2)
    nan[17:] = [math.nan] * (steps - 17)
    _write("sft_nan", "SFT in fp16 at a high learning rate: the loss turns NaN at step 18", {"train/loss": nan})

    spiky = _sft_loss(steps, 3)
    spiky[30], spiky[44] = 2.6, 1.9  # steps 31 and 45: bad batches; the curve recovers after each
    _write("sft_spiky", "SFT with two loss spikes (steps 31, 45) that recover", {"train/loss": spiky})

    flat = [2.05 + noise.uniform(-0.08, 0.08) for _ in range(steps)]
    _write("sft_flat", "SFT at lr 1e-7: the loss does not move", {"train/loss": flat})

    dpo = [0.3 + 0.393 * 0.93**s + noise.uniform(-0.03, 0.03) for s in range(steps)]
    _write("dpo_healthy", "DPO: loss from ln 2 ≈ 0.693 down towards 0.3", {"train/loss": dpo})

    rise = [0.35 + 0.9 * (1 - 0.95**s) + noise.uniform(-0.08, 0.08) for s in range(steps)]
    _write(
        "grpo_healthy",
        "GRPO: reward rises, group reward std stays well above 0, KL stays small, lengths settle",
        _grpo(
            steps,
            11,
            rise,
            [0.55 - 0.2 * s / steps + noise.uniform(-0.05, 0.05) for s in range(steps)],
            [0.0] + [0.002 + 0.06 * s / steps + noise.uniform(0, 0.01) for s in range(1, steps)],
            [42 - 8 * s / steps + noise.uniform(-3, 3) for s in range(steps)],
        ),
    )
    _write(
        "grpo_concise",
        "GRPO: completions get much shorter while the reward rises (learned to answer directly): healthy",
        _grpo(
            steps,
            12,
            rise,
            [0.5 - 0.25 * s / steps + noise.uniform(-0.04, 0.04) for s in range(steps)],
            [0.0] + [0.004 + 0.1 * s / steps + noise.uniform(0, 0.01) for s in range(1, steps)],
            [48 * 0.93**s + 4 + noise.uniform(-1, 1) for s in range(steps)],
        ),
    )
    _write(
        "grpo_reward_collapse",
        "GRPO on prompts the model never solves: group reward std decays to 0, reward stuck near 0",
        _grpo(
            steps,
            13,
            [max(0.0, 0.15 * 0.9**s + noise.uniform(-0.02, 0.02)) for s in range(steps)],
            [max(0.0, 0.3 * 0.88**s + noise.uniform(-0.005, 0.005)) for s in range(steps)],
            [0.0] + [0.002 + 0.01 * s / steps for s in range(1, steps)],
            [40 + noise.uniform(-3, 3) for _ in range(steps)],
        ),
    )
    _write(
        "grpo_kl_blowup",
        "GRPO at lr 5e-5 with beta 0.001: KL to the reference grows exponentially past 1 nat",
        _grpo(
            steps,
            14,
            [0.4 + noise.uniform(-0.1, 0.1) for _ in range(steps)],
            [0.5 + noise.uniform(-0.05, 0.05) for _ in range(steps)],
            [0.0] + [0.01 * 1.11**s * (1 + noise.uniform(-0.1, 0.1)) for s in range(1, steps)],
            [40 + noise.uniform(-3, 3) for _ in range(steps)],
        ),
    )
    _write(
        "grpo_length_collapse",
        "GRPO: completions shrink to a few tokens while the reward does not improve",
        _grpo(
            steps,
            15,
            [0.5 - 0.15 * s / steps + noise.uniform(-0.05, 0.05) for s in range(steps)],
            [0.45 + noise.uniform(-0.05, 0.05) for _ in range(steps)],
            [0.0] + [0.005 + 0.2 * s / steps for s in range(1, steps)],
            [45 * 0.9**s + 2 + noise.uniform(-0.5, 0.5) for s in range(steps)],
        ),
    )


if __name__ == "__main__":
    main()
