"""Seconds per training iteration of what ``train.yaml`` builds, alternating with the authors' network.

    python benchmarks/bench_train.py [--authors-repo PATH] [--iterations 6] [--set amp=false ...]
                                     [--profile benchmarks/out/train_profile.txt]

Ours is exactly what a user gets from ``bundle/configs/train.yaml`` (plus any ``--set key=value``
overrides): the network, loss, optimizer and :class:`~monai_mtt.engines.SemiSupervisedTrainer` with its
handlers, run by Ignite on batches from the config's own loaders (the embedded ISIC-2017 sample, 4
labeled + 4 classification-only images at 224x224). Each of our iterations is timed from Ignite's
ITERATION_STARTED to ITERATION_COMPLETED (forward, every loss term with the ARC attention, backward,
optimizer step, the handlers); the time spent waiting for the next batch is reported apart. With
``--authors-repo``, after each of our iterations the authors' network does one forward/backward/Adam
step on the same 8 images with comparable losses (``_common.AuthorsTrainStep``, fp32 as their code
trains), so both are measured under the same machine load. Their data pipeline is not timed, which
favours them. ``--profile`` writes torch.profiler tables (by operator) of one iteration of each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigParser

from _common import AuthorsTrainStep, authors_model

REPO = Path(__file__).resolve().parents[1]


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def build_trainer(overrides: dict, output_dir: str):
    """``train#trainer`` of train.yaml with ``overrides``, as ``python -m monai.bundle run training`` builds it."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundle" / "configs" / "train.yaml"))
    parser.update({"bundle_root": str(REPO / "bundle"), "output_dir": output_dir, "max_items": None, **overrides})
    from monai.utils import set_determinism

    set_determinism(seed=0)
    return parser, parser.get_parsed_content("train#trainer")


def profile_table(fn, title: str) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=60)
    return f"## {title}\n{table}\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", default=None)
    p.add_argument("--iterations", type=int, default=6, help="timed iterations of each (after 2 warm-up)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="train.yaml overrides")
    p.add_argument("--profile", default=None, help="write per-operator profiles of one iteration here")
    args = p.parse_args()
    overrides = {"num_workers": 2, "val_interval": 10_000, "max_iterations": 10_000}
    overrides.update({k: _value(v) for k, v in (s.split("=", 1) for s in args.set)})
    warmup = 2
    total = warmup + args.iterations
    with tempfile.TemporaryDirectory() as out_dir:
        parser, trainer = build_trainer(overrides, out_dir)
        theirs_net = authors_model(args.authors_repo, int(parser.get_parsed_content("image_size")))
        optimizer = parser.get_parsed_content("optimizer")
        print(
            f"device {trainer.state.device if hasattr(trainer.state, 'device') else parser['device']}  "
            f"torch threads {torch.get_num_threads()}  overrides {overrides}"
        )
        print(
            f"ours: {type(parser.get_parsed_content('network')).__name__}, amp={parser.get_parsed_content('amp')!r} "
            f"(resolved: {'bf16/fp16 autocast' if trainer.amp or getattr(trainer, 'cpu_amp', False) else 'fp32'}), "
            f"optimizer {type(optimizer).__name__} fused={optimizer.defaults.get('fused')} "
            f"foreach={optimizer.defaults.get('foreach')}, zero_grad set_to_none={trainer.optim_set_to_none}"
        )
        times: dict[str, list[float]] = {"ours": [], "data wait": [], "authors": []}
        state: dict = {}

        def started(engine):
            state["t0"] = time.perf_counter()

        def completed(engine):
            it = engine.state.iteration
            if it > warmup:
                times["ours"].append(time.perf_counter() - state["t0"])
            if theirs_net is not None:
                if "step" not in state:
                    b = engine.state.batch
                    state["step"] = AuthorsTrainStep(theirs_net, b["labeled"], b["unlabeled"])
                t0 = time.perf_counter()
                state["step"]()
                if it > warmup:
                    times["authors"].append(time.perf_counter() - t0)
            if args.profile and it == total:
                text = profile_table(lambda: trainer._iteration(trainer, engine.state.batch), "ours (train.yaml)")
                if "step" in state:
                    text += profile_table(state["step"], "authors' network")
                Path(args.profile).parent.mkdir(parents=True, exist_ok=True)
                Path(args.profile).write_text(text)
                print(f"profiles written to {args.profile}")
            if it >= total:
                engine.terminate()

        def batch_started(engine):
            state["b0"] = time.perf_counter()

        def batch_completed(engine):
            if engine.state.iteration >= warmup:
                times["data wait"].append(time.perf_counter() - state["b0"])

        trainer.add_event_handler(Events.ITERATION_STARTED, started)
        handlers = trainer._event_handlers[Events.ITERATION_STARTED]
        handlers.insert(0, handlers.pop())  # the clock starts before any handler of the iteration
        trainer.add_event_handler(Events.ITERATION_COMPLETED, completed)
        trainer.add_event_handler(Events.GET_BATCH_STARTED, batch_started)
        trainer.add_event_handler(Events.GET_BATCH_COMPLETED, batch_completed)
        trainer.run()
    med = {k: statistics.median(v) for k, v in times.items() if v}
    print(
        f"ours: {med['ours']:.2f} s / iteration (median of {len(times['ours'])}; min {min(times['ours']):.2f}), "
        f"waiting for data {med['data wait']:.3f} s / iteration"
    )
    if "authors" in med:
        print(
            f"authors' network: {med['authors']:.2f} s / iteration (alternating)   "
            f"ratio ours / authors: {med['ours'] / med['authors']:.3f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (ours and theirs built): {peak:.0f} MB")
    if torch.cuda.is_available():
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
