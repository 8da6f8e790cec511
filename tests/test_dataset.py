"""The dataset stage: row layouts → TRL conversational prompt-completion, filtering, mixing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from prefect import flow

from internflow.benchmarks import get_benchmark
from internflow.catalog import CorruptDatasetError, get_entry
from internflow.data.formats import to_prompt_completion
from internflow.data.prepare import DatasetRequest
from internflow.schemas import PreparedDataset
from internflow.tasks.dataset import prepare_dataset
from internflow.workspace import Workspace

USER = {"role": "user", "content": "1 + 1 ="}
ASSISTANT = {"role": "assistant", "content": "2"}


def test_messages_rows_split_before_the_last_assistant_turn() -> None:
    system = {"role": "system", "content": "Be brief."}
    assert to_prompt_completion({"messages": [system, USER, ASSISTANT]}, "x:1") == ([system, USER], [ASSISTANT])


def test_messages_rows_must_end_with_an_assistant_turn() -> None:
    with pytest.raises(CorruptDatasetError, match="data.jsonl:4: 'messages' must end with an assistant turn"):
        to_prompt_completion({"messages": [USER]}, "data.jsonl:4")
    with pytest.raises(CorruptDatasetError, match="data.jsonl:5"):
        to_prompt_completion({"messages": []}, "data.jsonl:5")


def test_prompt_completion_rows_become_one_user_and_one_assistant_turn() -> None:
    assert to_prompt_completion({"prompt": "1 + 1 =", "completion": "2"}, "x:1") == ([USER], [ASSISTANT])


def test_question_answer_rows_become_one_user_and_one_assistant_turn() -> None:
    # Answers stored as numbers are rendered as text.
    assert to_prompt_completion({"question": "1 + 1 =", "answer": 2}, "x:1") == ([USER], [ASSISTANT])


def test_unknown_row_layout_names_the_place_and_the_expected_columns() -> None:
    with pytest.raises(CorruptDatasetError) as caught:
        to_prompt_completion({"text": "1 + 1 = 2"}, "data.jsonl:9")
    message = str(caught.value)
    assert message.startswith("data.jsonl:9:")
    assert "['text']" in message
    for expected in ("'messages'", "'prompt'+'completion'", "'question'+'answer'"):
        assert expected in message


def _request(
    datasets: tuple[str, ...], max_train_samples: int, workspace: Workspace, seed: int = 0, **fields: object
) -> DatasetRequest:
    """Arithmetic's training data (the benchmark can be overridden in `fields`)."""
    return DatasetRequest(
        datasets=datasets, max_train_samples=max_train_samples, seed=seed, workspace=workspace,
        **({"benchmark": "arithmetic"} | fields),  # type: ignore[arg-type]
    )  # fmt: skip


@flow
def _prepare(
    datasets: tuple[str, ...], max_train_samples: int, seed: int, benchmark: str, root: Path
) -> PreparedDataset:
    return prepare_dataset(_request(datasets, max_train_samples, Workspace.open(root), seed, benchmark=benchmark))


def _rows(prepared: PreparedDataset) -> list[dict]:
    return [json.loads(line) for line in Path(prepared.path).read_text(encoding="utf-8").splitlines()]


