"""How the analyser writes numbers and counts in its messages, suggestions and reasons."""

from __future__ import annotations


def fmt(x: float) -> str:
    return f"{x:.4g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
