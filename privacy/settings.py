"""Privacy settings (the ``[privacy]`` table of ``idgraph.toml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from idgraph.core.sections import Section


class PrivacySettings(Section):
    """How consent is folded and how forgotten people are kept out."""

    merge_rule: Literal["deny_wins", "latest_wins"] = "deny_wins"
    """How the consent of merged records combines (:mod:`idgraph.privacy.consent`):
    ``deny_wins`` keeps any denial or withdrawal until a later grant covers it;
    ``latest_wins`` takes the latest statement."""
    suppression_key: SecretStr | None = None
    """The HMAC key suppressed identifiers are hashed with (at least 32 characters). Every
    writer and server of a deployment must use the same one. When unset, the embedded
    backend keeps a random key in ``suppression.key`` in the data dir (mode 0600); the
    Cassandra backend refuses to start without it."""
    suppression_key_file: Path | None = None
    """A file holding the key instead of ``suppression_key`` (read once at start)."""
    forget_history_limit: int = Field(default=100, ge=1)
    """Forget requests kept per subject hash in answers (all are stored)."""
