"""The one planner registry: a `--planner` spec's kind (the part before the first ':', e.g.
'openai:http://...:model') → a factory building that planner from the campaign's config.

    search                          the deterministic search policy (no LLM)
    bundled[:<folder>]              SmolLM2-135M-Instruct (embedded, offline) ranks candidate moves
    openai:<base_url>:<model>       any OpenAI-compatible endpoint (vllm serve, Ollama, a provider)
    hf:<model>[@<provider>]         Hugging Face Inference Providers
    litellm:<model>                 LiteLLM (needs the `litellm` package)
    transformers:<folder or id>     a local transformers chat model driving the tool-using agent

Nothing connects or loads weights until the planner's first proposal, so a bad spec fails fast
in preflight while a good one costs nothing there.
"""

from __future__ import annotations

from collections.abc import Callable

from internflow.agent.backends import LazyModel, hf_model, litellm_model, openai_model, transformers_model
from internflow.agent.planner import Planner
from internflow.schemas import CampaignConfig

__all__ = ["PLANNERS", "UnknownPlannerError", "get_planner"]


class UnknownPlannerError(ValueError):
    pass


def _search_policy(config: CampaignConfig) -> Planner:
    from internflow.agent.search_policy import SearchPolicy

    return SearchPolicy()


def _bundled(config: CampaignConfig) -> Planner:
    from internflow.agent.backends import LikelihoodScorer
    from internflow.agent.llm_planner import BundledPlanner

    folder = config.planner.partition(":")[2]
    return BundledPlanner(LikelihoodScorer(folder or None), name=config.planner)


def _tool_using(model: Callable[[str], LazyModel]) -> Callable[[CampaignConfig], Planner]:
    """A factory for the tool-using LLM planner on the chat model `model` builds from the spec's rest."""

    def build(config: CampaignConfig) -> Planner:
        from internflow.agent.llm_planner import LLMPlanner
        from internflow.agent.mcp_tools import open_mcp_tools

        lazy = model(config.planner.partition(":")[2])
        return LLMPlanner(lazy.get, name=config.planner, mcp_tools=lambda: open_mcp_tools(config.mcp_config))

    return build


PLANNERS: dict[str, Callable[[CampaignConfig], Planner]] = {
    "search": _search_policy,
    "bundled": _bundled,
    "openai": _tool_using(openai_model),
    "hf": _tool_using(hf_model),
    "litellm": _tool_using(litellm_model),
    "transformers": _tool_using(transformers_model),
}


def get_planner(config: CampaignConfig) -> Planner:
    """The planner `config.planner` names; an unknown kind or a malformed spec is an
    `UnknownPlannerError` naming the known kinds or the expected form."""
    kind = config.planner.partition(":")[0]
    try:
        factory = PLANNERS[kind]
    except KeyError:
        raise UnknownPlannerError(
            f"planner: unknown planner {config.planner!r}; known: {', '.join(PLANNERS)}"
        ) from None
    try:
        return factory(config)
    except UnknownPlannerError:
        raise
    except ValueError as error:  # a malformed spec or a missing backend package
        raise UnknownPlannerError(str(error)) from None
