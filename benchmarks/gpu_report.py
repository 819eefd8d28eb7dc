"""GPU report: training it/s with and without AMP, TTA images/s, peak GPU memory, and a short real run.

    python benchmarks/gpu_report.py --isic-root ../shared/data/isic2017_256 [--authors-repo PATH] --out report.json
    python benchmarks/gpu_report.py --tiny [--isic-root ROOT] [--out FILE]     # CPU smoke mode (the test's)

Run from anywhere with ``monai_mtt`` importable (``pip install -e .``). On a CUDA machine (``cuda:0``;
``--device`` picks another) it prints, in a few minutes:

1. Training speed: iterations/s of :class:`~monai_mtt.engines.SemiSupervisedTrainer` iterations of
   ``batch_size_labeled`` + ``batch_size_unlabeled`` = 4 + 4 fixed random images at ``image_size`` = 224
   (one concatenated forward, every loss term, ARC attention on, Adam step), in full precision and with
   AMP (CUDA float16 autocast + ``GradScaler``; on a CPU, bfloat16 autocast). Network, loss, optimizer
   and trainer are built from ``bundle/configs/train.yaml`` by id; only the data loaders and handlers
   are replaced, so data loading is not timed. With ``--authors-repo`` (a checkout of
   JingyeChen/MT-TransUNet, never vendored; needs ``ml_collections``) the authors' network does the
   same step with comparable losses (``_common.AuthorsTrainStep``), and the ratio is printed.
2. TTA inference: images/s of ``bundle/configs/evaluate.yaml``'s evaluator (its default
   :class:`~monai_mtt.inferers.MultiScaleTTAInferer`: 3 scales x 6 views = 18 views; fused network,
   random weights), batch 1, one ``--tta-size`` image per call (767x1022, the size of many ISIC
   images; the masks are mapped back to it), with and without AMP.
3. Peak GPU memory (``torch.cuda.max_memory_allocated``, reset before each measurement) and the
   process's peak resident memory; device name, CUDA/cuDNN, torch, MONAI and package versions.
4. With ``--isic-root`` (an ISIC 2017 root in the official layout, e.g. ``isic2017_256``, the whole
   training set at 256x256): a short real training through the bundle's ``training`` workflow
   (``benchmarks/gpu_report.yaml`` merged on ``train.yaml``: 400 iterations at 224 px, lr 3e-4, train.yaml's
   ``amp: auto``, i.e. float32 on CUDA; validation every 200), then the ``evaluating`` workflow (TTA at
   the original image size) with
   the best checkpoint on that run's validation split (the root's official one, or the held-out
   ``val_fraction`` of its training set; the checkpoint was selected on that split), printing
   JA/DI/AC, melanoma/keratosis AUC and the wall times (setup incl. data caching, training loop,
   validation, evaluation). Its files (checkpoints, TensorBoard, ``metrics.md``, ``roc.png``,
   overlays) stay in ``--work-dir`` (default: a new temporary folder, printed).

``--config FILE`` (repeatable) merges more overrides on top, for the speed runs too (e.g.
``pretrained_path``, another budget or ``image_size``). ``--tiny`` merges
``benchmarks/gpu_report_tiny.yaml`` (a scaled-down network, 32 px, 2 timed iterations, 60x80 TTA
images, 12 images per split) so everything runs on a CPU in about a minute; ``tests/test_gpu_report.py``
runs it. ``--out FILE`` also writes the report as JSON. Figures are measured on the machine it runs
on; state it (the report's first lines) with any figure quoted.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import monai
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow

import monai_mtt
from _common import AuthorsTrainStep, authors_model, synthetic_batch
from monai_mtt.data import find_isic2017_root
from monai_mtt.engines import resolve_amp

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
CONFIGS = BUNDLE / "configs"
META = str(CONFIGS / "metadata.json")
LOGGING = str(CONFIGS / "logging.conf")
HERE = Path(__file__).resolve().parent
REPORT_CONFIG = HERE / "gpu_report.yaml"
TINY_CONFIG = HERE / "gpu_report_tiny.yaml"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    gc.collect()  # free the previous measurement's engine and network (Ignite holds reference cycles)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    """Peak CUDA memory allocated since the last reset (None on CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _parser(files: list[Path], device: torch.device, **overrides: Any) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    parser.update({"bundle_root": str(BUNDLE), "device": f"$torch.device('{device}')", **overrides})
    return parser


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def environment(device: torch.device) -> dict[str, Any]:
    """Device name and software versions."""
    env: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "monai_mtt": monai_mtt.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            device_name=props.name,
            device_memory_mb=round(props.total_memory / 2**20),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        env["device_name"] = _cpu_name()
    return env


def _timed_run(engine: Any, device: torch.device, warmup: int) -> float:
    """Run an Ignite engine; seconds from the end of iteration ``warmup`` to the end of the last one."""
    stamps: list[float] = []

    def stamp(_: Any) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    engine.add_event_handler(Events.ITERATION_COMPLETED, stamp)
    engine.run()
    return stamps[-1] - stamps[warmup - 1]


def ours_train_speed(files: list[Path], device: torch.device, amp: bool, iterations: int, warmup: int) -> dict:
    """Iterations/s of train.yaml's trainer on fixed random batches (no data loading, no handlers)."""
    parser = _parser(files, device, amp=amp)
    size = int(parser.get_parsed_content("image_size"))
    n_lab = int(parser.get_parsed_content("batch_size_labeled"))
    n_unl = int(parser.get_parsed_content("batch_size_unlabeled"))
    parser.update({
        "train#trainer#train_data_loader": [synthetic_batch(n_lab, size, True)],
        "train#trainer#unlabeled_data_loader": [synthetic_batch(n_unl, size, False)],
        "train#trainer#train_handlers": [],
        "train#trainer#return_attention": True,  # the ARC term on, as ARCHandler sets it
        "train#trainer#max_epochs": 1,
        "train#trainer#epoch_length": warmup + iterations,
    })
    torch.manual_seed(0)
    trainer = parser.get_parsed_content("train#trainer")
    dtypes: set[str] = set()  # the precision the network really computed in (float16 under CUDA AMP)
    trainer.network.register_forward_hook(lambda m, i, out: dtypes.add(str(out["seg"].dtype).replace("torch.", "")))
    _reset_peak(device)
    seconds = _timed_run(trainer, device, warmup)
    return {
        "images": f"{n_lab}+{n_unl}",
        "size": size,
        "compute_dtype": "/".join(sorted(dtypes)),
        "grad_scaler": trainer.scaler is not None,
        "it_per_s": iterations / seconds,
        "peak_mb": _peak_mb(device),
        "last_loss": float(trainer.state.output["loss"]),
    }


def authors_train_speed(repo: str, size: int, device: torch.device, amp: bool, iterations: int, warmup: int) -> dict:
    """Iterations/s of the authors' network (4 + 4 random images, comparable losses, Adam)."""
    model = authors_model(repo, size).to(device)
    step = AuthorsTrainStep(model, synthetic_batch(4, size, True), synthetic_batch(4, size, False), amp=amp)
    _reset_peak(device)
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iterations):
        loss = step()
    _sync(device)
    seconds = time.perf_counter() - t0
    result = {"images": "4+4", "size": size, "compute_dtype": str(step.compute_dtype).replace("torch.", ""),
              "grad_scaler": step.scaler is not None, "it_per_s": iterations / seconds, "peak_mb": _peak_mb(device),
              "last_loss": float(loss)}
    del model, step
    return result


