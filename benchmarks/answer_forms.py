"""Answer forms the grader normalises before Math-Verify: short pure functions on strings, no SymPy.

Used by :mod:`benchmarks.grading`; each rule, what it accepts, why, and what it could wrongly accept:
``docs/grading.md``. Everything here is linear-time regex work on the last few thousand characters of a
response, so it adds nothing measurable to grading time and cannot hang.

* :func:`locate_answer` -- the final answer: the last run of boxes, else a stated answer, else (GSM8K,
  finished responses only) the last number; :func:`keep_last_boxed_run` un-boxes superseded boxes.
* :func:`final_answer_span` -- the answer stated after "The (final) answer is", "Final Answer:",
  "Answer:" or "####", cut at the end of its sentence or at a following remark.
* :func:`last_number` -- GSM8K's fallback: the last number of the text.
* numbers (quantities, significant figures, code golds): :mod:`benchmarks.numbers`, re-exported here.

    python -c "from benchmarks.answer_forms import locate_answer as l; print(l('The answer is 12.', False, 'stop'))"
"""

from __future__ import annotations

import re

from benchmarks.numbers import (code_to_latex, numbers_match, plain_quantity, round_sig,  # noqa: F401  (re-exported)
                               sig_figs)

SPAN_MAX_CHARS = 300
_ANCHOR = re.compile(
    r"(?:\bfinal\s+answer\b\s*\**\s*(?:is\b|:|=)?|\bthe\s+answer\s*\**\s*(?:is\b|:|=)|\banswer\s*\**\s*:|####)"
    r"[\s*:]*", re.IGNORECASE)
# a remark after the answer: "..., which", "because", "Check:", "and then" (the answer itself never needs these)
_REMARK = re.compile(
    r"(?:[,;]\s*|\s+)(?:because|since|which|where|so|but|then|hence|thus|therefore|check|checking|verify|"
    r"note|this|that|we|wait|as|i\.e\.|e\.g\.)\b", re.IGNORECASE)
_TRAILING = re.compile(r"(?:[\s.,;:]|\b(?:and|or)\b)*$", re.IGNORECASE)
_PROSE = re.compile(r"[a-z][a-z\s,'-]*")     # "consistent", "correct as stated": a remark, not an answer
_NOT = re.compile(r"(?:not|never|no longer)\b", re.IGNORECASE)
_CONNECTOR = re.compile(r"\s*\$?\s*(?:,|,?\s*and|,?\s*or)?\s*\$?\s*")
_MATH_OPEN = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_EMPTY_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{\s*\}")
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def final_answer_span(text: str, skip: int = 0) -> str | None:
    """The answer after the last final-answer statement ("The answer is X", "Final Answer: X", "#### X").

    The span runs to the end of the statement's sentence (a ``.``, ``!``, ``?`` or a line break outside maths
    delimiters) or to the start of a remark (``, because``, ``. Check:``, ``and then``), so that a check or a
    comment after the answer is not read as the answer. ``skip`` statements from the end are ignored (the
    caller moves to an earlier statement when the last one states nothing, "the answer is consistent").
    Returns None when there is no such statement, or when it negates ("the answer is not 5").
    """
    anchors = list(_ANCHOR.finditer(text))
    if skip >= len(anchors):
        return None
    start = anchors[len(anchors) - 1 - skip].end()
    if _NOT.match(text, start):
        return None
    span = _sentence(text[start:start + SPAN_MAX_CHARS])
    cut = _REMARK.search(_mask_math(span))
    span = _TRAILING.sub("", span[:cut.start()] if cut else span)
    return None if not span or _PROSE.fullmatch(span) else span


def _sentence(text: str) -> str:
    """``text`` up to the end of its first sentence, maths delimiters (``$..$``, ``\\[..\\]``) kept whole."""
    i = 0
    while i < len(text):
        for opener, closer in _MATH_OPEN:
            if text.startswith(opener, i):
                end = text.find(closer, i + len(opener))
                i = len(text) if end < 0 else end + len(closer)
                break
        else:
            ch = text[i]
            if ch in "!?\n" or (ch == "." and not text[i + 1:i + 2].isdigit()):
                if ch != "\n" or text[:i].strip():
                    return text[:i]
            i += 1
    return text


