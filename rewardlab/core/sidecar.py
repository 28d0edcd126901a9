"""The integrity seal of an exported policy's sidecar (``policy.json``). No project imports.

The exporter (``rewardlab.agents.export``) writes it and deploy (``rewardlab.deploy.policy``)
checks it, so both use this one definition: ``sidecar_sha256`` is the SHA-256 of the sidecar's
content -- every key but itself, as parsed from the file, dumped with ``sort_keys=True`` and
``separators=(",", ":")`` in ASCII -- so whitespace and key order in the file do not matter,
and the content includes every model file's own SHA-256 (``files``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

SIDECAR_HASH_KEY = "sidecar_sha256"
"""Key of the sidecar's own hash in ``policy.json``."""


def sidecar_digest(meta: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a sidecar's content: every key of ``meta`` but ``sidecar_sha256``."""
    body = {k: v for k, v in meta.items() if k != SIDECAR_HASH_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal_sidecar(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with ``sidecar_sha256`` set to :func:`sidecar_digest` of the rest."""
    out = {k: v for k, v in meta.items() if k != SIDECAR_HASH_KEY}
    out[SIDECAR_HASH_KEY] = sidecar_digest(out)
    return out
