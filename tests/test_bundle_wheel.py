"""The bundle outside a checkout: wheel -> fresh venv -> `monai-mtt bundle init` in an empty folder -> train, evaluate.

Builds the wheel from a copy of the sources (so nothing is written into the repository), installs it with its
dependencies into a new virtual environment without system site-packages (torch==2.13.0 first, as the README
says), and runs the bundle's training and evaluation workflows for a few iterations from an empty folder,
with the `python -m monai.bundle` command line a user types. Slow: 4.5 minutes on a 2-core machine shared with
other jobs (2 minutes of it pip, 2 the workflows; 1 min 54 s of CPU time); needs the package index or pip's cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import SMALL_NET

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# a scaled-down network through the bundle's own override mechanism (the configs are the shipped ones)
NET_ARGS = [
    arg
    for k, v in SMALL_NET.items()
    if k != "num_layers"
    for arg in (f"--network_def#{k}", json.dumps(list(v) if isinstance(v, tuple) else v))
] + ["--num_layers", str(SMALL_NET["num_layers"])]


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int = 600) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "models", "runs", "eval", "predictions")
    shutil.copytree(REPO / "monai_mtt", src / "monai_mtt", ignore=ignore)
    shutil.copytree(REPO / "bundle", src / "bundle", ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    dist = root / "dist"
    # with this interpreter's setuptools when it has one (no download), else in pip's isolated build env
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(dist), str(src)], root, env)
    (wheel,) = dist.glob("monai_mtt-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], root, env)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]  # no .pyc: faster
    _run([*pip, "torch==2.13.0"], root, env, timeout=900)
    _run([*pip, str(wheel)], root, env, timeout=900)
    return {"root": root, "wheel": wheel, "python": py, "bin": venv / "bin", "env": env}


def test_wheel_ships_the_bundle(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for rel in ("configs/metadata.json", "configs/train.yaml", "configs/evaluate.yaml", "configs/inference.yaml",
                "configs/logging.conf", "docs/README.md", "docs/data_license.txt", "LICENSE"):  # fmt: skip
        assert f"monai_mtt/_bundle/{rel}" in names, rel
    assert not any(n.startswith("monai_mtt/_bundle/models/") for n in names)
    # the same bytes as the repository's bundle
    with zipfile.ZipFile(installed["wheel"]) as z:
        assert z.read("monai_mtt/_bundle/configs/train.yaml") == (REPO / "bundle/configs/train.yaml").read_bytes()


def test_init_train_evaluate_from_an_empty_folder(installed):
    env, py = installed["env"], str(installed["python"])
    work = installed["root"] / "empty"
    work.mkdir()
    where = _run([py, "-c", "import monai_mtt; print(monai_mtt.__file__)"], work, env).strip()
    assert Path(where).is_relative_to(installed["bin"].parent) and not Path(where).is_relative_to(REPO), where

    out = _run([str(installed["bin"] / "monai-mtt"), "bundle", "init", "my_bundle"], work, env)
    bundle = work / "my_bundle"
    assert str(bundle) in out
    assert (bundle / "configs" / "metadata.json").read_bytes() == (REPO / "bundle/configs/metadata.json").read_bytes()
    assert (bundle / "docs" / "data_license.txt").is_file() and (bundle / "LICENSE").is_file()
    assert (bundle / "models").is_dir() and not any((bundle / "models").iterdir())
    # a second init into the same folder refuses and leaves the files alone
    (bundle / "configs" / "train.yaml").write_text("# edited by the user\n")
    res = subprocess.run([str(installed["bin"] / "monai-mtt"), "bundle", "init", "my_bundle"], cwd=work, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 1 and "already holds bundle files" in res.stdout
    assert (bundle / "configs" / "train.yaml").read_text() == "# edited by the user\n"
    shutil.copyfile(REPO / "bundle/configs/train.yaml", bundle / "configs" / "train.yaml")

    # train on the embedded ISIC-2017 sample from inside the bundle folder, as the bundle's README says
    common = ["--meta_file", "configs/metadata.json", "--logging_file", "configs/logging.conf", *NET_ARGS,
              "--image_size", "32", "--num_workers", "0", "--max_items", "4"]  # fmt: skip
    train_configs = "['configs/train.yaml','configs/demo_cpu.yaml']"
    _run([py, "-m", "monai.bundle", "run", "training", "--config_file", train_configs,
          *common, "--max_iterations", "3", "--val_interval", "3", "--log_interval", "1"], bundle, env)  # fmt: skip
    ckpt = bundle / "models" / "model.pt"
    assert ckpt.is_file(), sorted(p.name for p in (bundle / "models").iterdir())
    # the data came from the sample the installed wheel carries; no synthetic set was generated
    assert not (bundle / "runs" / "synthetic").exists()
    sample = _run([py, "-c", "import monai_mtt.data as d; print(d.isic2017_sample_root())"], work, env).strip()
    assert Path(sample).is_relative_to(installed["bin"].parent), sample
    assert (Path(sample) / "ISIC-2017_Test_v2_Data").is_dir()

    evaluate = "['configs/inference.yaml','configs/evaluate.yaml']"  # evaluate.yaml overrides inference.yaml
    _run([py, "-m", "monai.bundle", "run", "evaluating", "--config_file", evaluate, *common,
          "--scales", "[32]", "--views", "['identity']", "--num_overlays", "0"], bundle, env)  # fmt: skip
    metrics = json.loads((bundle / "eval" / "metrics.json").read_text())
    assert metrics["segmentation"]["count"] == 4 and set(metrics["segmentation"]["mean"]) >= {"JA", "DI", "AC"}
    assert "M_AUC" in metrics["classification"]["scores"]
    # nothing was written outside the empty folder's bundle
    assert sorted(p.name for p in work.iterdir()) == ["my_bundle"]