def tta_speed(files: list[Path], device: torch.device, amp: bool, hw: tuple[int, int], runs: int, warmup: int,
              work: Path) -> dict:
    """Images/s of inference.yaml + evaluate.yaml's evaluator (TTA inferer, fused network, batch 1), random images."""
    parser = _parser(files, device, amp=amp)
    ckpt = work / "random_init.pt"
    if not ckpt.is_file():  # random weights: speed does not depend on them
        torch.manual_seed(0)
        torch.save({"model": parser.get_parsed_content("network_def").state_dict()}, ckpt)
    g = torch.Generator().manual_seed(3)
    batches = [{"image": torch.rand(1, 3, *hw, generator=g)} for _ in range(warmup + runs)]
    parser.update({"checkpoint": str(ckpt), "dataloader": batches, "handlers": []})
    evaluator = parser.get_parsed_content("evaluator")
    inferer = parser.get_parsed_content("inferer")
    _reset_peak(device)
    seconds = _timed_run(evaluator, device, warmup)
    cls = evaluator.state.output["pred_cls"]
    return {
        "image_size": list(hw),
        "scales": list(inferer.scales),
        "views": len(inferer.scales) * len(inferer.views),
        "images_per_s": runs / seconds,
        "peak_mb": _peak_mb(device),
        "class_prob_sum": float(cls.sum(1).mean()),
    }


