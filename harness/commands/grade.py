"""``python -m harness grade``: grade model responses in a JSONL file with the harness's grader.

Each input line is ``{"bench": <registered benchmark>, "answer": <gold answer string as the registry
extracts it>, "response": <model text>}`` (other keys are kept). Each output line is the input plus
``"correct": true|false`` and ``"extracted": <string or null>``. An optional ``"finish_reason"``
(``"stop"``/``"length"``, as in ``samples.jsonl``) denies a truncated response the last-number fallback.
Prints per-benchmark accuracy and, last, the overall ``accuracy: 0.xxxx (k/N)``.

    python -m harness grade --input responses.jsonl --output graded.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from common.errors import HarnessError
from common.jsonl import read_jsonl_strict

EPILOG = """example input line:
  {"bench": "math500", "answer": "\\\\frac{1}{2}", "response": "... so the answer is $\\\\boxed{0.5}$."}
benches: math500, minerva_math, olympiadbench, aime24, aime25, amc23, gsm8k, arith (see `harness ls`)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("grade", help="grade responses in a JSONL file (Math-Verify)",
                              description=__doc__.splitlines()[0], epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="JSONL with bench, answer, response per line")
    p.add_argument("--output", default=None, help="write the graded lines here (JSONL)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per response (default 5)")
    p.add_argument("--workers", type=int, default=2, help="grading processes (default 2)")
    p.set_defaults(func=run)
    return p


def read_grading_input(path: Path) -> list[dict]:
    """Validated input rows; a HarnessError names file:line for anything malformed."""
    from benchmarks import BENCHMARKS

    if not path.is_file():
        raise HarnessError(f"--input {str(path)!r} does not exist or is not a file")
    rows = []
    for lineno, row in read_jsonl_strict(path, empty=" (no rows to grade)"):
        for key in ("bench", "answer", "response"):
            if key not in row:
                raise HarnessError(f"{path}:{lineno}: missing field {key!r} (need bench, answer, response)")
            if not isinstance(row[key], str):
                raise HarnessError(f"{path}:{lineno}: field {key!r} must be a string "
                                   f"(got {type(row[key]).__name__})")
        if row.get("finish_reason") not in (None, "stop", "length"):
            raise HarnessError(f"{path}:{lineno}: field 'finish_reason' must be \"stop\", \"length\" or absent")
        if row["bench"] not in BENCHMARKS:
            raise HarnessError(f"{path}:{lineno}: unknown bench {row['bench']!r}; available: "
                               f"{', '.join(BENCHMARKS.names())}")
        if not row["answer"].strip():
            raise HarnessError(f"{path}:{lineno}: empty gold answer")
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    from benchmarks.grading import Grader
    from harness.results import atomic_write_text

    if args.timeout <= 0 or args.workers < 1:
        raise HarnessError(f"--timeout must be > 0 and --workers >= 1 (got {args.timeout}, {args.workers})")
    rows = read_grading_input(Path(args.input))
    if args.output and Path(args.output).resolve() == Path(args.input).resolve():
        raise HarnessError("--output must differ from --input")
    with Grader(timeout=args.timeout, workers=args.workers) as grader:
        results = grader.grade([r["response"] for r in rows], [r["answer"] for r in rows],
                               [r["bench"] for r in rows], [r.get("finish_reason") for r in rows])
    graded = [dict(r, correct=res.correct, extracted=res.extracted) for r, res in zip(rows, results)]
    if args.output:
        atomic_write_text(args.output, "".join(json.dumps(g, ensure_ascii=False) + "\n" for g in graded))
        print(f"graded responses (with correct, extracted): {args.output}")
    else:
        print("graded in memory only (--output FILE keeps each verdict and extracted answer)")
    total, right = Counter(g["bench"] for g in graded), Counter(g["bench"] for g in graded if g["correct"])
    if len(total) > 1:
        for bench in total:
            print(f"{bench}: {right[bench] / total[bench]:.4f} ({right[bench]}/{total[bench]})")
    k, n = sum(right.values()), len(graded)
    print(f"accuracy: {k / n:.4f} ({k}/{n})")
    return 0
