"""The MONAI bundle that ships with the package, and ``monai-mtt bundle init DIR`` to write a ready bundle folder.

A wheel carries the repository's ``bundle/`` (``configs/``, ``docs/``, ``LICENSE``) as ``monai_mtt/_bundle``
(``setup.py`` copies it at build time); a git checkout or an editable install uses the repository's
``bundle/`` itself. After ``pip install monai-mtt``::

    monai-mtt bundle init my_bundle
    cd my_bundle
    python -m monai.bundle run training --meta_file configs/metadata.json \\
        --config_file "['configs/train.yaml','configs/demo_cpu.yaml']"
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

__all__ = ["BUNDLE_PARTS", "bundle_source", "default_bundle", "init_bundle", "register"]

BUNDLE_PARTS = ("configs", "docs", "LICENSE")  # what a bundle folder is made of (models/ starts empty)
_PACKAGED = Path(__file__).resolve().parent / "_bundle"
_REPOSITORY = Path(__file__).resolve().parents[1] / "bundle"


def bundle_source() -> Path:
    """The bundle folder this installation carries: the wheel's copy, else the repository's ``bundle/``.

    Raises:
        FileNotFoundError: neither holds ``configs/metadata.json`` (a broken installation).
    """
    for candidate in (_PACKAGED, _REPOSITORY):
        if (candidate / "configs" / "metadata.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no bundle found in {_PACKAGED} (a wheel) or {_REPOSITORY} (a checkout): reinstall monai-mtt"
    )


def default_bundle() -> Path:
    """The bundle the apps use when none is named: ``$MONAI_MTT_BUNDLE`` if set, else :func:`bundle_source`."""
    env = os.environ.get("MONAI_MTT_BUNDLE")
    return Path(env) if env else bundle_source()


def init_bundle(dest: str | Path) -> Path:
    """Write a ready bundle folder: ``configs/``, ``docs/``, ``LICENSE`` and an empty ``models/``.

    Args:
        dest: the folder to create; it may exist but must not already hold any of the bundle's files.

    Returns:
        The bundle folder (absolute).

    Raises:
        FileExistsError: ``dest`` already holds a bundle file (nothing is overwritten), or is a file.
    """
    src = bundle_source()
    dest = Path(dest).absolute()
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} is a file: give a folder for the bundle")
    planned = []
    for part in BUNDLE_PARTS:
        path = src / part
        if path.is_file():
            files = [path]
        else:
            files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        planned += [(f, dest / f.relative_to(src)) for f in files]
    clashes = [str(target) for _, target in planned if target.exists()]
    if clashes:
        raise FileExistsError(
            f"{dest} already holds bundle files ({len(clashes)}, e.g. {clashes[0]}); nothing was written: "
            "choose a new folder or move those files away"
        )
    for source, target in planned:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (dest / "models").mkdir(exist_ok=True)
    return dest


def _init_command(args: argparse.Namespace) -> int:
    try:
        dest = init_bundle(args.dir)
    except (FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"bundle written to {dest} (from {bundle_source()})")
    print(f"train:    cd {dest} && python -m monai.bundle run training --meta_file configs/metadata.json "
          "--config_file \"['configs/train.yaml','configs/demo_cpu.yaml']\"")  # fmt: skip
    print(f"evaluate: cd {dest} && python -m monai.bundle run evaluating --meta_file configs/metadata.json "
          "--config_file \"['configs/inference.yaml','configs/evaluate.yaml']\"")  # fmt: skip
    return 0


def register(subparsers) -> None:
    """``monai-mtt bundle init DIR``."""
    p = subparsers.add_parser("bundle", help="the MONAI bundle shipped with the package")
    sub = p.add_subparsers(dest="bundle_command", required=True)
    init = sub.add_parser("init", help="write a ready bundle folder (configs, docs, licence, empty models/)")
    init.add_argument("dir", type=Path, help="folder to create (must not already hold bundle files)")
    init.set_defaults(func=_init_command)