def real_run(root: Path, files_train: list[Path], files_eval: list[Path], device: torch.device, work: Path,
             unlabeled_dir: str | None) -> dict:
    """Short training through the bundle's ``training`` workflow, then TTA evaluation on its validation split."""
    out: dict[str, Any] = {"root": str(root)}
    train_dir = work / "train"
    overrides: dict[str, Any] = {
        "bundle_root": str(BUNDLE), "dataset_dir": str(root), "output_dir": str(train_dir),
        "ckpt_dir": str(train_dir / "models"), "device": f"$torch.device('{device}')",
    }
    if unlabeled_dir:
        overrides["unlabeled_dir"] = unlabeled_dir
    _reset_peak(device)
    t0 = time.perf_counter()
    wf = ConfigWorkflow(config_file=[str(f) for f in files_train], meta_file=META, logging_file=LOGGING,
                        workflow_type="train", run_id="training", **overrides)
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    validator = wf.parser.get_parsed_content("validate#evaluator")
    marks: dict[str, float] = {"validation_s": 0.0}
    trainer.add_event_handler(Events.STARTED, lambda _: marks.setdefault("loop_start", time.perf_counter()))
    validator.add_event_handler(Events.STARTED, lambda _: marks.__setitem__("val_start", time.perf_counter()))
    validator.add_event_handler(
        Events.COMPLETED, lambda _: marks.__setitem__("validation_s", marks["validation_s"] + time.perf_counter()
                                                      - marks["val_start"]))
    wf.run()
    _sync(device)
    t1 = time.perf_counter()
    lists = wf.parser.get_parsed_content("datalists")
    cfg = {k: wf.parser.get_parsed_content(k) for k in ("image_size", "amp", "learning_rate")}
    wf.finalize()
    loop_s = t1 - marks["loop_start"]
    iterations, last_loss = int(trainer.state.iteration), float(trainer.state.output["loss"])
    train_peak = _peak_mb(device)
    del wf, trainer, validator  # free the training network and optimizer before the evaluation's peak
    best_path = train_dir / "models" / "model.json"
    best = json.loads(best_path.read_text()) if best_path.is_file() else {}
    out["training"] = {
        "images": {k: len(v) for k, v in lists.items()},
        "image_size": int(cfg["image_size"]),
        "iterations": iterations,
        "amp": resolve_amp(cfg["amp"], device),
        "learning_rate": float(cfg["learning_rate"]),
        "wall_s": t1 - t0,
        "setup_s": marks["loop_start"] - t0,
        "loop_s": loop_s,
        "validation_s": marks["validation_s"],
        "it_per_s": iterations / max(loop_s - marks["validation_s"], 1e-9),
        "best_val_metric": best.get("metric"),
        "best_val_value": best.get("value"),
        "last_loss": last_loss,
        "peak_mb": train_peak,
        "output_dir": str(train_dir),
    }
    # evaluate the training run's own validation split (for a root with only a training set, the held-out
    # val_fraction), written as a datalist JSON so evaluate.yaml reads exactly those items
    datalist = work / "eval_datalist.json"
    datalist.write_text(json.dumps({"val": lists["val"]}, indent=1))
    ckpt = train_dir / "models" / "model.pt"
    if not ckpt.is_file():  # no finite validation score was reached: use the last weights
        ckpt = train_dir / "latest.pt"
    eval_dir = work / "eval"
    _reset_peak(device)
    t0 = time.perf_counter()
    wf = ConfigWorkflow(config_file=[str(f) for f in files_eval], meta_file=META, logging_file=LOGGING,
                        workflow_type=None, run_id="evaluating", bundle_root=str(BUNDLE), dataset_dir=str(datalist),
                        eval_split="val", checkpoint=str(ckpt), output_dir=str(eval_dir), max_items=None,
                        device=f"$torch.device('{device}')")
    wf.initialize()
    inferer = wf.parser.get_parsed_content("inferer")
    wf.run()
    wf.finalize()
    _sync(device)
    eval_s = time.perf_counter() - t0
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    seg = metrics.get("segmentation", {})
    scores = metrics.get("classification", {}).get("scores", {})
    out["evaluation"] = {
        "checkpoint": str(ckpt),
        "images": seg.get("count"),
        "views": len(inferer.scales) * len(inferer.views),
        "scales": list(inferer.scales),
        "wall_s": eval_s,
        "peak_mb": _peak_mb(device),
        **{k: seg.get("mean", {}).get(k) for k in ("JA", "DI", "AC")},
        **{k: scores.get(k) for k in ("M_AUC", "K_AUC")},
        "report": str(eval_dir / "metrics.md"),
    }
    return out