def _mask_math(span: str) -> str:
    """``span`` with the inside of maths delimiters blanked (same length), so a remark is found only in prose."""
    out, i = list(span), 0
    while i < len(span):
        for opener, closer in _MATH_OPEN:
            if span.startswith(opener, i):
                end = span.find(closer, i + len(opener))
                end = len(span) if end < 0 else end
                out[i + len(opener):end] = " " * (end - i - len(opener))
                i = end + len(closer)
                break
        else:
            i += 1
    return "".join(out)


def last_number(text: str) -> str | None:
    """The last number of ``text`` with thousands separators removed (GSM8K's convention); None if none."""
    found = None
    for found in _LAST_NUMBER.finditer(text):
        pass
    return found.group(0).replace(",", "") if found else None


# --------------------------------------------------------------------------- where the answer is

def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0 or text[start:brace].strip() not in ("\\boxed", "\\fbox"):
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1:i]
    return None


def boxed_spans(text: str) -> list[tuple[int, int, int, int]]:
    """(start, content_start, content_end, end) of every top-level ``\\boxed{...}``, in order."""
    spans = []
    pos = 0
    while (start := text.find("\\boxed", pos)) >= 0:
        brace = start + len("\\boxed")
        while brace < len(text) and text[brace] == " ":
            brace += 1
        if brace >= len(text) or text[brace] != "{":
            pos = start + 1
            continue
        depth, end = 0, -1
        for i in range(brace, len(text)):
            depth += (text[i] == "{") - (text[i] == "}")
            if depth == 0:
                end = i + 1
                break
        if end < 0:
            break
        spans.append((start, brace + 1, end - 1, end))
        pos = end
    return spans


def keep_last_boxed_run(text: str) -> str:
    """Un-box every ``\\boxed{X}`` (-> ``X``) except the final run of boxes joined by ``,``/and/or.

    Math-Verify merges ``\\boxed{2}, but wait ... \\boxed{3}`` into the set {2, 3}; the answer a
    model finally commits to is its last box (Qwen's rule), while ``$\\boxed{2}$ and $\\boxed{3}$``
    stays a two-element answer. An empty box (the instruction echoed: "within \\boxed{}") states nothing and
    is dropped first.
    """
    text = _EMPTY_BOX.sub("", text)
    spans = boxed_spans(text)
    if len(spans) < 2:
        return text
    k = len(spans) - 1
    while k > 0 and _CONNECTOR.fullmatch(text[spans[k - 1][3]:spans[k][0]]):
        k -= 1
    out, pos = [], 0
    for start, c0, c1, end in spans[:k]:
        out += [text[pos:start], text[c0:c1]]
        pos = end
    return "".join(out) + text[pos:]


def locate_answer(text: str, fallback: bool, finish_reason: str | None) -> tuple[str | None, str | None]:
    """(where the final answer is, its text): ``("boxed", content)``, ``("stated", span)``, ``("last", n)``.

    ``text`` has been through :func:`keep_last_boxed_run`. ``fallback``: the benchmark falls back to the last
    number, which a truncated response (``finish_reason == "length"``) never does. ``(None, None)`` when the
    response states no final answer. ``content`` is None when the final run holds several boxes (Math-Verify
    reads them as one set).
    """
    spans = boxed_spans(text)
    if spans:
        return "boxed", (text[spans[0][1]:spans[0][2]] if len(spans) == 1 else None)
    if last_boxed(text) is not None:          # \fbox, or a box the span scanner skipped
        return "boxed", None
    for skip in range(3):
        span = final_answer_span(text, skip)
        if span is not None:
            return "stated", span
    if fallback and finish_reason != "length":
        number = last_number(text)
        if number is not None:
            return "last", number
    return None, None

