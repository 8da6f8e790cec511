"""The one search space: which IterationParams fields a planner sets, and within what."""

from __future__ import annotations

from internflow.agent.search_space import NOT_PLANNED, PLANNED, SearchSpace, _choices, _schema_range
from internflow.schemas import IterationParams

# Planned fields whose values come from the campaign (its vetted datasets, the registered rewards)
# or are a list of numbers the schema checks (mixing weights), not from a range or a Literal.
FROM_THE_CAMPAIGN = {"datasets", "reward_funcs", "dataset_weights"}


def test_every_planned_field_has_bounds_or_choices() -> None:
    """A new hyper-parameter marked `Planned` without a range a planner may use fails here."""
    space = SearchSpace(datasets=("arithmetic-direct",))
    for name in PLANNED:
        annotation = IterationParams.model_fields[name].annotation
        if name in FROM_THE_CAMPAIGN or _choices(annotation):
            continue
        low, high = space.bounds.get(name) or _schema_range(name)
        assert low is not None and high is not None, f"{name}: planned, but neither bounds nor choices"


def test_planner_bounds_lie_within_the_schemas_limits() -> None:
    for name, (low, high) in SearchSpace(datasets=("arithmetic-direct",)).bounds.items():
        schema_low, schema_high = _schema_range(name)
        assert low <= high, name
        assert schema_low is None or schema_low <= low, name
        assert schema_high is None or high <= schema_high, name


def test_only_the_seed_and_the_oom_floor_are_no_planners_business() -> None:
    assert {"seed", "min_per_device_train_batch_size"} == NOT_PLANNED
    assert SearchSpace(datasets=("d",)).bounds["learning_rate"] == (1e-6, 1e-3), "declared on the field"
