"""Batch-1 224x224 CPU forward latency of MTTransUNet, parameters and achieved GFLOP/s.

    python benchmarks/bench_network.py [--authors-repo PATH_TO_MT-TransUNet_CHECKOUT] [--runs 10]

Ours: each inference backend as ``monai_mtt.networks.backends.build_backend`` builds it (``eager``,
``fused`` -- the default, ``auto`` -- and, with onnx + onnxruntime installed, ``onnxruntime``) and the ONNX
file that ``python -m monai_mtt.networks.onnx`` writes, run by ONNX Runtime (same weights; the largest
difference of each from eager is printed). GFLOP/s count the eager network's operations. With
``--authors-repo`` the authors' released network is timed in the same process, alternating, and the ratio
ours / theirs is printed.
"""

from __future__ import annotations

import argparse

import torch

from _common import authors_model, flops_of, median_time
from monai_mtt.networks import MTTransUNet
from monai_mtt.networks.backends import build_backend, onnxruntime_available, resolve_backend


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", default=None)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(1, 3, args.size, args.size)
    net = MTTransUNet().eval()
    params = sum(q.numel() for q in net.parameters())
    print(f"threads: {torch.get_num_threads()}  input: 1x3x{args.size}x{args.size}  parameters: {params:,}")
    rows = {}
    with torch.inference_mode():
        flops = flops_of(lambda: net(x))
        ref = net(x)
        theirs = authors_model(args.authors_repo, args.size)
        default = resolve_backend("auto", "cpu")
        candidates = {}
        for name in ("eager", "fused", "onnxruntime"):
            if name == "onnxruntime" and not onnxruntime_available():
                print("(onnxruntime backend skipped: pip install 'monai_mtt[onnx]')")
                continue
            backend = build_backend(net, name)
            out = backend.outputs(x) if name != "eager" else ref
            err = max((ref[k] - out[k]).abs().max().item() for k in ref)
            label = f"ours {name}" + (" (default: auto)" if name == default else "")
            print(f"{label}: max |outputs - eager outputs| {err:.1e}")
            candidates[label] = lambda b=backend: b.outputs(x)
        try:
            import tempfile

            from monai_mtt.networks.onnx import OnnxRuntimeNetwork, export_onnx

            path = export_onnx(net, tempfile.mkdtemp() + "/mtt.onnx", image_size=args.size, exporter="legacy")
            ort_net = OnnxRuntimeNetwork(path)
            seg, cls = ort_net(x)
            err_ort = max(
                (seg - ref["seg"].softmax(1)).abs().max().item(), (cls - ref["cls"].softmax(1)).abs().max().item()
            )
            print(f"ours ONNX file: max |probabilities - eager probabilities| {err_ort:.1e}")
            candidates["ours ONNX file (ONNX Runtime)"] = lambda: ort_net(x)
        except ImportError as e:
            print(f"(ONNX file path skipped: {e})")
        if theirs is not None:
            candidates["authors' code"] = lambda: theirs(x)
        # interleave the candidates so machine load affects all alike
        for _ in range(2):
            for name, fn in candidates.items():
                rows.setdefault(name, []).append(median_time(fn, runs=max(1, args.runs // 2), warmup=1))
    print(f"forward FLOPs (eager network): {flops / 1e9:.1f} G")
    med = {}
    for name, res in rows.items():
        m = min(r[0] for r in res)
        med[name] = m
        print(f"{name:34s} median {m * 1e3:7.1f} ms   {flops / m / 1e9:6.1f} GFLOP/s")
    ref_name = "authors' code"
    if ref_name in med:
        for name in med:
            if name.startswith("ours"):
                print(f"ratio {name} / authors': {med[name] / med[ref_name]:.3f}")


if __name__ == "__main__":
    main()
