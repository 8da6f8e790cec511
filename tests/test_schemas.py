"""The typed values that cross stage boundaries: what they accept, refuse and keep."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from internflow.schemas import CampaignConfig, IterationParams, LossPoint, TrainResult


def test_iteration_params_refuse_a_dataset_listed_twice() -> None:
    with pytest.raises(ValidationError, match="each dataset may appear once"):
        IterationParams(datasets=("arithmetic-direct", "arithmetic-direct"))


def test_iteration_params_refuse_unknown_fields() -> None:
    # A planner typo ("learnig_rate") must fail loudly, not be dropped silently.
    with pytest.raises(ValidationError, match="learnig_rate"):
        IterationParams.model_validate({"learnig_rate": 1e-4})


@pytest.mark.parametrize("learning_rate", [0.0, -1e-4])
def test_iteration_params_refuse_a_learning_rate_that_is_not_positive(learning_rate: float) -> None:
    with pytest.raises(ValidationError, match="learning_rate"):
        IterationParams(learning_rate=learning_rate)


def test_iteration_params_refuse_zero_steps() -> None:
    with pytest.raises(ValidationError, match="max_steps"):
        IterationParams(max_steps=0)


def test_iteration_params_are_frozen() -> None:
    params = IterationParams()
    with pytest.raises(ValidationError):
        params.learning_rate = 1.0  # type: ignore[misc]
    assert params.model_copy(update={"learning_rate": 1e-3}).learning_rate == 1e-3
    assert params.learning_rate == 1e-4


def test_nan_loss_survives_a_json_round_trip_of_train_result() -> None:
    result = TrainResult(
        model_path="m",
        steps=2,
        losses=(LossPoint(step=1, loss=2.5), LossPoint(step=2, loss=float("nan"))),
        final_loss=float("nan"),
        runtime_s=1.0,
        trackio_project="p",
        trackio_run="r",
        checkpoint_dir="c",
    )
    again = TrainResult.model_validate_json(result.model_dump_json())
    assert again.losses[0].loss == 2.5
    assert math.isnan(again.losses[1].loss)
    assert again.final_loss is not None and math.isnan(again.final_loss)


@pytest.mark.parametrize("minutes", [0, -5.0])
def test_campaign_config_refuses_a_time_budget_that_is_not_positive(minutes: float) -> None:
    with pytest.raises(ValidationError, match="time_budget_minutes"):
        CampaignConfig(time_budget_minutes=minutes)


def test_campaign_config_refuses_zero_iterations() -> None:
    with pytest.raises(ValidationError, match="max_iterations"):
        CampaignConfig(max_iterations=0)


def _form_descriptions(model: type) -> dict[str, str]:
    return {name: field.description or "" for name, field in model.model_fields.items()}


@pytest.mark.parametrize("model", [CampaignConfig, IterationParams])
def test_form_descriptions_keep_their_angle_bracket_placeholders(model: type) -> None:
    """Regression: the Prefect UI renders descriptions as markdown and dropped `<base_url>` as an HTML
    tag, so the planner field read `openai:: | hf: …`.  Rendered here with markdown-it-py."""
    import re

    from markdown_it import MarkdownIt

    render = MarkdownIt("commonmark").renderInline
    for name, description in _form_descriptions(model).items():
        shown = re.sub(r"<[^>]+>", "", render(description)).replace("&lt;", "<").replace("&gt;", ">")
        for placeholder in re.findall(r"<[a-z_]+>", description):
            assert placeholder in shown, f"{model.__name__}.{name}: {placeholder} is not shown in {shown!r}"


def test_planner_description_names_the_openai_spec_and_every_campaign_field_has_one() -> None:
    descriptions = _form_descriptions(CampaignConfig)
    assert "`openai:<base_url>:<model>`" in descriptions["planner"]
    assert all(descriptions.values()), [name for name, text in descriptions.items() if not text]
