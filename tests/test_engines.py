"""The two-stream semi-supervised trainer, its handlers, LR schedule, checkpoints and resume."""

from __future__ import annotations

import math

import pytest
import torch
from monai.engines.utils import IterationEvents
from monai.handlers import LrScheduleHandler
from torch.utils.data import DataLoader, Dataset

from conftest import SMALL_NET
from monai_mtt.engines import SemiSupervisedTrainer, TwoStreamLoader
from monai_mtt.handlers import ARCHandler, DTCRampHandler, LatestCheckpoint, atomic_save
from monai_mtt.losses import MTTLoss, dtc_rampup
from monai_mtt.networks import MTTransUNet

SIZE = 32


class _Counting(Dataset):
    """Synthetic items that count how often they are read."""

    def __init__(self, n: int, labeled: bool, with_class: bool = True) -> None:
        self.n, self.labeled, self.with_class, self.reads = n, labeled, with_class, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        self.reads += 1
        g = torch.Generator().manual_seed(i + (0 if self.labeled else 1000))
        item = {"image": torch.rand(3, SIZE, SIZE, generator=g)}
        if self.with_class:
            item["class"] = torch.tensor(i % 3)
        if self.labeled:
            mask = torch.zeros(1, SIZE, SIZE)
            mask[:, 8:24, 6 + i % 4 : 20 + i % 4] = 1
            item["label"] = mask
            item["lsf"] = torch.where(mask > 0, -0.5, 0.5)
        return item


def _trainer(lab, unl, max_epochs=1, epoch_length=None, handlers=(), lr=1e-3, seed=0, stream_reduction="batch_mean"):
    torch.manual_seed(seed)
    net = MTTransUNet(**SMALL_NET)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss = MTTLoss(stream_reduction=stream_reduction)
    trainer = SemiSupervisedTrainer(
        device="cpu",
        max_epochs=max_epochs,
        epoch_length=epoch_length,
        train_data_loader=DataLoader(lab, batch_size=4, shuffle=True),
        unlabeled_data_loader=DataLoader(unl, batch_size=4, shuffle=True) if unl is not None else None,
        network=net,
        optimizer=opt,
        loss_function=loss,
        train_handlers=list(handlers),
    )
    return trainer, net, opt, loss


def test_two_stream_loader_cycles_the_shorter_stream():
    two = TwoStreamLoader(list(range(3)), list("abcdefg"))
    got = list(two)
    assert len(two) == 7 and len(got) == 7
    assert [g["labeled"] for g in got] == [0, 1, 2, 0, 1, 2, 0]
    assert [g["unlabeled"] for g in got] == list("abcdefg")
    assert [set(g) for g in TwoStreamLoader([1, 2])] == [{"labeled"}, {"labeled"}]


@pytest.mark.parametrize("stream_reduction", ["batch_mean", "sum"])
def test_iteration_consumes_both_loaders_and_reports_every_term(stream_reduction):
    lab, unl = _Counting(8, True), _Counting(16, False)
    trainer, *_ = _trainer(lab, unl, max_epochs=1, stream_reduction=stream_reduction)
    trainer.return_attention = True
    fired = []
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: fired.append(e.state.iteration))
    trainer.run()
    # one epoch = the longer stream: 16 unlabeled / 4 = 4 iterations; the labeled stream (2 batches) cycles twice
    assert trainer.state.iteration == 4 and fired == [1, 2, 3, 4]
    assert lab.reads == 16 and unl.reads == 16
    out = trainer.state.output
    for key in ("lab_mask", "lab_cls", "lab_lsf", "lab_dtc", "lab_arc", "unl_cls", "unl_dtc", "unl_arc", "loss"):
        assert key in out and math.isfinite(float(out[key])), key
    assert out["lab_mask"] > 0 and out["unl_arc"] > 0
    assert out["pred"].shape == (4, 2, SIZE, SIZE)  # labeled part only
    # 4 + 4 images, all of known class: "batch_mean" (default) averages the class, DTC and ARC terms
    # of the two streams; "sum" adds them
    shared = 0.25 * (out["lab_cls"] + out["unl_cls"]) + out["lab_dtc"] + out["unl_dtc"] + out["lab_arc"] + out["unl_arc"]
    total = out["lab_mask"] + 5 * out["lab_lsf"] + (shared / 2 if stream_reduction == "batch_mean" else shared)
    assert float(out["loss"]) == pytest.approx(total, rel=1e-4)


