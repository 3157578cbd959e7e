"""Keyed hashes of forgotten identifiers: what ingest checks before resolving anything.

A suppression never stores an identifier: it stores the keyed BLAKE2b-256 (a MAC, RFC
7693; the key is the SHA-256 of the configured key) of the normalised identifier key
(``email:jane@example.com``) or record key (``sendgrid:jane@example.com``), hex-encoded.
BLAKE2b's keyed mode costs ~1 us per value where Python's HMAC costs ~15 us, and ingest
hashes every identifier of every event. Without the key a stolen list cannot be
checked against guessed emails, and the same key on every writer makes the hashes equal
across processes and machines.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

from idgraph.core.errors import ConfigError
from idgraph.core.private_files import read_or_create_secret, read_secret

KEY_FILE = "suppression.key"
MIN_KEY_BYTES = 32


class SuppressionKeys:
    """Hashes values with one key (keyed BLAKE2b), remembering recent answers."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"privacy.suppression_key is shorter than {MIN_KEY_BYTES} bytes")
        self._key = hashlib.sha256(key).digest()
        # ~40 MB at most: the identifiers of the last few batches
        self.hash = functools.lru_cache(maxsize=1 << 18)(self._hash)  # type: ignore[method-assign]

    def _hash(self, value: str) -> str:
        return hashlib.blake2b(value.encode("utf-8"), key=self._key,
                               digest_size=32).hexdigest()

    def hash(self, value: str) -> str:
        """The keyed hash of one normalised identifier key or record key."""
        return self._hash(value)

    def hashes(self, values: Iterable[str]) -> dict[str, str]:
        """value -> keyed hash."""
        return {v: self.hash(v) for v in values}


def load_keys(configured: str | None, key_file: Path | None, data_dir: Path,
              generate: bool) -> SuppressionKeys:
    """The suppression key: the configured one, else ``key_file``, else (``generate``:
    the embedded backend) ``suppression.key`` in ``data_dir``, created 0600 with 32 random
    bytes when missing. ConfigError when none is available."""
    if configured:
        return SuppressionKeys(configured.encode("utf-8"))
    path = key_file or (Path(data_dir) / KEY_FILE if generate else None)
    if path is None:
        raise ConfigError("privacy.suppression_key (or privacy.suppression_key_file) is not "
                          "set: every writer and server of a distributed deployment must "
                          "share one key")
    setting = "privacy.suppression_key_file"
    if generate and key_file is None:
        return SuppressionKeys(read_or_create_secret(Path(path), setting, MIN_KEY_BYTES))
    return SuppressionKeys(read_secret(Path(path), setting))
