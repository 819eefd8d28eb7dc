"""`monai-mtt bundle init DIR`: a ready bundle folder from the bundle the installation carries; nothing overwritten."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from conftest import REPO
from monai_mtt.bundle import bundle_source, init_bundle
from monai_mtt.cli import main


def test_source_is_the_checkout_bundle():
    # in a checkout (and an editable install) the repository's bundle/; a wheel carries monai_mtt/_bundle
    assert bundle_source() == REPO / "bundle"


def test_init_copies_configs_docs_licence(tmp_path):
    dest = init_bundle(tmp_path / "b")
    src = bundle_source()
    for rel in ("configs/metadata.json", "configs/train.yaml", "configs/ablations/table2_layers4.yaml",
                "docs/README.md", "docs/data_license.txt", "LICENSE"):  # fmt: skip
        assert filecmp.cmp(src / rel, dest / rel, shallow=False), rel
    n_src = sum(1 for p in (src / "configs").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert sum(1 for p in (dest / "configs").rglob("*") if p.is_file()) == n_src
    assert (dest / "models").is_dir() and not any((dest / "models").iterdir())  # never the checkout's weights


def test_init_never_overwrites(tmp_path, capsys):
    dest = tmp_path / "b"
    (dest / "configs").mkdir(parents=True)
    (dest / "configs" / "train.yaml").write_text("mine\n")
    (dest / "notes.txt").write_text("also mine\n")
    with pytest.raises(FileExistsError, match="already holds bundle files"):
        init_bundle(dest)
    assert (dest / "configs" / "train.yaml").read_text() == "mine\n"
    assert sorted(p.name for p in (dest / "configs").iterdir()) == ["train.yaml"]  # nothing else written
    assert main(["bundle", "init", str(dest)]) == 1 and "nothing was written" in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        init_bundle(tmp_path / "file")


def test_init_into_an_existing_folder_of_other_files(tmp_path, capsys):
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    assert main(["bundle", "init", str(dest)]) == 0
    assert str(dest) in capsys.readouterr().out
    assert (dest / "notes.txt").read_text() == "mine\n" and (dest / "configs" / "metadata.json").is_file()


def test_apps_find_the_installed_bundle(tmp_path, monkeypatch):
    """The rule the Label and Deploy apps (their own envs) and the ablation runner use: $MONAI_MTT_BUNDLE, else
    the installed bundle; the runner prefers ./bundle, then the installed one."""
    from monai_mtt.apps.ablation import find_bundle
    from monai_mtt.bundle import bundle_source, default_bundle

    monkeypatch.chdir(tmp_path)  # no ./bundle here
    monkeypatch.delenv("MONAI_MTT_BUNDLE", raising=False)
    src = bundle_source()
    assert (src / "configs" / "train.yaml").is_file()
    assert default_bundle() == src
    assert find_bundle() == src.resolve()
    monkeypatch.setenv("MONAI_MTT_BUNDLE", str(tmp_path / "mine"))
    assert default_bundle() == tmp_path / "mine"
    with pytest.raises(FileNotFoundError, match="configs/train.yaml"):
        find_bundle(tmp_path / "nothing")
