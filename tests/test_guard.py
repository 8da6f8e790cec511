"""The doom-loop guard on synthetic iteration histories."""

from __future__ import annotations

from internflow.agent.guard import DoomLoopGuard, GuardConfig, IterationRecord, allowed_methods, direction, signature
from internflow.schemas import IterationParams

BASE = IterationParams(datasets=("arithmetic-direct",), learning_rate=1e-4)
DATASETS = ("arithmetic-direct", "arithmetic-worked")


def record(index: int, params: IterationParams, accuracy: float | None = 0.3, **extra: object) -> IterationRecord:
    state = "FAILED" if accuracy is None else "COMPLETED"
    return IterationRecord(index=index, params=params, state=state, accuracy=accuracy, **extra)  # type: ignore[arg-type]


def failed(index: int, params: IterationParams, failure_class: str = "RuntimeError") -> IterationRecord:
    return record(index, params, None, verdict="failed", failure_class=failure_class)


def test_signature_ignores_seed_dataset_order_and_unused_lora_settings() -> None:
    a = BASE.model_copy(update={"seed": 3, "datasets": DATASETS, "lora_r": 64})
    b = BASE.model_copy(update={"seed": 9, "datasets": tuple(reversed(DATASETS))})
    assert signature(a) == signature(b)
    assert signature(a) != signature(a.model_copy(update={"use_lora": True}))
    assert signature(BASE) != signature(BASE.model_copy(update={"learning_rate": 2e-4}))


def test_a_repeated_failing_proposal_is_rejected_with_the_reason() -> None:
    review = DoomLoopGuard().review(BASE, [failed(1, BASE, "OutOfMemoryError")], baseline=0.25)
    assert [d.kind for d in review.detections] == ["repeat"]
    assert "iteration 1" in review.reasons() and "OutOfMemoryError" in review.reasons()


def test_a_two_cycle_is_detected() -> None:
    other = BASE.model_copy(update={"learning_rate": 3e-4})
    history = [record(1, BASE, 0.30), record(2, other, 0.29), record(3, BASE, 0.30)]
    review = DoomLoopGuard().review(other, history, baseline=0.25)
    assert "cycle" in {d.kind for d in review.detections}
    assert "period 2" in review.reasons()


def test_a_five_cycle_is_detected_but_a_new_proposal_is_not_a_cycle() -> None:
    steps = [BASE.model_copy(update={"max_steps": 10 * (k + 1)}) for k in range(5)]
    history = [record(i + 1, steps[i % 5], 0.3) for i in range(9)]
    guard = DoomLoopGuard(GuardConfig(stall_patience=100))
    assert "period 5" in guard.review(steps[4], history, baseline=0.25).reasons()
    fresh = BASE.model_copy(update={"max_steps": 999})
    assert guard.review(fresh, history, baseline=0.25).ok


def test_stall_is_detected_and_a_change_of_direction_forced() -> None:
    guard = DoomLoopGuard(GuardConfig(stall_patience=3, min_improvement=0.01))
    history = [
        record(1, BASE, 0.40),
        record(2, BASE.model_copy(update={"max_steps": 90}), 0.405),  # within tolerance: no improvement
        record(3, BASE.model_copy(update={"max_steps": 120}), 0.39),
        record(4, BASE.model_copy(update={"warmup_steps": 0}), 0.40),
    ]
    proposal = BASE.model_copy(update={"max_steps": 150})
    review = guard.review(proposal, history, baseline=0.25)
    assert [d.kind for d in review.detections] == ["stall"]
    forced = guard.force_change(proposal, history, review, {"sft": DATASETS})
    assert forced is not None
    assert direction(forced) != direction(proposal)
    assert guard.review(forced, history, baseline=0.25).ok


