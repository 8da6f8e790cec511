"""Starting recipes, one YAML per model × method: `<model>/<method>/config_<variant>.yaml`, with
`default/` for any model.  A recipe holds only the fields it sets; the rest are `IterationParams`'
defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

from internflow.schemas import IterationParams

__all__ = ["RECIPES_DIR", "load_recipe"]

RECIPES_DIR = Path(__file__).resolve().parent


def load_recipe(model: str, recipe: str, datasets: tuple[str, ...]) -> IterationParams:
    """`<method>/<variant>` for the model's recipe folder (or `default/`), as validated parameters."""
    method, _, variant = recipe.partition("/")
    for folder in (model, "default"):
        path = RECIPES_DIR / folder / method / f"config_{variant or 'default'}.yaml"
        if path.is_file():
            values = yaml.safe_load(path.read_text()) or {}
            return IterationParams.model_validate({"method": method, "datasets": datasets} | values)
    known = sorted(str(p.relative_to(RECIPES_DIR)) for p in RECIPES_DIR.glob("*/*/config_*.yaml"))
    raise ValueError(f"recipe: no recipe {recipe!r} for model {model!r}; known: {', '.join(known)}")
