"""The ``monai-mtt`` command line: ``monai-mtt score ...``, ``monai-mtt prepare ...``, ``monai-mtt bundle init DIR``,
``monai-mtt quantize ...``.

Each sub-command lives beside the concept it belongs to and exposes ``register(subparsers)``;
this module only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# (module, attribute) pairs; each ``register`` adds one sub-command and sets ``func``.
_COMMANDS = (
    ("monai_mtt.metrics.scoring", "register"),
    ("monai_mtt.data.prepare", "register"),
    ("monai_mtt.bundle", "register"),
    ("monai_mtt.networks.quantize", "register"),
)


def check_out_path(
    out: str | os.PathLike,
    inputs: Sequence[str | os.PathLike | None] = (),
    data_dirs: Sequence[str | os.PathLike | None] = (),
    create_parents: bool = False,
) -> str | None:
    """Why an ``--out`` file may not be written, or None when it may.

    Refused: one of the ``inputs`` (also through a link), a path inside one of the ``data_dirs``, a
    folder, a path under a file, or one whose folder does not exist. (Whether an existing file may be
    replaced is the caller's ``--overwrite`` rule.)

    Args:
        out: the output file.
        inputs: the files the command reads.
        data_dirs: the data folders the command reads (an output there could replace a data file).
        create_parents: the caller creates missing folders (then the nearest existing one is checked).
    """
    out = Path(out)
    real = out.resolve()
    for src in inputs:
        if src is not None and Path(src).exists() and real == Path(src).resolve():
            return f"--out {out} is one of the inputs ({src}); write the result to another file."
    for folder in data_dirs:
        if folder is not None and Path(folder).is_dir() and Path(folder).resolve() in real.parents:
            return f"--out {out} is inside the data folder {folder}; write the result outside it."
    if out.is_dir():
        return f"--out {out} is a folder; give a file name inside it, such as {out / 'result.json'}."
    parent = out.parent if str(out.parent) else Path(".")
    for p in [parent, *parent.parents]:
        if p.exists() and not p.is_dir():
            return f"--out {out}: {p} is a file, not a folder; choose another path."
    if not parent.is_dir() and not create_parents:
        return f"--out {out}: folder {parent} does not exist (it is not created for you)."
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        return f"--out {out}: folder {parent} is not writable; choose another folder."
    if out.exists() and not os.access(out, os.W_OK):
        return f"--out {out} is read-only; choose another file."
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monai-mtt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name, attr in _COMMANDS:
        getattr(importlib.import_module(module_name), attr)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
