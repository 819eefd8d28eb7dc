"""Batch-1 CPU latency of the forward and of the default 18-view TTA through the bundle's defaults, vs the authors'.

    python benchmarks/bench_inference.py [--authors-repo PATH] [--runs 3] [--skip-memory] [--naive] [--default-only]

The network and the inferer are what ``inference.yaml`` (and so ``evaluate.yaml``) builds: with the
default ``inference_backend: auto`` (printed: the folded network), and forced to each other backend
(``onnxruntime`` where installed, ``eager``); the same random weights throughout. For each: the 224x224
forward and the 3-scale x 6-view TTA of one 767x1022 image (the size of an ISIC image) at the original
resolution, with the attention map, and the largest difference of its outputs from the eager TTA.
With ``--authors-repo``, the authors' network and 18-view TTA (one batch of six views per scale) are
timed in the same loop, alternating (the default and the authors' next to each other, each first in turn), and
the ratios printed (target for the default: TTA <= 0.70x), for the default also round by round (each round's
TTA over the authors' in that round: median and range) and of each side's fastest round. ``--default-only``
times the default and the authors' code only (more rounds in the same time).
``--naive`` adds the per-view loop; the last line is the peak resident memory of one TTA call on a
3000x2000 image, measured in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser

from _common import authors_model, median_time
from monai_mtt.inferers import VIEWS, MultiScaleTTAInferer, apply_view, invert_view
from monai_mtt.networks import MTTransUNetInfer
from monai_mtt.networks.backends import build_backend, onnxruntime_available, resolve_backend

REPO = Path(__file__).resolve().parents[1]

SCALES = (224, 256, 288)


def naive_tta(net, image):
    """One forward per view (what the batched inferer avoids)."""
    h, w = image.shape[-2:]
    acc = 0
    for s in SCALES:
        xs = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        for v in VIEWS:
            out = net.outputs(apply_view(xs, v), False)
            acc = acc + F.interpolate(invert_view(out["seg"].softmax(1), v), size=(h, w), mode="bilinear")
    return acc


def authors_tta(theirs, image):
    """The authors' procedure: resize to each scale, six views in one batch, one forward per scale."""
    outs = []
    for s in SCALES:
        xs = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False)
        batch = torch.cat([apply_view(xs, v) for v in VIEWS])
        mask, *_ = theirs(batch)
        outs.append(F.interpolate(mask, size=(224, 224), mode="bicubic", align_corners=False))
    return outs


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(size: tuple[int, int]) -> None:
    """Run in a fresh process: peak RSS before and after one TTA call on an image of ``size``."""
    net = build_backend(MTTransUNetInfer().eval(), "auto")  # the default backend
    image = torch.rand(1, 3, *size)
    before = _peak_rss_mb()
    with torch.inference_mode():
        MultiScaleTTAInferer()(image, net)
    print(f"{_peak_rss_mb() - before:.0f} {_peak_rss_mb():.0f}")


