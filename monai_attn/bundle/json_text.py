"""Editing a JSON document's top-level values in its text, leaving every other byte as it was.

``publish`` changes three entries of a bundle's ``metadata.json`` (``version``, ``changelog``,
``eval_metrics``); re-dumping the whole document would re-format lines it did not change, and the
diff of a release would hide what changed. These helpers replace (or add) one top-level value and
put a new first item into a top-level object, in the document's own indentation.

Example::

    text = set_top_level(text, "version", "0.5.0")
    text = prepend_item(text, "changelog", "0.5.0", "fine-tuned on ...")
"""

from __future__ import annotations

import json
import re
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")


def top_level_spans(text: str) -> dict[str, tuple[int, int]]:
    """Top-level key -> (start, end) of its value in ``text`` (a JSON object).

    Raises:
        ValueError: ``text`` is not a JSON object.
    """
    i = _SPACE.match(text, 0).end()
    if text[i:i + 1] != "{":
        raise ValueError("not a JSON object")
    spans: dict[str, tuple[int, int]] = {}
    i = _SPACE.match(text, i + 1).end()
    while text[i:i + 1] != "}":
        key, i = _DECODER.raw_decode(text, i)
        i = _SPACE.match(text, i).end()
        if text[i:i + 1] != ":":
            raise ValueError(f"expected ':' after key {key!r}")
        start = _SPACE.match(text, i + 1).end()
        _, end = _DECODER.raw_decode(text, start)
        spans[key] = (start, end)
        i = _SPACE.match(text, end).end()
        if text[i:i + 1] == ",":
            i = _SPACE.match(text, i + 1).end()
    return spans


def _indent(text: str, position: int) -> str:
    """The whitespace that starts the line holding ``position``."""
    line_start = text.rfind("\n", 0, position) + 1
    return _SPACE.match(text, line_start).group(0)


def set_top_level(text: str, key: str, value: Any) -> str:
    """``text`` with the top-level ``key`` set to ``value`` (added as the last key when absent).

    A new value is written on one line when the old one was (or for scalars), else indented
    like the document.
    """
    spans = top_level_spans(text)
    if key in spans:
        start, end = spans[key]
        one_line = "\n" not in text[start:end]
        rendered = json.dumps(value, ensure_ascii=False) if one_line else _render_block(value, _indent(text, start))
        return text[:start] + rendered + text[end:]
    close = text.rindex("}")
    body_end = len(text[:close].rstrip())
    indent = _indent(text, spans[next(reversed(spans))][0]) if spans else "    "
    separator = "," if spans else ""
    return (text[:body_end] + f'{separator}\n{indent}{json.dumps(key)}: {_render_block(value, indent)}'
            + text[body_end:])


def prepend_item(text: str, key: str, item_key: str, item_value: Any) -> str:
    """``text`` with ``item_key: item_value`` as the first item of the top-level object ``key``
    (an existing ``item_key`` in it is removed first)."""
    spans = top_level_spans(text)
    current = json.loads(text[slice(*spans[key])]) if key in spans else {}
    if not isinstance(current, dict):
        raise ValueError(f"{key!r} is not a JSON object")
    if key not in spans or item_key in current or not current:
        return set_top_level(text, key, {item_key: item_value, **{k: v for k, v in current.items() if k != item_key}})
    start, _ = spans[key]
    first = _SPACE.match(text, start + 1).end()
    item = f"{json.dumps(item_key, ensure_ascii=False)}: {json.dumps(item_value, ensure_ascii=False)},"
    if "\n" in text[start:first]:
        return text[:first] + item + "\n" + _indent(text, first) + text[first:]
    return text[:first] + item + " " + text[first:]


def _render_block(value: Any, indent: str) -> str:
    """``value`` as indented JSON whose nested lines start from ``indent``."""
    lines = json.dumps(value, indent=4, ensure_ascii=False).splitlines()
    return "\n".join([lines[0], *(indent + line for line in lines[1:])]) if lines else "null"

