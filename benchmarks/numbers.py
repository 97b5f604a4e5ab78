"""Numbers in answers: quantities with scale words, currency and units, significant figures, and Minerva golds
written as Python/NumPy. Short pure functions on strings, no SymPy; the rules they implement: ``docs/grading.md``.

* :func:`plain_quantity` -- ``1.45 million``, ``\\$1,450,000``, ``4.5 \\times 10^{33}~\\mathrm{erg}`` -> a
  decimal string; None for anything that is not one number (plus units).
* :func:`round_sig` / :func:`sig_figs` / :func:`numbers_match` -- significant-figure comparison for Minerva's golds.
* :func:`code_to_latex` -- Minerva golds written as Python/NumPy (``np.arcsin(10/13)``, ``-1./3``).

    python -c "from benchmarks.numbers import plain_quantity; print(plain_quantity('1.45 million'))"
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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
