"""The harness: configuration, rollout engines, models, evaluation, training, sweeps, reports and the CLI.

Packages by layer; each imports only from its own layer or those below it (``tests/test_layers.py`` checks it):

    commands/, cli.py     the ``python -m harness`` commands: parse flags, call one layer below, print a table
    sweep/                grids of runs x seeds: plan, manifest, launchers (local, submitit, SLURM)
    train/                one training run: prepare -> evaluate base -> fit (the Lightning RL loop) -> evaluate -> close
    eval/                 evaluating a model on benchmarks (Pass@N, resumable, sharded) and the base-evaluation cache
    models/, report/      loading models (and the built-in ones); reading finished runs into tables and plots
    engines/              rollout engines behind one interface: hf (kv sampler or generate), vLLM
    config, results, progress, stop, metrics, stats
                          the run configuration, result files, console output, signals, and the public metrics/stats

Below them: :mod:`algorithms` (the RL objectives), :mod:`benchmarks` (data and grading), :mod:`common`.
"""
