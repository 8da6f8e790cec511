"""Self-distillation by rejection sampling: scripted answers for the judging rules, the tiny model
for real sampling (transformers in-process, and a real vLLM server on the CPU build)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from internflow.data.distill import (
    DistillRequest,
    NothingDistilledError,
    Sample,
    TransformersSampler,
    distill,
)
from internflow.schemas import IterationParams, PreparedDataset

ANSWER = "3 + 4 = 7. The answer is 7."  # what the taught tiny model answers, whatever it is asked


def _row(question: str, answer: str) -> dict:
    return {"prompt": [{"role": "user", "content": question}], "completion": [{"role": "assistant", "content": answer}]}


def _data(tmp_path: Path, rows: Sequence[dict]) -> PreparedDataset:
    path = tmp_path / "train-original.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return PreparedDataset(path=str(path), rows=len(rows), sources=(), fingerprint="original")


def _request(tmp_path: Path, data: PreparedDataset, model: str = "scripted", **changes: object) -> DistillRequest:
    values: dict[str, object] = dict(
        data=data, model_path=model, model_fingerprint=model, benchmark="arithmetic", k=3, temperature=0.8,
        max_prompts=100, max_new_tokens=32, keep_original=True, seed=0, out_dir=str(tmp_path / "data"),
    )  # fmt: skip
    return DistillRequest.model_validate(values | changes)


class ScriptedSampler:
    """A fake model: answers each prompt (by its text) with the given samples; records what it was asked."""

    def __init__(self, answers: dict[str, list[Sample]]) -> None:
        self.answers, self.asked = answers, []

    def sample(self, prompts, k, temperature, max_new_tokens, seed):  # type: ignore[no-untyped-def]
        self.asked.append((prompts, k, temperature, max_new_tokens))
        return [self.answers[p[-1]["content"]][:k] for p in prompts]


def _rows(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_worked_answers_the_judge_accepts_are_kept_as_written(tmp_path: Path) -> None:
    data = _data(tmp_path, [_row("67 + 57 =", "124")])
    worked = "67 + 57: 60 + 50 = 110, 7 + 7 = 14, so 124. The answer is 124."
    sampler = ScriptedSampler({"67 + 57 =": [Sample(worked, True), Sample("The answer is 123.", True)] * 2})

    result = distill(_request(tmp_path, data, k=2), sampler)

    completions = [r["completion"][0]["content"] for r in _rows(result.data.path)]
    assert worked in completions, "the accepted answer is trained on word for word, worked steps and all"
    assert sorted(completions) == sorted([worked, "124"])  # + the original row
    assert (result.accepted, result.samples, result.kept) == (1, 2, 1)
    assert result.acceptance_rate == 0.5 and result.accepted_per_prompt == {1: 1}
    assert sampler.asked[0][1:] == (2, 0.8, 32)


def test_wrong_unfinished_and_answerless_samples_are_rejected_by_reason(tmp_path: Path) -> None:
    data = _data(tmp_path, [_row("2 + 2 =", "4")])
    samples = [
        Sample("The answer is 5.", True),  # wrong
        Sample("2 + 2 = 4. The answer is 4", False),  # right number, but cut off by the token cap
        Sample("I am not sure.", True),  # no answer to extract
        Sample("The answer is 4.", True),
    ]
    result = distill(_request(tmp_path, data, k=4), ScriptedSampler({"2 + 2 =": samples}))

    assert result.verdicts == {"wrong_answer": 1, "unfinished": 1, "no_answer": 1, "accepted": 1}
    check = result.data.checks[-1]
    assert check.name == "self-distilled" and check.rows_in == 4 and check.rows_kept == 1
    assert check.rejected == {"no_answer": 1, "unfinished": 1, "wrong_answer": 1}
    assert {e.verdict for e in result.examples} == {"accepted", "wrong_answer", "unfinished", "no_answer"}


def test_duplicate_answers_and_copies_of_the_original_are_kept_once(tmp_path: Path) -> None:
    data = _data(tmp_path, [_row("2 + 2 =", "The answer is 4.")])
    samples = [Sample("The answer is 4.", True), Sample("2 + 2 = 4. The answer is 4.", True)] + [
        Sample("2 +  2 = 4.  The answer is 4.", True)  # the same answer but for spacing
    ]
    result = distill(_request(tmp_path, data), ScriptedSampler({"2 + 2 =": samples}))

    assert (result.accepted, result.kept) == (3, 1) and result.verdicts["duplicate"] == 2
    assert len(_rows(result.data.path)) == 2  # the original row + one new answer


def test_rows_without_a_readable_reference_are_not_sampled(tmp_path: Path) -> None:
    data = _data(tmp_path, [_row("Tell me a story.", "Once upon a time."), _row("1 + 1 =", "2")])
    sampler = ScriptedSampler({"1 + 1 =": [Sample("The answer is 2.", True)] * 3})

    result = distill(_request(tmp_path, data), sampler)

    assert [p[-1]["content"] for p in sampler.asked[0][0]] == ["1 + 1 ="]
    assert result.no_reference == 1 and result.prompts == 1


def test_an_answer_column_is_the_reference_when_a_row_has_one(tmp_path: Path) -> None:
    row = {"prompt": [{"role": "user", "content": "Half of 10?"}], "answer": "5"}
    data = _data(tmp_path, [row])
    result = distill(
        _request(tmp_path, data, keep_original=False), ScriptedSampler({"Half of 10?": [Sample("It is 5.", True)] * 3})
    )
    assert result.kept == 1 and _rows(result.data.path) == [_row("Half of 10?", "It is 5.")]


def test_without_the_original_rows_only_accepted_answers_are_trained_on(tmp_path: Path) -> None:
    data = _data(tmp_path, [_row("1 + 1 =", "2"), _row("2 + 3 =", "5")])
    sampler = ScriptedSampler(
        {"1 + 1 =": [Sample("The answer is 2.", True)] * 3, "2 + 3 =": [Sample("The answer is 6.", True)] * 3}
    )
    result = distill(_request(tmp_path, data, keep_original=False), sampler)

    assert _rows(result.data.path) == [_row("1 + 1 =", "The answer is 2.")]
    assert result.accepted_per_prompt == {0: 1, 3: 1}
    assert [s.name for s in result.data.sources] == ["self-distilled"]


def test_nothing_accepted_is_an_error_with_the_counts(tmp_path: Path) -> None:
    data = _data(tmp_path, [_row("1 + 1 =", "2")])
    with pytest.raises(NothingDistilledError, match=r"none of 3 answers .*verdicts: \{'wrong_answer': 3\}"):
        distill(_request(tmp_path, data), ScriptedSampler({"1 + 1 =": [Sample("The answer is 3.", True)] * 3}))


def test_distilled_data_is_content_addressed_and_changes_the_training_run(tmp_path: Path) -> None:
    from internflow.tasks.train import build_train_request
    from internflow.workspace import Workspace

    data = _data(tmp_path, [_row("1 + 1 =", "2")])
    result = distill(
        _request(tmp_path, data), ScriptedSampler({"1 + 1 =": [Sample("1 + 1 = 2. The answer is 2.", True)]})
    )

    assert Path(result.data.path).name == f"distill-{result.data.fingerprint}.jsonl"
    workspace = Workspace.open(tmp_path / "ws")
    params = IterationParams(self_distill_k=3)
    plain = build_train_request("m", "fp", data, params, workspace, "arithmetic")
    distilled = build_train_request("m", "fp", result.data, params, workspace, "arithmetic")
    assert plain.run_name != distilled.run_name


def test_self_distillation_is_for_sft_only() -> None:
    with pytest.raises(ValueError, match="self_distill_k: self-distillation trains SFT"):
        IterationParams(method="grpo", datasets=("arithmetic-prompts",), self_distill_k=4)


# ---------------------------------------------------------------- the tiny model ---------


@pytest.fixture(scope="module")
def untied_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with an output layer of its own.  vLLM 0.32's in-place weight reload leaves a
    tied output layer as it was (see the report), so the tests that reload weights use this one."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("untied") / "model"
    shutil.copytree(tiny_model, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.model.embed_tokens.weight.detach().clone())
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def taught_model(untied_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That model taught (a plain torch loop on one batch, ~2 s) to answer ANSWER to any question."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("taught") / "model"
    shutil.copytree(untied_model, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    answer = tokenizer(ANSWER + "<|im_end|>", add_special_tokens=False)["input_ids"]
    rows = []
    # Phrasings of every test that samples from it: how robustly a few steps teach the answer's end
    # (<|im_end|>) to unseen phrasings depends on the tokenizer, which is trained on the bundled data.
    for question in ["3 + 4 =", "What is 3 + 4?", "5 + 2 =", "1 + 6 =", "12 + 9 =", "Please add 3 and 4."]:
        chat = [{"role": "user", "content": question}]
        prompt = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"]  # fmt: skip
        rows.append((prompt + answer, [-100] * len(prompt) + answer))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small: one thread is ~10x faster on a busy 2-core machine
    try:
        for _ in range(80):
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(folder)
    return folder


def test_transformers_sampling_gives_k_answers_per_prompt_from_the_tiny_model(taught_model: Path) -> None:
    sampler = TransformersSampler(str(taught_model))
    prompts = [[{"role": "user", "content": "3 + 4 ="}], [{"role": "user", "content": "5 + 2 ="}]]

    answers = sampler.sample(prompts, k=3, temperature=0.5, max_new_tokens=32, seed=0)

    assert [len(a) for a in answers] == [3, 3]
    assert sum(s.text == ANSWER and s.finished for a in answers for s in a) >= 3, answers
    cut = sampler.sample(prompts[:1], k=2, temperature=0.7, max_new_tokens=3, seed=0)
    assert not any(s.finished for s in cut[0]), "three tokens cannot finish the answer"


def _arithmetic_rows(tmp_path: Path) -> PreparedDataset:
    # References 7 (the taught answer is right) and 8 (it is wrong).
    rows = [_row("3 + 4 =", "7"), _row("5 + 2 =", "7"), _row("6 + 2 =", "8"), _row("1 + 6 =", "7")]
    return _data(tmp_path, rows)


def test_self_distill_task_trains_on_the_answers_the_judge_accepts_transformers(
    prefect_harness, taught_model: Path, tmp_path: Path
) -> None:
    import asyncio

    from prefect import flow

    from internflow.tasks.distill import distill_request, self_distill
    from tests.test_llm_planner import _latest_artifact

    params = IterationParams(self_distill_k=4, self_distill_temperature=0.5, self_distill_prompts=3)
    request = distill_request(params, _arithmetic_rows(tmp_path), (str(taught_model), "taught"), "arithmetic", tmp_path)

    @flow
    def run() -> PreparedDataset:
        return self_distill(request, "transformers", None, tmp_path / "logs")

    data = run()

    rows = _rows(data.path)
    distilled = [r for r in rows if r not in _rows(_arithmetic_rows(tmp_path).path)]
    assert {r["prompt"][0]["content"] for r in distilled} == {"3 + 4 =", "5 + 2 ="}, "6 + 2 is not 7: rejected"
    assert len(rows) == 4 + len(distilled), "the accepted answers beside the original rows"
    check = data.checks[-1]
    assert check.rows_in == 12 and check.rows_kept == len(distilled)  # 3 prompts sampled (self_distill_prompts)
    artifact = asyncio.run(_latest_artifact("self-distillation"))
    assert "3 prompts × 4 answers" in artifact and "Accepted answers per prompt" in artifact


@pytest.mark.slow
def test_self_distill_task_samples_on_the_campaign_vllm_server_with_the_starting_model_put_on_it(
    prefect_harness, untied_model: Path, taught_model: Path, tmp_path: Path
) -> None:
    """The server starts with the untaught tiny model (as a campaign's serves its base model); the
    task reloads the taught model's weights into it, then asks /v1/completions for n=k answers."""
    from prefect import flow

    from internflow.evaluation.server import ServerSettings, VLLMServer
    from internflow.tasks.distill import distill_request, self_distill

    params = IterationParams(self_distill_k=4, self_distill_temperature=0.5)
    request = distill_request(params, _arithmetic_rows(tmp_path), (str(taught_model), "taught"), "arithmetic", tmp_path)
    with VLLMServer(str(untied_model), tmp_path / "logs", ServerSettings(dtype="float32")) as server:

        @flow
        def run() -> PreparedDataset:
            return self_distill(request, "vllm", server.served(), tmp_path / "logs")

        data = run()

    rows = _rows(data.path)
    check = data.checks[-1]
    assert check.rows_in == 16, "4 prompts × 4 answers, n=4 per prompt in one request"
    distilled = {r["prompt"][0]["content"] for r in rows if r not in _rows(_arithmetic_rows(tmp_path).path)}
    assert distilled == {"3 + 4 =", "5 + 2 =", "1 + 6 ="}, "the taught model's answers, judged against each reference"


def test_an_iteration_with_self_distillation_trains_on_the_distilled_rows(
    prefect_harness, taught_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole iteration flow: dataset → self-distill (from the base model, transformers) → train."""
    from internflow.flows.iteration import research_iteration
    from internflow.recipes import load_recipe
    from internflow.schemas import DataSource, EvalRequest, IterationContext
    from internflow.tasks.evaluate import evaluate_model
    from internflow.workspace import Workspace

    monkeypatch.setenv("INTERNFLOW_OFFLINE", "1")
    rows = tmp_path / "sevens.jsonl"
    sums = [(3, 4), (5, 2), (1, 6), (6, 2), (2, 5), (4, 3), (6, 1), (5, 3)]
    rows.write_text("".join(json.dumps({"prompt": f"Please add {a} and {b}.", "completion": str(a + b)}) + "\n"
                            for a, b in sums))  # fmt: skip
    source = DataSource(id="sevens", kind="local", path=str(rows))
    workspace = Workspace.open(tmp_path / "ws")
    baseline = evaluate_model(
        EvalRequest(model_path=str(taught_model), model_fingerprint="taught", benchmark="arithmetic", limit=4, seed=0,
                    label="baseline", samples_dir=workspace.samples_dir, backend="transformers")
    )  # fmt: skip
    context = IterationContext(
        index=1, workspace=str(workspace.root), base_model=str(taught_model), base_fingerprint="taught",
        benchmark="arithmetic", eval_limit=4, baseline=baseline, eval_backend="transformers", data_sources=(source,),
    )  # fmt: skip
    params = load_recipe("tiny", "sft/smoke", ("sevens",)).model_copy(
        update={"max_train_samples": 8, "max_steps": 2, "self_distill_k": 2, "self_distill_temperature": 0.5}
    )

    result = research_iteration(params, context)

    check = result.data.checks[-1]
    assert check.name == "self-distilled" and check.rows_in == 16 and check.rows_kept >= 4
    assert [s.name for s in result.data.sources] == ["sevens", "self-distilled"]
    assert result.data.rows == 8 + check.rows_kept and result.train.steps == 2
    trained_on = _rows(result.data.path)
    assert {"prompt": [{"role": "user", "content": "Please add 5 and 2."}],
            "completion": [{"role": "assistant", "content": ANSWER}]} in trained_on  # fmt: skip
