"""Seconds per 4+4 training iteration at 224x224 on CPU, and peak memory.

    python benchmarks/bench_train.py [--authors-repo PATH] [--iterations 5] [--size 224]

Ours: one :class:`~monai_mtt.engines.SemiSupervisedTrainer` iteration (labeled + unlabeled batch in
one concatenated forward, every loss term, ARC attention on, Adam step). With ``--authors-repo``,
the authors' network does a forward/backward/Adam step on the same 8 images with comparable losses
(cross-entropy on the mask and class, MSE on the level set, the DTC term; with ``--amp`` under the same
mixed precision) — their data pipeline and per-step level-set recomputation are not included, so the
comparison favours them. On a CUDA machine, ``benchmarks/gpu_report.py`` reports both with and without AMP.
"""

from __future__ import annotations

import argparse
import resource

import torch

from _common import AuthorsTrainStep, authors_model, median_time, synthetic_batch
from monai_mtt.engines import SemiSupervisedTrainer
from monai_mtt.losses import MTTLoss
from monai_mtt.networks import MTTransUNet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", default=None)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA float16 / CPU bfloat16)")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = MTTransUNet().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-5)
    batch = {"labeled": synthetic_batch(4, args.size, True), "unlabeled": synthetic_batch(4, args.size, False)}
    trainer = SemiSupervisedTrainer(
        device=device, max_epochs=10_000, train_data_loader=[batch["labeled"]],
        unlabeled_data_loader=[batch["unlabeled"]], network=net, optimizer=opt,
        loss_function=MTTLoss(), return_attention=True, amp=args.amp,
    )
    trainer.state.iteration, trainer.state.epoch = 0, 0
    trainer.state.device = torch.device(device)

    def step():
        trainer._iteration(trainer, batch)
        if device == "cuda":
            torch.cuda.synchronize()

    ours = median_time(step, runs=args.iterations, warmup=1)[0]
    print(f"device {device}  threads {torch.get_num_threads()}  input 4+4 x 3x{args.size}x{args.size}")
    print(f"ours: {ours:.2f} s / iteration ({1 / ours:.2f} it/s)")
    theirs = authors_model(args.authors_repo, args.size)
    if theirs is not None:
        their_step = AuthorsTrainStep(theirs.to(device), batch["labeled"], batch["unlabeled"], amp=args.amp)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        t = median_time(lambda: (their_step(), sync()), runs=args.iterations, warmup=1)[0]
        print(f"authors' network: {t:.2f} s / iteration   ratio ours / authors: {ours / t:.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MB")
    if device == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