def bundle_network(checkpoint: str, backend: str | None):
    """``network`` and ``inferer`` exactly as ``inference.yaml`` (and so ``evaluate.yaml``) builds them."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundle" / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(REPO / "bundle"), "checkpoint": checkpoint, "device": "cpu"})
    if backend is not None:
        parser["inference_backend"] = backend
    name = resolve_backend(parser.get_parsed_content("inference_backend"), "cpu")
    return name, parser.get_parsed_content("network"), parser.get_parsed_content("inferer")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", default=None)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--naive", action="store_true", help="also time a per-view loop against the batched TTA")
    p.add_argument(
        "--default-only", action="store_true", help="time the default backend (and the authors') only: more rounds"
    )
    p.add_argument("--memory-probe", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_probe:
        memory_probe(tuple(args.memory_probe))
        return
    torch.manual_seed(0)
    x224 = torch.rand(1, 3, 224, 224)
    image = torch.rand(1, 3, 767, 1022)
    ckpt = os.path.join(tempfile.mkdtemp(), "model.pt")
    torch.save({"model": MTTransUNetInfer().state_dict()}, ckpt)
    paths = {}
    # the default, then each other backend forced (ONNX Runtime where installed; eager is the reference)
    others = [b for b in ("onnxruntime", "fused") if b != resolve_backend("auto", "cpu")]
    if not onnxruntime_available():
        others.remove("onnxruntime")
    for forced in (None, *([] if args.default_only else others), "eager"):  # eager: the reference outputs
        t0 = time.perf_counter()
        name, network, inferer = bundle_network(ckpt, forced)
        label = f"ours {name}" + (" (default: auto)" if forced is None else " (forced)")
        paths[label] = (network, inferer)
        print(f"{label}: built in {time.perf_counter() - t0:.1f} s")
        if forced is None:
            default_label = label
    theirs = authors_model(args.authors_repo)
    eager_net, tta = paths["ours eager (forced)"]
    rows: dict[str, dict[str, list[float]]] = {k: {"forward": [], "tta": []} for k in paths}
    if theirs is not None:
        rows["authors' code"] = {"forward": [], "tta": []}
    with torch.inference_mode():
        ref = tta(image, eager_net)
        for label, (network, inferer) in paths.items():
            out = inferer(image, network)  # warm-up (ONNX Runtime allocates its arena)
            err = max((out[k] - ref[k]).abs().max().item() for k in ref)
            print(f"{label}: max |TTA output - eager TTA output| {err:.1e} (seg, cls, attn)")
        if theirs is not None:
            authors_tta(theirs, image)  # warm-up, like ours
        # alternate the candidates run by run so machine load affects all alike; the default and the authors'
        # code run next to each other, in turns first (ABBA), so that the load's drift within a round cancels
        # in their ratio
        def candidates(label: str) -> tuple:
            if label == "authors' code":
                return theirs, lambda: authors_tta(theirs, image)
            network, inferer = paths[label]
            return (network.outputs if hasattr(network, "outputs") else network), lambda: inferer(image, network)

        timed = [default_label] if args.default_only else list(paths)
        for r in range(args.runs):
            pair = [default_label] + (["authors' code"] if theirs is not None else [])
            order = (pair if r % 2 == 0 else pair[::-1]) + [k for k in timed if k != default_label]
            for label in order:
                fwd, run_tta = candidates(label)
                rows[label]["forward"].append(median_time(lambda f=fwd: f(x224), runs=3, warmup=0)[0])
                rows[label]["tta"].append(median_time(run_tta, runs=1, warmup=0)[0])
        med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in rows.items() if r["tta"]}
        for label, r in med.items():
            print(f"{label:34s} forward 224 {r['forward'] * 1e3:7.1f} ms   18-view TTA (767x1022) {r['tta']:6.2f} s")
        if theirs is not None:
            a = med["authors' code"]
            for label in timed:
                print(
                    f"ratio {label} / authors: forward {med[label]['forward'] / a['forward']:.3f}   "
                    f"TTA {med[label]['tta'] / a['tta']:.3f}"
                )
            print(f"default backend TTA ratio (target <= 0.70): {med[default_label]['tta'] / a['tta']:.3f}")
            # the machine's load drifts between rounds: each round's own ratio shows how far one number can move
            per_round = sorted(o / t for o, t in zip(rows[default_label]["tta"], rows["authors' code"]["tta"]))
            print(
                f"default backend TTA ratio round by round: median {statistics.median(per_round):.3f}, "
                f"{per_round[0]:.3f} to {per_round[-1]:.3f} over {len(per_round)} rounds, "
                f"at most 0.70 in {sum(r <= 0.70 for r in per_round)}"
            )
            # interference only adds time: each side's fastest round is its least disturbed one
            fast, fast_a = min(rows[default_label]["tta"]), min(rows["authors' code"]["tta"])
            print(f"default TTA, fastest rounds: {fast:.2f} s vs the authors' {fast_a:.2f} s, {fast / fast_a:.3f}x")
        if args.naive and "ours eager (forced)" in med:
            naive = median_time(lambda: naive_tta(eager_net, image), runs=args.runs, warmup=1)[0]
            print(
                f"naive per-view loop (eager) TTA {naive:6.2f} s -> batched TTA speed-up "
                f"{naive / med['ours eager (forced)']['tta']:.2f}x"
            )
    if not args.skip_memory:
        res = subprocess.run(
            [sys.executable, __file__, "--memory-probe", "2000", "3000"], capture_output=True, text=True, check=True
        )
        growth, peak = res.stdout.split()
        print(
            f"TTA on a 3000x2000 image: the call adds {growth} MB to the peak resident memory (limit 1500 MB); "
            f"process peak {peak} MB including Python, torch and the network"
        )


if __name__ == "__main__":
    main()
