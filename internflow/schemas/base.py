"""The base of every schema: frozen, no unknown fields, NaN kept through JSON."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Frozen"]


class Frozen(BaseModel):
    # NaN losses are evidence for the diagnose stage: keep them through JSON round trips.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")
