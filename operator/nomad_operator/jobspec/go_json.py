"""JSON text the way Go's encoding/json writes it, so `render` prints byte for byte what `nomad job run -output` does.

Python's `json` differs from Go's in small ways that break a byte comparison: Go escapes `<`, `>` and `&` (HTML
safety) and the line separators U+2028/U+2029, writes non-ASCII as UTF-8, and prints floats in the shortest
form. Key order is the caller's: struct fields in Go order, map keys already sorted by the mapper. The canonical
form used for hashing is separate: sorted keys, no spaces, stable across runs and Python versions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from nomad_operator.jobspec.body import Value

GO_INDENT: Final = 4
_GO_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Value, *, indent: int | None = GO_INDENT) -> str:
    """`value` as Go's json.MarshalIndent (or json.Marshal with indent=None) prints it."""
    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, allow_nan=False)
    # These characters only ever occur inside JSON strings, so replacing them everywhere is safe.
    for raw, escaped in _GO_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def canonical_json(value: Value) -> str:
    """Sorted keys, no whitespace: the stable text that spec hashes are computed over."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
