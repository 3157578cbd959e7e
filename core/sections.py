"""The base of every settings section (a TOML table of ``idgraph.toml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A group of settings (a TOML table); unknown names in it are refused."""

    model_config = ConfigDict(extra="forbid")