def test_guard_is_quiet_again_after_a_forced_change() -> None:
    guard = DoomLoopGuard(GuardConfig(stall_patience=2))
    stalled = [record(1, BASE, 0.40), record(2, BASE.model_copy(update={"max_steps": 90}), 0.40)]
    moved = BASE.model_copy(update={"learning_rate": 1e-5})
    after_force = [*stalled, record(3, moved, 0.40, guard_action="force")]
    follow_up = moved.model_copy(update={"max_steps": 120})
    assert guard.review(follow_up, after_force, baseline=0.25).ok
    # ... and after an improvement, the old stalled direction is open again
    improved = [*stalled, record(3, moved, 0.50)]
    assert guard.review(BASE.model_copy(update={"max_steps": 200}), improved, baseline=0.25).ok


def test_recurring_failure_class_blocks_its_direction_only() -> None:
    guard = DoomLoopGuard()
    history = [
        failed(1, BASE.model_copy(update={"max_steps": 10}), "nan_loss"),
        failed(2, BASE.model_copy(update={"max_steps": 20}), "nan_loss"),
    ]
    same_direction = BASE.model_copy(update={"max_steps": 30})
    review = guard.review(same_direction, history, baseline=0.25)
    assert [d.kind for d in review.detections] == ["recurring_failure"]
    assert "nan_loss happened 2 times" in review.reasons()
    assert guard.review(BASE.model_copy(update={"learning_rate": 1e-5}), history, baseline=0.25).ok


def test_recurring_failures_outside_the_window_are_forgotten() -> None:
    guard = DoomLoopGuard(GuardConfig(failure_window=3, stall_patience=100))
    history = [failed(1, BASE.model_copy(update={"max_steps": 10}), "nan_loss")]
    history += [failed(2, BASE.model_copy(update={"max_steps": 20}), "nan_loss")]
    history += [record(i, BASE.model_copy(update={"max_steps": 100 + i}), 0.3) for i in range(3, 6)]
    assert guard.review(BASE.model_copy(update={"max_steps": 30}), history, baseline=0.25).ok


def test_force_change_returns_none_when_nothing_untried_is_left() -> None:
    guard = DoomLoopGuard()
    params = IterationParams(datasets=("arithmetic-direct",), learning_rate=1e-4)
    review = guard.review(params, [record(1, params, 0.3)], baseline=0.25)
    moves = [
        params.model_copy(update={"learning_rate": params.learning_rate * f}) for f in (0.1, 10.0, 0.01, 100.0)
    ] + [params.model_copy(update={"use_lora": True})]
    tried = [record(i + 2, m, 0.3) for i, m in enumerate(moves)]
    only_sft = {"sft": ("arithmetic-direct",), "dpo": (), "grpo": ()}  # no data another method could train on
    assert guard.force_change(params, [record(1, params, 0.3), *tried], review, only_sft) is None


def test_allowed_methods_come_from_the_schema() -> None:
    assert "sft" in allowed_methods()


def test_a_forced_method_change_brings_data_that_can_train_that_method() -> None:
    guard = DoomLoopGuard()
    params = IterationParams(datasets=("arithmetic-direct",), learning_rate=1e-4)
    review = guard.review(params, [record(1, params, 0.3)], baseline=0.25)
    moves = [
        params.model_copy(update={"learning_rate": params.learning_rate * f}) for f in (0.1, 10.0, 0.01, 100.0)
    ] + [params.model_copy(update={"use_lora": True})]
    tried = [record(i + 2, m, 0.3) for i, m in enumerate(moves)]
    by_method = {"sft": ("arithmetic-direct",), "dpo": ("arithmetic-preference",), "grpo": ("arithmetic-prompts",)}

    forced = guard.force_change(params, [record(1, params, 0.3), *tried], review, by_method)

    assert forced is not None and forced.method == "dpo" and forced.datasets == ("arithmetic-preference",)


