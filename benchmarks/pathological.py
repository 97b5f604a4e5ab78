"""Pathological model outputs that a grader must reject within its timeout, never stalling a run.

Shared by ``tests/benchmarks/test_grading.py`` and ``scripts/bench_grading.py`` (worst-case grading time).
"""

PATHOLOGICAL = {
    "1 MB of text": "x" * 500_000 + "\\boxed{" + "y+" * 250_000 + "}",
    "10,000 nested braces": "{" * 10_000 + "1" + "}" * 10_000,
    "\\boxed{10^{10^{10^{10}}}}": "The answer is $\\boxed{10^{10^{10^{10}}}}$",
    "\\boxed{(10^{10})!}": "The answer is $\\boxed{(10^{10})!}$",
    "1,000 x \\boxed{}": "\\boxed{}" * 1000,
    "2,000 nested \\boxed": "\\boxed{" * 2000 + "1" + "}" * 2000,
}
