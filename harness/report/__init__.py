"""Reading finished runs and reporting them: :mod:`.runs` (strict loading of run directories), :mod:`.scores`
(per-problem scores), :mod:`.tables` (paper-style tables with paired significance tests), :mod:`.render` (markdown,
LaTeX, CSV), :mod:`.plots` (figures), :mod:`.summary` (what ``harness run`` prints when it ends).

May import: the base modules (:mod:`harness.metrics`, :mod:`harness.stats`, :mod:`harness.results`, ...),
:mod:`benchmarks`, :mod:`common`; nothing that trains or samples.

    python -m harness table results/mini-repro --format md
"""
