"""How answers for evaluation are produced and scored: a lighteval task and metric over the
benchmark's items (lighteval_tasks), answered by a vLLM server or transformers in-process
(lighteval_models, server, watchdog), with the evaluator pinned per campaign (integrity); one
evaluation run end to end (run), its items and scores (scoring) and its artifact's markdown
(samples_markdown).  The evaluate stage itself is tasks/evaluate.py."""

import sys
import types

# lighteval's registry imports its "extended" task modules at import time, and some of them fetch
# data or need packages we do not install.  internflow never loads that suite, so an empty module
# stands in for it before any lighteval module is imported (site-packages stays as installed).
# Here, in the package's __init__, it runs before every module below that imports lighteval.
if "lighteval.tasks.extended" not in sys.modules:
    _extended = types.ModuleType("lighteval.tasks.extended")
    _extended.__dict__["AVAILABLE_EXTENDED_TASKS_MODULES"] = []
    _extended.__path__ = []
    sys.modules["lighteval.tasks.extended"] = _extended
