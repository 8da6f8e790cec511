"""How answers for evaluation are produced and scored: a lighteval task and metric over the
benchmark's items (lighteval_tasks), answered by a vLLM server or transformers in-process
(lighteval_models, server, watchdog), with the evaluator pinned per campaign (integrity).
The evaluate stage itself is tasks/evaluate.py."""
