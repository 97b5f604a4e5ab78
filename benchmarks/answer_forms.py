"""Answer forms the grader normalises before Math-Verify: short pure functions on strings, no SymPy.

Used by :mod:`benchmarks.grading` (which documents each rule: what it accepts, why, and what it could
wrongly accept). Everything here is linear-time regex work on the last few thousand characters of a
response, so it adds nothing measurable to grading time and cannot hang.

* :func:`locate_answer` -- the final answer: the last run of boxes, else a stated answer, else (GSM8K,
  finished responses only) the last number; :func:`keep_last_boxed_run` un-boxes superseded boxes.
* :func:`final_answer_span` -- the answer stated after "The (final) answer is", "Final Answer:",
  "Answer:" or "####", cut at the end of its sentence or at a following remark.
* :func:`last_number` -- GSM8K's fallback: the last number of the text.
* :func:`plain_quantity` -- ``1.45 million``, ``\\$1,450,000``, ``4.5 \\times 10^{33}~\\mathrm{erg}`` -> a
  decimal string; None for anything that is not one number (plus units).
* :func:`round_sig` / :func:`sig_figs` -- significant-figure comparison for Minerva's numeric golds.
* :func:`code_to_latex` -- Minerva golds written as Python/NumPy (``np.arcsin(10/13)``, ``-1./3``).

    python -c "from benchmarks.answer_forms import *; print(plain_quantity('1.45 million'))"
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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

_SCALE = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_NUMBER = (r"(?P<sign>[+-])?\s*(?P<mant>\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
           r"(?:\s*[eE]\s*(?P<e>[+-]?\d+)"
           r"|\s*(?:\\times|\\cdot|\\!\\times|\*|×|x)\s*10\s*\^\s*(?:\{\s*(?P<p1>[+-]?\d+)\s*\}|(?P<p2>[+-]?\d+))"
           r")?")
_QUANTITY = re.compile(r"\s*(?:\\\$|\$|€|£|¥|\\euro|USD\s*)?\s*" + _NUMBER +
                       r"(?:\s*(?P<scale>thousand|million|billion|trillion)\b)?", re.IGNORECASE)
_SCALE_TEXT = re.compile(r"\\(?:text|mathrm|textrm|mbox)\s*\{\s*(thousand|million|billion|trillion)\s*\}",
                         re.IGNORECASE)
_TEN_POWER = re.compile(r"\s*(?P<sign>[+-])?\s*10\s*\^\s*(?:\{\s*(?P<p1>[+-]?\d+)\s*\}|(?P<p2>[+-]?\d+))")
# what may follow a quantity: spacing, \text{..}/\mathrm{..} blocks, unit words (2+ letters), unit symbols,
# exponents on units, separators; never a digit outside an exponent, an operator or a maths command
_UNIT_TOKEN = re.compile(
    r"\s+|~|\\[,;:! ]|\\quad|\\(?:text|mathrm|textrm|mbox|rm|operatorname|mathit)\s*"
    r"\{(?:[^{}\d]|[_^]\{?[+-]?\d+\}?|\{(?:[^{}\d]|[+-]?\d)*\})*\}"
    r"|\\(?:mu|AA|Omega|circ|degree)|\^\s*\\circ|\^\s*\{\\circ\}|°|[/.·]|\\cdot(?=\s*[A-Za-z\\])"
    r"|(?<=[A-Za-z}])\^\s*(?:\{\s*[+-]?\d+\s*\}|[+-]?\d)|(?P<word>[A-Za-z]+)")
_NOT_UNITS = {"pi", "sqrt", "ln", "log", "sin", "cos", "tan", "exp", "and", "or", "to", "times", "cdot", "frac",
              "dfrac", "plus", "minus", "over", "divided", "cis"}
_UNIT_LETTERS = set("msgKJWVNLAh")     # single-letter SI units; other single letters are variables (x, e, i)
_PREFIX = re.compile(r"^.{0,40}?(?:=|\\approx|\\simeq|\\sim|≈)(?!.*(?:=|\\approx|\\simeq))\s*", re.DOTALL)


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


def plain_quantity(answer: str, units: bool = True) -> str | None:
    """The number ``answer`` states, as a decimal string (``'1450000'``, ``'4.5E+33'``); None if not one number.

    Accepts a currency sign, thousands separators (``1,450,000``, ``1{,}450{,}000``), a scale word
    (``thousand``, ``million``, ``billion``, ``trillion``), e-notation or ``\\times 10^{k}``, a leading
    ``X =`` or ``X \\approx``, ``$..$`` around it, and (``units=True``) a unit tail: ``\\text{..}``,
    ``\\mathrm{..}`` blocks, unit words of 2+ letters, SI letters, exponents on units. Rejects anything else
    after the number (another number, an operator, ``\\pi``, ``\\sqrt``, a variable like ``x``, and ``%``,
    which Math-Verify reads as /100).
    """
    s = answer.strip().strip("$").strip()
    s = _PREFIX.sub("", s, count=1) if ("=" in s or "\\approx" in s or "\\sim" in s or "≈" in s) else s
    s = _SCALE_TEXT.sub(r" \1", s.strip().strip("$").strip())
    m = _TEN_POWER.match(s)
    if m:
        mant, power = "1", int(m.group("p1") or m.group("p2"))
    else:
        m = _QUANTITY.match(s)
        if not m or m.group("mant") is None:
            return None
        mant = m.group("mant").replace("{,}", "").replace(",", "")
        power = int(m.group("e") or m.group("p1") or m.group("p2") or 0)
        power += _SCALE.get((m.group("scale") or "").lower(), 0)
    if not (_is_unit_tail(s[m.end():]) if units else not s[m.end():].strip()):
        return None
    try:
        value = Decimal(mant).scaleb(power)
    except InvalidOperation:
        return None
    value = -value if m.group("sign") == "-" else value
    return format(value, "f") if -12 < value.adjusted() < 16 else str(value)


def _is_unit_tail(tail: str) -> bool:
    i = 0
    while i < len(tail):
        m = _UNIT_TOKEN.match(tail, i)
        if not m or m.end() == i:
            return False
        word = m.group("word")
        if word and (word.lower() in _NOT_UNITS or (len(word) == 1 and word not in _UNIT_LETTERS)):
            return False
        i = m.end()
    return True


def sig_figs(number: str) -> int:
    """Significant figures of a written number: ``4.5e33`` -> 2, ``0.030`` -> 2, ``300`` -> 3, ``4e33`` -> 1.

    Trailing zeros of an integer count (``300`` is taken as exact to the unit), the stricter reading.
    """
    mant = re.split(r"[eE]", number.strip().lstrip("+-"))[0]
    digits = mant.replace(".", "").lstrip("0")
    return max(len(digits), 1)


def round_sig(value: Decimal, figures: int) -> Decimal:
    """``value`` rounded half-up to ``figures`` significant figures."""
    if value == 0:
        return value
    exponent = value.adjusted() - figures + 1
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)


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


def numbers_match(gold: Decimal, pred: Decimal, sig: int | None) -> bool:
    """``sig`` figures of the gold (Minerva, grading rule 1), else Math-Verify's exact / 6-decimal rule."""
    if sig is not None:
        return round_sig(pred, sig) == gold
    if gold == pred:
        return True
    fractional = gold != gold.to_integral_value() or pred != pred.to_integral_value()
    return fractional and round(gold, 6) == round(pred, 6)