def test_labeled_only_and_batches_without_class():
    lab = _Counting(8, True, with_class=False)  # MONAI Label datalists carry no class
    trainer, *_ = _trainer(lab, None, max_epochs=1)
    trainer.run()
    assert trainer.state.iteration == 2
    assert trainer.state.output["lab_cls"] == 0.0 and "unl_cls" not in trainer.state.output


def test_dtc_ramp_arc_switch_and_linear_lr_decay():
    lab, unl = _Counting(8, True), _Counting(8, False)
    max_it = 6
    trainer, net, opt, loss = _trainer(lab, unl, max_epochs=3, epoch_length=2)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=max_it)
    seen = []
    trainer.add_event_handler(
        IterationEvents.MODEL_COMPLETED,
        lambda e: seen.append((e.state.iteration, e.state.output["lambda_dtc"], e.state.output["lr"], e.return_attention)),
    )
    for h in (LrScheduleHandler(sched, epoch_level=False, print_lr=False), DTCRampHandler(loss, 4), ARCHandler(loss, 3)):
        h.attach(trainer)
    trainer.run()
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5, 6]
    for it, lam, lr, attn in seen:
        assert lam == pytest.approx(dtc_rampup(it - 1, 4))
        assert lr == pytest.approx(1e-3 * (1 - (it - 1) / max_it))  # lr used at iteration it
        assert attn == (it >= 3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_save({"a": torch.ones(3)}, path)

    def broken(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["a"].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_resume_after_kill_restores_state_and_iteration(tmp_path):
    lab, unl = _Counting(8, True), _Counting(8, False)

    class Kill(Exception):
        pass

    def build():
        trainer, net, opt, loss = _trainer(lab, unl, max_epochs=4, epoch_length=2)
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=8)
        handlers = [
            LrScheduleHandler(sched, epoch_level=False, print_lr=False),
            DTCRampHandler(loss, 5),
            LatestCheckpoint(tmp_path, {"model": net, "optimizer": opt, "lr_scheduler": sched}),
        ]
        for h in handlers:
            h.attach(trainer)
        return trainer, net, opt, sched, loss

    trainer, net, opt, sched, loss = build()

    def kill(engine):
        if engine.state.iteration == 5:  # mid-epoch 3: the last save was after epoch 2 (iteration 4)
            raise Kill()

    snapshot = {}
    trainer.add_event_handler(
        IterationEvents.MODEL_COMPLETED,
        lambda e: snapshot.update({k: v.clone() for k, v in net.state_dict().items()}) if e.state.iteration == 4 else None,
    )
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, kill)
    with pytest.raises(Kill):
        trainer.run()

    trainer2, net2, opt2, sched2, loss2 = build()
    state_at_start = {}

    def check(engine):
        state_at_start["iteration"] = engine.state.iteration
        state_at_start["lr"] = opt2.param_groups[0]["lr"]
        state_at_start["model"] = {k: v.clone() for k, v in net2.state_dict().items()}
        state_at_start["adam_steps"] = max(int(s["step"]) for s in opt2.state.values())

    from ignite.engine import Events

    trainer2.add_event_handler(Events.ITERATION_STARTED(once=5), check)
    trainer2.run()
    assert state_at_start["iteration"] == 5  # continues right after the last save
    assert state_at_start["adam_steps"] == 4
    assert state_at_start["lr"] == pytest.approx(1e-3 * (1 - 4 / 8))
    for k, v in snapshot.items():
        torch.testing.assert_close(state_at_start["model"][k], v, rtol=0, atol=0)
    assert loss2.dtc_ramp == pytest.approx(dtc_rampup(7, 5))  # last iteration run was 8
    assert trainer2.state.iteration == 8


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))],
)
def test_amp_iteration(device):
    """Mixed precision: CUDA float16 with a grad scaler, CPU bfloat16 autocast; losses stay finite and weights move."""
    lab, unl = _Counting(4, True), _Counting(4, False)
    torch.manual_seed(0)
    net = MTTransUNet(**SMALL_NET).to(device)
    before = [p.detach().clone() for p in net.parameters()]
    trainer = SemiSupervisedTrainer(
        device=device, max_epochs=1, train_data_loader=DataLoader(lab, batch_size=4),
        unlabeled_data_loader=DataLoader(unl, batch_size=4), network=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=1e-3), loss_function=MTTLoss(), amp=True,
        return_attention=True,
    )
    trainer.run()
    out = trainer.state.output
    assert all(math.isfinite(float(out[k])) for k in ("loss", "lab_mask", "unl_arc"))
    assert (trainer.scaler is not None) == (device == "cuda")
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, net.parameters()))