def _catalog(root: Path, name: str, benchmark: str, rows: list[dict]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(
        f"---\nbenchmark: {benchmark}\nformat: question-answer\nrows: {len(rows)}\n---\n# {name}\n", encoding="utf-8"
    )
    (folder / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_prepared_rows_are_conversational_prompt_completion_jsonl(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    prepared = _prepare(("arithmetic-direct",), 40, 0, "arithmetic", tmp_path)
    rows = _rows(prepared)
    assert prepared.rows == len(rows) == 40
    assert prepared.format == "conversational_prompt_completion"
    assert Path(prepared.path).parent == tmp_path / "data"
    for row in rows:
        assert set(row) == {"prompt", "completion"}
        assert [m["role"] for m in row["prompt"]] == ["user"]
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert row["prompt"][0]["content"].startswith("State the final answer")

    entry = get_entry("arithmetic-direct")
    (source,) = prepared.sources
    assert source.name == "arithmetic-direct" and source.rows_used == 40
    assert source.path == str(entry.data_file)
    assert source.sha256 == hashlib.sha256(entry.data_file.read_bytes()).hexdigest()
    assert "test_overlap" not in prepared.rejected  # the bundled catalog is de-duplicated against test


def test_a_mix_of_two_datasets_gets_equal_shares(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    prepared = _prepare(("arithmetic-direct", "arithmetic-worked"), 60, 0, "arithmetic", tmp_path)
    assert [(s.name, s.rows_used) for s in prepared.sources] == [("arithmetic-direct", 30), ("arithmetic-worked", 30)]
    worked = [row for row in _rows(prepared) if "The answer is" in row["completion"][0]["content"]]
    assert prepared.rows == 60 and len(worked) == 30


@flow
def _prepare_three(root: Path) -> list[PreparedDataset]:
    # One flow for the three runs: each flow run costs about a second of Prefect overhead.
    return [
        prepare_dataset(_request(("arithmetic-direct",), 32, Workspace.open(root / folder), seed))
        for seed, folder in ((7, "a"), (7, "b"), (8, "c"))
    ]


@flow
def _prepare_shards(root: Path, shards: tuple[int, ...]) -> list[PreparedDataset]:
    workspace = Workspace.open(root)
    return [
        prepare_dataset(_request(("arithmetic-direct", "arithmetic-worked"), 40, workspace, shard=shard))
        for shard in shards
    ]


def test_a_continuation_retrained_the_rows_its_starting_model_had_seen(prefect_harness, tmp_path, monkeypatch) -> None:
    # Continuing the best model drew the same rows (same seed) the best model was trained on: a
    # second epoch, not more data.  Shards of one seed are disjoint until the data runs out.
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    shards = _prepare_shards(tmp_path, (0, 1, 2, 0))
    prompts = [{json.dumps(row["prompt"]) for row in _rows(prepared)} for prepared in shards]
    assert all(len(p) == 40 for p in prompts)
    assert not prompts[0] & prompts[1] and not prompts[1] & prompts[2] and not prompts[0] & prompts[2]
    assert prompts[3] == prompts[0] and shards[3].fingerprint == shards[0].fingerprint
    assert [(s.name, s.rows_used) for s in shards[1].sources] == [("arithmetic-direct", 20), ("arithmetic-worked", 20)]


@pytest.mark.parametrize(("rows", "size"), [(100, 60), (100, 100), (1000, 480)])
def test_a_shard_past_the_rows_shard_0_left_repeated_rows(rows: int, size: int) -> None:
    # Shards wrapped round the rows shard 0 had left only: a shard larger than those repeated rows
    # within itself, and once shard 0 took every row, every shard was shard 0 again.
    import random

    from internflow.data.vetting import draw_shard

    population = list(range(rows))
    shards = [draw_shard(population, size, shard, random.Random(3)) for shard in range(4)]
    assert shards[0] == random.Random(3).sample(population, size)  # shard 0: the draw runs always made
    assert all(len(set(shard)) == size for shard in shards)
    drawn = [row for shard in shards for row in shard]
    first_pass = drawn[:rows]  # every row once before any row comes back
    assert len(set(first_pass)) == min(rows, len(drawn))


def test_same_inputs_give_the_same_fingerprint(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    first, again, other_seed = _prepare_three(tmp_path)
    assert first.fingerprint == again.fingerprint
    assert Path(first.path).read_bytes() == Path(again.path).read_bytes()
    assert first.fingerprint != other_seed.fingerprint
    assert Path(first.path).name == f"train-{first.fingerprint}.jsonl"


def test_rows_that_overlap_the_test_split_are_rejected(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    test_items = get_benchmark("arithmetic").load("test")[:2]
    rows = [
        {"question": test_items[0].question, "answer": test_items[0].answer},
        {"question": "  " + test_items[1].question.upper() + " ", "answer": test_items[1].answer},  # still the same
        {"question": "What is 1000 + 1000?", "answer": "2000"},
        {"question": "What is 1000 + 1000?", "answer": "2000"},
        {"question": "What is 2000 + 2000?", "answer": ""},
        {"question": "What is 3000 + 3000?", "answer": "6000"},
    ]
    _catalog(tmp_path / "catalog", "leaky", "arithmetic", rows)
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path / "catalog"))
    prepared = _prepare(("leaky",), 16, 0, "arithmetic", tmp_path / "ws")
    assert prepared.rejected == {"test_overlap": 2, "duplicate": 1, "empty": 1}
    assert sorted(row["prompt"][0]["content"] for row in _rows(prepared)) == [
        "What is 1000 + 1000?",
        "What is 3000 + 3000?",
    ]


def test_multiple_choice_rows_overlap_the_test_split_in_their_rendered_form(
    prefect_harness, tmp_path: Path, monkeypatch
) -> None:
    benchmark = get_benchmark("family-mc")
    item = benchmark.load("test")[0]
    rows = [
        {"prompt": benchmark.prompt(item), "completion": item.answer},
        {"prompt": get_benchmark("family-mc").load("train")[0].question, "completion": "A"},
    ]
    _catalog(tmp_path / "catalog", "leaky-mc", "family-mc", rows)
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path / "catalog"))
    prepared = _prepare(("leaky-mc",), 16, 0, "family-mc", tmp_path / "ws")
    assert prepared.rejected == {"test_overlap": 1} and prepared.rows == 1


def test_a_dataset_left_with_no_usable_rows_is_an_error(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    item = get_benchmark("arithmetic").load("test")[0]
    _catalog(tmp_path / "catalog", "all-test", "arithmetic", [{"question": item.question, "answer": item.answer}])
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path / "catalog"))
    with pytest.raises(ValueError, match="no usable training rows"):
        _prepare(("all-test",), 16, 0, "arithmetic", tmp_path / "ws")


GATED = ("arithmetic-direct", "arithmetic-contaminated", "arithmetic-noisy")


@flow
def _prepare_bundled(root: Path) -> list[PreparedDataset]:
    workspace = Workspace.open(root)
    return [
        prepare_dataset(_request(("arithmetic-direct", "arithmetic-contaminated", "arithmetic-noisy"), 90, workspace)),
        prepare_dataset(_request(("arithmetic-direct", "arithmetic-worked"), 40, workspace, weights=(3.0, 1.0))),
        prepare_dataset(_request(("arithmetic-preference",), 20, workspace, method="dpo")),
        prepare_dataset(_request(("arithmetic-prompts", "arithmetic-noisy"), 20, workspace, method="grpo")),
    ]


def test_bundled_contaminated_set_is_blocked_and_noisy_rows_are_flagged(
    prefect_harness, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    gated, weighted, preference, prompts = _prepare_bundled(tmp_path)

    direct, contaminated, noisy = gated.checks
    assert contaminated.blocked and contaminated.contaminated_rows == 200 and contaminated.rows_kept == 0
    assert "whole dataset is blocked" in contaminated.note
    assert noisy.rejected == {"wrong_answer": 100} and noisy.rows_kept == 900 and not noisy.blocked
    assert direct.rejected == {} and not direct.blocked
    assert gated.rejected == {"dataset_contaminated": 1000, "wrong_answer": 100}
    # The blocked set's share goes to the others; no training row is a test prompt or a wrong answer.
    assert [(s.name, s.rows_used) for s in gated.sources] == [
        ("arithmetic-direct", 45),
        ("arithmetic-contaminated", 0),
        ("arithmetic-noisy", 45),
    ]
    test_prompts = {item.question for item in get_benchmark("arithmetic").load("test")}
    for row in _rows(gated):
        question, answer = row["prompt"][0]["content"], row["completion"][0]["content"]
        assert question not in test_prompts
        a, b = question.rsplit(":", 1)[1].rstrip(" =").split(" + ")
        assert int(answer) == int(a) + int(b)
    quarantine = [json.loads(line) for line in Path(gated.quarantine_path or "").read_text().splitlines()]
    assert len(quarantine) == 1100
    assert {q["reason"] for q in quarantine if q["dataset"] == "arithmetic-noisy"} == {"wrong_answer"}
    assert quarantine[0]["where"].startswith(str(get_entry("arithmetic-contaminated").data_file) + ":")

    assert [(s.name, s.rows_used) for s in weighted.sources] == [("arithmetic-direct", 30), ("arithmetic-worked", 10)]

    assert preference.format == "conversational_preference" and preference.rows == 20
    assert set(_rows(preference)[0]) == {"prompt", "chosen", "rejected"}

    assert prompts.format == "conversational_prompt_only" and prompts.rows == 20
    assert all(set(row) == {"prompt", "answer"} for row in _rows(prompts))


def test_a_dataset_whose_format_cannot_train_the_method_is_skipped_and_said(
    prefect_harness, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    with pytest.raises(ValueError, match=r"no usable training rows.*'unusable_format': 500"):
        flow(lambda: prepare_dataset(_request(("arithmetic-prompts",), 16, Workspace.open(tmp_path), method="dpo")))()


def test_iteration_params_take_one_positive_weight_per_dataset() -> None:
    from internflow.schemas import IterationParams

    two = ("arithmetic-direct", "arithmetic-worked")
    assert IterationParams(datasets=two, dataset_weights=(3.0, 1.0)).dataset_weights == (3.0, 1.0)
    with pytest.raises(ValueError, match="dataset_weights: 1 weights for 2 datasets"):
        IterationParams(datasets=two, dataset_weights=(1.0,))
    with pytest.raises(ValueError, match="each weight must be > 0"):
        IterationParams(datasets=two, dataset_weights=(1.0, 0.0))


def test_screening_tells_a_planner_which_bundled_datasets_it_may_train_on(monkeypatch, tmp_path: Path) -> None:
    from internflow.data.vetting import DataPaths, resolve_sources, screen_sources

    monkeypatch.delenv("INTERNFLOW_CATALOG", raising=False)
    names = ("arithmetic-direct", "arithmetic-contaminated", "arithmetic-noisy", "arithmetic-preference")
    checks = screen_sources(
        resolve_sources(names, ()), get_benchmark("arithmetic"), DataPaths(tmp_path, tmp_path), ("sft", "dpo")
    )
    sft = {name: by_method["sft"] for name, by_method in checks.items()}
    assert [name for name, check in sft.items() if not check.blocked] == [
        "arithmetic-direct", "arithmetic-noisy", "arithmetic-preference"
    ]  # fmt: skip
    assert sft["arithmetic-noisy"].rejected == {"wrong_answer": 100}
    assert sft["arithmetic-direct"].mapping == "prompt←question, completion←answer, answer←answer"
    assert [name for name, by_method in checks.items() if not by_method["dpo"].blocked] == ["arithmetic-preference"]


def _quarantine(prepared: PreparedDataset) -> list[dict]:
    return [json.loads(line) for line in Path(prepared.quarantine_path or "").read_text().splitlines()]


def test_content_parts_train_as_text_and_tool_or_image_rows_are_quarantined_with_a_reason(
    prefect_harness, tmp_path: Path, monkeypatch
) -> None:
    def text(value: str) -> list[dict]:
        return [{"type": "text", "text": value}]

    def user(content: object) -> dict:
        return {"role": "user", "content": content}

    def assistant(content: object) -> dict:
        return {"role": "assistant", "content": content}

    call = {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "add"}}]}
    rows = [
        {"messages": [user(text("What is 1000 + 1000?")), assistant(text("2000"))]},
        {"messages": [user("What is 2000 + 1?"), call, {"role": "tool", "content": "2001"}, assistant("2001")]},
        {"messages": [user("What is 5 + 5?"), assistant("10")], "tools": [{"type": "function"}]},
        {"messages": [user([{"type": "image", "url": "x.png"}, *text("Count them")]), assistant("3")]},
    ]
    _catalog(tmp_path / "catalog", "field-rows", "arithmetic", rows)
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path / "catalog"))
    prepared = _prepare(("field-rows",), 16, 0, "arithmetic", tmp_path / "ws")

    assert _rows(prepared) == [
        {
            "prompt": [{"role": "user", "content": "What is 1000 + 1000?"}],
            "completion": [{"role": "assistant", "content": "2000"}],
        }
    ]
    assert prepared.rejected == {"tool_calls": 2, "non_text_content": 1}
    quarantined = _quarantine(prepared)
    assert [(q["where"].rsplit(":", 1)[1], q["reason"]) for q in quarantined] == [
        ("2", "tool_calls"),
        ("3", "tool_calls"),
        ("4", "non_text_content"),
    ]
    assert "image content" in quarantined[2]["detail"] and quarantined[0]["row"] == rows[1]


