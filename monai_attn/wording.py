"""Counts that read as English in messages: ``1 window``, ``18 windows``, ``1 case``."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``"1 window"``, ``"2 windows"``; ``plural_form`` for nouns that do not take an ``s``."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"
