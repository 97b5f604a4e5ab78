"""The ``python -m harness`` commands, one module each: ``add_parser(subparsers)`` and ``run(args) -> exit code``.

A command parses its flags, checks them, calls the layer below (:mod:`harness.train`, :mod:`harness.eval`,
:mod:`harness.sweep`, :mod:`harness.report`) and prints what it found. Those layers import torch, lightning or scipy,
so a command imports them inside ``run``: that keeps ``python -m harness --help`` at ~0.15 s instead of ~7 s. A new
command: a module here, listed in ``harness.cli.COMMANDS``.

May import anything in :mod:`harness` (and nothing imports it but :mod:`harness.cli`).
"""
