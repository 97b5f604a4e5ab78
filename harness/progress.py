"""Console output: log levels, ``--quiet`` / ``--verbose``, and the training bar in RL steps.

Three levels, set by the ``--quiet`` / ``--verbose`` flags of ``run``, ``eval`` and ``sweep`` (or the
``HARNESS_LOG`` environment variable, a logging level name, for the log lines alone):

* default: warnings and errors, one line each (``LEVEL logger: message``); progress bars for the
  evaluation (per benchmark, in samples, with the generation chunks done and the accuracy so far) and for
  training (RL steps with reward, KL and sampled tokens per second), both redrawn every 2 s during a long
  chunk or step (:func:`ticking`); Lightning's start-up banners, the
  checkpoint-writing bars of transformers and a few known-harmless library warnings are hidden;
* ``--quiet``: no progress bars either (the result lines and warnings remain);
* ``--verbose``: INFO lines of the harness and of Lightning (GPU/TPU availability ...), every
  library warning, and transformers' loading/writing bars.

Lightning's logger ``lightning`` carries its own console handler *and* propagates to the root
logger, so each of its messages used to print twice; :func:`setup_logging` routes it through the
root handler alone.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import warnings

FORMAT = "%(levelname)s %(name)s: %(message)s"
_QUIET_WARNINGS = (  # library warnings that say nothing actionable about a harness run
    r".*isinstance\(treespec, LeafSpec\).*",           # torch/lightning pytree deprecation
    r"Found \d+ module\(s\) in eval mode.*",            # the frozen reference model, on purpose
    r".*does not have many workers.*",                  # the step "dataloader" has nothing to load
    r".*torch\.distributed\.reduce_op.*is deprecated.*",  # vLLM's Triton dispatcher, on import
)
_state = {"verbose": False}


def add_verbosity_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="no progress bars; warnings, errors and results only")
    group.add_argument("--verbose", action="store_true",
                       help="INFO lines of the harness and Lightning, all library warnings and bars")


def is_verbose() -> bool:
    """Whether ``--verbose`` (every library warning) is on."""
    return _state["verbose"]


def verbosity(args: argparse.Namespace | None) -> str:
    if args is not None and getattr(args, "quiet", False):
        return "quiet"
    if args is not None and getattr(args, "verbose", False):
        return "verbose"
    return "default"


def setup_logging(mode: str = "default", lightning: bool = False) -> None:
    """Root handler and levels for ``mode`` (``quiet``, ``default``, ``verbose``); see the module docstring.

    ``lightning``: also import Lightning now and route its loggers through the root handler (its
    import sets their level and handlers, so this must come after it).
    """
    level = os.environ.get("HARNESS_LOG") or ("INFO" if mode == "verbose" else "WARNING")
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger().setLevel(level)
    _state["verbose"] = mode == "verbose"
    if mode != "verbose":
        for pattern in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
    if mode == "quiet":   # no "Loading weights" bars either
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    if lightning:
        import lightning.pytorch  # noqa: F401  (sets up its loggers on import)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        if name == "lightning" or lightning:
            for h in list(lg.handlers):    # its own console handler: every line would print twice
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    lg.removeHandler(h)
            lg.propagate = True
        lg.setLevel(level)


@contextlib.contextmanager
def hf_bars_off():
    """No transformers progress bars inside the block ("Writing model shards" at every checkpoint)."""
    from transformers.utils import logging as hf_logging

    if _state["verbose"] or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


@contextlib.contextmanager
def ticking(bar, every: float = 2.0):
    """Redraw ``bar`` every ``every`` seconds inside the block, so that its elapsed time moves while one long
    call runs (a real model's generation chunk or RL step takes minutes on a CPU). Nothing for a disabled bar."""
    if bar is None or getattr(bar, "disable", True):
        yield
        return
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            bar.refresh()

    thread = threading.Thread(target=tick, name="bar-tick", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def training_bar(enabled: bool) -> list:
    """Trainer callbacks: the RL-step bar when progress bars are on (else none)."""
    if not enabled:
        return []

    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, convert_inf

    class RLStepBar(TQDMProgressBar):
        """Lightning's bar counting RL steps ("train 12/100"), created at the first step (not before
        the base evaluation), with reward, KL, the rollout/training mismatch and sampled tokens per second."""

        def on_train_start(self, trainer, pl_module) -> None:
            pass

        def on_train_epoch_start(self, trainer, *_) -> None:
            pass

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if self._train_progress_bar is None:
                self.train_progress_bar = Tqdm(
                    desc="train (RL steps)", unit="step", total=convert_inf(trainer.num_training_batches),
                    position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)
            self._tick = ticking(self.train_progress_bar)   # the elapsed time moves during a long step
            self._tick.__enter__()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self._stop_tick()
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

        def on_exception(self, trainer, pl_module, exception) -> None:
            self._stop_tick()

        def _stop_tick(self) -> None:
            tick, self._tick = getattr(self, "_tick", None), None
            if tick is not None:
                tick.__exit__(None, None, None)

        def get_metrics(self, trainer, pl_module) -> dict:
            m = super().get_metrics(trainer, pl_module)
            m.pop("v_num", None)
            out = {}
            for k, v in m.items():
                v = float(v) if not isinstance(v, str) else v
                out[k] = (f"{v:.0f}" if k == "tok/s" else f"{v:.3g}") if isinstance(v, float) else v
            return out

    return [RLStepBar()]