# --------------------------------------------------------------------------- Python/NumPy golds

_CODE_HINT = re.compile(r"\b(?:np|numpy|math)\.|\*\*|\d\.(?!\d)")
_CODE_FUNCS = {"arcsin": "\\arcsin", "arccos": "\\arccos", "arctan": "\\arctan", "sin": "\\sin", "cos": "\\cos",
               "tan": "\\tan", "exp": "\\exp", "log": "\\ln", "log10": "\\log_{10}", "sqrt": "\\sqrt",
               "pi": "\\pi", "e": "e"}
_CODE_TOKEN = re.compile(r"\s+|\d+\.\d*|\.\d+|\d+|\*\*|[-+*/()]|(?:(?:np|numpy|math)\.)?(?P<name>[A-Za-z_]\w*)")


def code_to_latex(gold: str) -> str | None:
    """A Python/NumPy expression (``np.arcsin(10/13)``, ``-1./3``, ``np.pi/2``, ``2**(1/3)``) as LaTeX.

    A whitelist translation, never ``eval``: numbers, ``+ - * / ( )``, ``**`` and the NumPy/math names in
    ``_CODE_FUNCS``; any other name, or no code marker at all (``np.``, ``**``, ``1./``), gives None.
    """
    if "\\" in gold or not _CODE_HINT.search(gold):
        return None
    out, i = [], 0
    while i < len(gold):
        m = _CODE_TOKEN.match(gold, i)
        if not m:
            return None
        tok, name = m.group(0), m.group("name")
        if name is not None:
            if name not in _CODE_FUNCS:
                return None
            tok = _CODE_FUNCS[name] + " "
        elif tok == "**":
            tok = "^"
        elif tok[0].isdigit() and tok.endswith("."):
            tok = tok[:-1]
        elif tok == "*":
            tok = " \\cdot "
        out.append(tok)
        i = m.end()
    return _brace_args("".join(out))


def _brace_args(latex: str) -> str:
    """``^( .. )`` and ``\\sqrt ( .. )`` -> ``^{( .. )}`` / ``\\sqrt{ .. }`` (LaTeX takes one token otherwise)."""
    for marker, keep in (("^", True), ("\\sqrt ", False)):
        pos = 0
        while (i := latex.find(marker, pos)) >= 0:
            j = i + len(marker)
            while j < len(latex) and latex[j] == " ":
                j += 1
            if j < len(latex) and latex[j] == "(":
                depth, k = 0, j
                for k in range(j, len(latex)):
                    depth += (latex[k] == "(") - (latex[k] == ")")
                    if depth == 0:
                        break
                inner = latex[j:k + 1] if keep else latex[j + 1:k]
                latex = latex[:i] + marker.strip() + "{" + inner + "}" + latex[k + 1:]
            elif marker == "^" and j < len(latex):
                m = re.match(r"[+-]?[\w.]+", latex[j:])
                if m:
                    latex = latex[:i] + "^{" + m.group(0) + "}" + latex[j + m.end():]
            pos = i + 1
    return latex
