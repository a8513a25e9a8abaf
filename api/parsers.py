"""The REST API's JSON parser: DRF's, refusing strings PostgreSQL cannot store.

A NUL byte (\\u0000) or a lone surrogate (\\ud800) anywhere in a JSON body, in a value or a key,
is a 400 naming where it is ({"overrides.lr_scheduler": [...]}, {"tags[1]": [...]}) instead of
a 500 when it reaches a text or jsonb column. The worker's webhook stores such text with the
characters replaced instead (training.services.ingest): it is the worker's, not a client's.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

UNSTORABLE = re.compile("[\\x00\\ud800-\\udfff]")
MESSAGE = "must not contain NUL bytes or unpaired surrogates"


def unstorable_paths(value: Any, path: str = "") -> list[str]:
    """Where in `value` a string (or key) holds a character PostgreSQL cannot store."""
    if isinstance(value, str):
        return [path or "body"] if UNSTORABLE.search(value) else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if UNSTORABLE.search(key):
                found.append(path or "body")  # the key itself cannot be shown, its container can
                continue
            found.extend(unstorable_paths(item, f"{path}.{key}" if path else key))
        return found
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in unstorable_paths(item, f"{path}[{index}]")]
    return []


class StorableJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        bad = unstorable_paths(data)
        if bad:
            raise exceptions.ValidationError({path: [MESSAGE] for path in dict.fromkeys(bad)})
        return data
