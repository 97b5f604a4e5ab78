"""``harness ls``: list algorithms (with their hyper-parameters), benchmarks and rollout engines."""

from __future__ import annotations

import dataclasses

from harness.commands.run import source_fields


def add_parser(sub) -> None:
    p = sub.add_parser("ls", help="list algorithms, benchmarks and engines")
    p.add_argument("--algo", help="show one algorithm's hyper-parameters and defaults")
    p.set_defaults(func=run)


def run(args) -> int:
    import algorithms
    from benchmarks import ALL, BENCHMARKS
    from harness.engines import engine_names

    if args.algo:
        algo = algorithms.get_algorithm(args.algo)
        print(f"{algo.name}: {algo.summary}")
        comments = field_comments(algo.config_cls)
        for f in dataclasses.fields(algo.config_cls):
            print(f"  algo.{f.name:20s} {f.default!r:14s} {comments.get(f.name, '')}".rstrip())
        return 0
    print("algorithms:")
    for name in algorithms.names():
        print(f"  {name:10s} {algorithms.get_algorithm(name).summary}")
    print("benchmarks:", ", ".join(BENCHMARKS.names()), f"(all = {', '.join(ALL)})")
    print(f"engines: {', '.join(engine_names())}")
    return 0


def field_comments(cls) -> dict[str, str]:
    """Each dataclass field's ``# comment`` in its source (the most derived class's, for a redefined field)."""
    out: dict[str, str] = {}
    for klass in cls.__mro__:
        if dataclasses.is_dataclass(klass):
            for name, _, comment in source_fields(klass):
                if comment:
                    out.setdefault(name, comment)
    return out