def test_grpo_rows_without_a_reference_answer_are_quarantined_not_trained_with_reward_0(
    prefect_harness, tmp_path: Path, monkeypatch
) -> None:
    rows = [
        {"prompt": "What is 1000 + 1000?", "answer": "2,000"},
        {"prompt": "What is 2000 + 2000?"},  # no answer column in this row
        {"prompt": "What is 3000 + 3000?", "answer": None},
        {"prompt": "What is 4000 + 4000?", "answer": "eight thousand"},
        {"prompt": "What is 5000 + 5000?", "answer": "5000 + 5000 = 10000\n#### 10,000"},
    ]
    _catalog(tmp_path / "catalog", "some-answers", "arithmetic", rows)
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path / "catalog"))

    @flow
    def prepare() -> PreparedDataset:
        return prepare_dataset(_request(("some-answers",), 16, Workspace.open(tmp_path / "ws"), method="grpo"))

    prepared = prepare()
    # A worked reference is read as the final answer it marks.
    assert sorted(row["answer"] for row in _rows(prepared)) == ["10,000", "2,000"]
    assert prepared.rejected == {"no_answer": 2, "unreadable_answer": 1}


def test_rows_over_max_length_in_the_models_tokens_are_quarantined_as_too_long(
    prefect_harness, tmp_path: Path, monkeypatch, tiny_model: Path
) -> None:
    long_question = "What is 1000 + 1000? " + "Think it over carefully. " * 40  # ~1k characters: under 8,000
    rows = [{"question": "What is 1000 + 1000?", "answer": "2000"}, {"question": long_question, "answer": "2000"}]
    _catalog(tmp_path / "catalog", "long-rows", "arithmetic", rows)
    monkeypatch.setenv("INTERNFLOW_CATALOG", str(tmp_path / "catalog"))

    @flow
    def prepare() -> PreparedDataset:
        workspace = Workspace.open(tmp_path / "ws")
        return prepare_dataset(_request(("long-rows",), 16, workspace, model=str(tiny_model), max_length=64))

    prepared = prepare()
    assert prepared.rows == 1 and prepared.sources[0].rows_used == 1  # what training will see, counted as such
    assert prepared.rejected == {"too_long": 1}
    (quarantined,) = _quarantine(prepared)
    assert quarantined["where"].endswith(":2") and quarantined["detail"].endswith("tokens > max_length 64")
    assert int(quarantined["detail"].split()[0]) > 64