def test_a_screen_counts_as_an_improvement_by_its_gain_on_its_own_items() -> None:
    guard = DoomLoopGuard(GuardConfig(stall_patience=3, min_improvement=0.01))
    screen = BASE.model_copy(update={"eval_fraction": 0.5})
    assert signature(screen) != signature(BASE), "a screen and the run that promotes it differ"
    easy_items = [record(1, screen, 0.60, gain=0.0), record(2, BASE.model_copy(update={"max_steps": 90}), 0.30)]
    easy_items.append(record(3, BASE.model_copy(update={"max_steps": 120}), 0.30))
    # 60 % on the easy first half is no gain over the baseline on those items: still a stall.
    assert [d.kind for d in guard.review(BASE.model_copy(update={"max_steps": 150}), easy_items, 0.30).detections] == [
        "stall"
    ]
    gained = [record(1, screen, 0.60, gain=0.2), *easy_items[1:]]
    assert guard.review(BASE.model_copy(update={"max_steps": 150}), gained, 0.30).ok


def test_proposals_that_differ_only_in_a_newer_parameter_are_not_repeats() -> None:
    for change in ({"self_distill_k": 4}, {"completion_only_loss": False}, {"train_fraction": 0.25},
                   {"min_per_device_train_batch_size": 2},
                   {"datasets": DATASETS, "dataset_weights": (2.0, 1.0)}):  # fmt: skip
        changed = BASE.model_copy(update=change)
        assert signature(changed) != signature(BASE), change
        assert DoomLoopGuard().review(changed, [record(1, BASE)], baseline=0.25).ok, change
    weighted = BASE.model_copy(update={"datasets": DATASETS, "dataset_weights": (2.0, 1.0)})
    reordered = BASE.model_copy(update={"datasets": DATASETS[::-1], "dataset_weights": (1.0, 2.0)})
    assert signature(weighted) == signature(reordered), "the same mix, listed in another order"


def test_self_distillation_is_a_direction_of_its_own() -> None:
    assert direction(BASE.model_copy(update={"self_distill_k": 4})) != direction(BASE)


def test_promoting_a_screen_of_a_stalled_stretch_is_not_a_stall() -> None:
    guard = DoomLoopGuard(GuardConfig(stall_patience=3))
    screens = [BASE.model_copy(update={"max_steps": steps, "train_fraction": 0.25, "eval_fraction": 0.5})
               for steps in (45, 75, 90)]  # fmt: skip
    stalled = [record(1, BASE, 0.5), *(record(i + 2, s, 0.4, gain=0.1) for i, s in enumerate(screens))]

    assert guard.review(screens[1].in_full(), stalled, baseline=0.3).ok
    assert [d.kind for d in guard.review(BASE.model_copy(update={"max_steps": 80}), stalled, 0.3).detections] == [
        "stall"
    ]


def test_settings_that_do_not_apply_are_not_part_of_the_signature() -> None:
    dpo = BASE.model_copy(update={"method": "dpo"})
    assert signature(dpo.model_copy(update={"beta": 0.5})) != signature(dpo), "DPO trains with beta"
    assert signature(BASE.model_copy(update={"beta": 0.5})) == signature(BASE), "SFT does not"
    assert signature(BASE.model_copy(update={"num_generations": 8, "reward_funcs": ("format",)})) == signature(BASE)
    assert signature(BASE.model_copy(update={"self_distill_temperature": 0.5})) == signature(BASE)
    distilled = BASE.model_copy(update={"self_distill_k": 4})
    assert signature(distilled.model_copy(update={"self_distill_temperature": 0.5})) != signature(distilled)


def test_equal_mixing_weights_are_no_weights_and_weights_are_relative() -> None:
    mixed = BASE.model_copy(update={"datasets": DATASETS})
    assert signature(mixed.model_copy(update={"dataset_weights": (1.0, 1.0)})) == signature(mixed)
    assert signature(mixed.model_copy(update={"dataset_weights": (4.0, 2.0)})) == signature(
        mixed.model_copy(update={"dataset_weights": (2.0, 1.0)})
    )
    assert signature(BASE.model_copy(update={"learning_rate": 1.0001e-4})) == signature(BASE)