def _mb(v: float | None) -> str:
    return "n/a (CPU)" if v is None else f"{v:.0f} MB"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def format_report(r: dict) -> str:
    """The printed report (every figure of the JSON, one labelled line each)."""
    env = r["environment"]
    cuda = f" (CUDA {env['cuda']}, cuDNN {env['cudnn']})" if "cuda" in env else ""
    lines = [
        "=== MT-TransUNet GPU report ==="
        + (" (TINY CPU smoke mode: scaled-down network, not a benchmark)" if r["tiny"] else ""),
        f"device       : {env['device_name']} ({env['device']})"
        + (f", {env['device_memory_mb']} MB" if "device_memory_mb" in env else ""),
        (
            f"software     : torch {env['torch']}{cuda}, monai {env['monai']}, monai_mtt {env['monai_mtt']}, "
            f"python {env['python']}, {env['cpu_threads']} CPU threads"
        ),
    ]
    if "train_speed" in r:
        any_run = next(iter(r["train_speed"].values()))
        lines.append(
            f"training speed ({any_run['images']} images of {any_run['size']}x{any_run['size']} per iteration, "
            f"{r['timing']['iterations']} timed iterations after {r['timing']['warmup']} warm-up):"
        )
        for name, v in r["train_speed"].items():
            how = v["compute_dtype"] + (" + GradScaler" if v["grad_scaler"] else "")
            lines.append(f"  {name:13s}: {v['it_per_s']:8.3f} it/s   {how:20s} peak GPU memory {_mb(v['peak_mb'])}"
                         f"   last loss {v['last_loss']:.4f}")
        for precision in ("fp32", "amp"):
            if f"authors {precision}" in r["train_speed"] and not r["tiny"]:  # tiny: ours is scaled down
                speeds = r["train_speed"]
                ratio = speeds[f"ours {precision}"]["it_per_s"] / speeds[f"authors {precision}"]["it_per_s"]
                lines.append(f"  ratio ours / authors ({precision}, it/s): {ratio:.3f}")
    if "tta_speed" in r:
        v0 = next(iter(r["tta_speed"].values()))
        h, w = v0["image_size"]
        lines.append(f"TTA inference ({v0['views']} views: scales {'/'.join(map(str, v0['scales']))} x "
                     f"{v0['views'] // len(v0['scales'])} views, one {h}x{w} image per call, "
                     f"{r['timing']['tta_runs']} timed calls):")
        for name, v in r["tta_speed"].items():
            lines.append(f"  {name:13s}: {v['images_per_s']:8.3f} images/s   peak GPU memory {_mb(v['peak_mb'])}")
    if "real_run" in r:
        t, e = r["real_run"]["training"], r["real_run"]["evaluation"]
        counts = ", ".join(f"{k} {n}" for k, n in t["images"].items())
        lines += [
            f"real run on {r['real_run']['root']} ({counts} images)",
            (
                f"  training   : {t['iterations']} iterations at {t['image_size']} px, "
                f"AMP {'on' if t['amp'] else 'off'}, lr {t['learning_rate']:g}; wall {t['wall_s']:.1f} s "
                f"(setup {t['setup_s']:.1f} s, loop {t['loop_s']:.1f} s incl. validation {t['validation_s']:.1f} s; "
                f"{t['it_per_s']:.2f} it/s); peak GPU memory {_mb(t['peak_mb'])}"
            ),
            f"  best val   : {t['best_val_metric']} {_num(t['best_val_value'])}   last loss {t['last_loss']:.4f}",
            (
                f"  evaluation : {e['images']} images, TTA {e['views']} views "
                f"(scales {'/'.join(map(str, e['scales']))}) at the original size; wall {e['wall_s']:.1f} s; "
                f"peak GPU memory {_mb(e['peak_mb'])}"
            ),
            (
                f"  metrics    : JA {_num(e['JA'])}  DI {_num(e['DI'])}  AC {_num(e['AC'])}  "
                f"M_AUC {_num(e['M_AUC'])}  K_AUC {_num(e['K_AUC'])}"
            ),
            f"  files      : {t['output_dir']}, {e['report']}",
        ]
    lines.append(f"peak resident memory of this process: {r['peak_rss_mb']:.0f} MB")
    lines.append(f"total wall time: {r['total_wall_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isic-root", default=None, help="ISIC 2017 root (official layout) for the short real run")
    p.add_argument("--unlabeled-dir", default=None, help="optional classification-only set for the real run")
    p.add_argument("--authors-repo", default=None, help="checkout of JingyeChen/MT-TransUNet to time beside ours")
    p.add_argument("--out", default=None, help="also write the report as JSON here")
    p.add_argument("--work-dir", default=None, help="new or empty folder for the real run's files (default: a new "
                   "temporary folder, kept)")
    p.add_argument("--config", action="append", default=[], help="extra override YAML merged on top (repeatable)")
    p.add_argument("--device", default=None, help="default: cuda:0 when available, else cpu")
    p.add_argument("--tiny", action="store_true", help="CPU smoke mode: small network, 2 iterations, tiny images")
    p.add_argument("--iterations", type=int, default=None, help="timed training iterations (default 10; tiny 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up iterations/calls (default 3; tiny 1)")
    p.add_argument("--tta-runs", type=int, default=None, help="timed TTA calls (default 10; tiny 2)")
    p.add_argument("--tta-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="TTA image size (default 767 1022; tiny 60 80)")
    p.add_argument("--skip-speed", action="store_true", help="only the real run")
    args = p.parse_args(argv)

    iterations = args.iterations or (2 if args.tiny else 10)
    warmup = args.warmup or (1 if args.tiny else 3)
    tta_runs = args.tta_runs or (2 if args.tiny else 10)
    tta_size = tuple(args.tta_size or ((60, 80) if args.tiny else (767, 1022)))
    device = torch.device(args.device or ("cuda:0" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    extra = [Path(f) for f in args.config]
    for f in extra:
        if not f.is_file():
            p.error(f"--config {f}: no such file")
    extra = [REPORT_CONFIG] + ([TINY_CONFIG] if args.tiny else []) + extra
    root = None
    if args.isic_root:  # checked before the minutes of speed runs
        root = find_isic2017_root(args.isic_root)
        if root is None:
            p.error(f"--isic-root {args.isic_root}: no ISIC 2017 layout there (ISIC-2017_Training_Data/ with "
                    "ISIC-2017_Training_Part1_GroundTruth/ and ISIC-2017_Training_Part3_GroundTruth.csv)")
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="mtt_gpu_report_"))
    if work.exists() and any(work.iterdir()):
        p.error(f"--work-dir {work} is not empty: give a new or empty folder (nothing there is replaced)")
    work.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    report: dict[str, Any] = {"environment": environment(device), "tiny": args.tiny,
                              "timing": {"iterations": iterations, "warmup": warmup, "tta_runs": tta_runs}}
    print(f"device {report['environment']['device_name']} ({device}); work dir {work}", flush=True)
    eval_files = [CONFIGS / "inference.yaml", CONFIGS / "evaluate.yaml", *extra]  # evaluate overrides inference
    if not args.skip_speed:
        train_files = [CONFIGS / "train.yaml", *extra]
        speed: dict[str, dict] = {}
        for amp in (False, True):
            name = f"ours {'amp' if amp else 'fp32'}"
            speed[name] = ours_train_speed(train_files, device, amp, iterations, warmup)
            print(f"{name}: {speed[name]['it_per_s']:.3f} it/s", flush=True)
        if args.authors_repo:
            size = speed["ours fp32"]["size"]
            for amp in (False, True):
                name = f"authors {'amp' if amp else 'fp32'}"
                speed[name] = authors_train_speed(args.authors_repo, size, device, amp, iterations, warmup)
                print(f"{name}: {speed[name]['it_per_s']:.3f} it/s", flush=True)
        report["train_speed"] = speed
        report["tta_speed"] = {}
        for amp in (False, True):
            name = f"ours {'amp' if amp else 'fp32'}"
            report["tta_speed"][name] = tta_speed(eval_files, device, amp, tta_size, tta_runs, warmup, work)
            print(f"TTA {name}: {report['tta_speed'][name]['images_per_s']:.3f} images/s", flush=True)
    if root is not None:
        report["real_run"] = real_run(root, [CONFIGS / "train.yaml", *extra], eval_files,
                                      device, work, args.unlabeled_dir)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["total_wall_s"] = time.perf_counter() - start
    print(format_report(report), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
