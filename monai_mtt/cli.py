"""The ``monai-mtt`` command line: ``monai-mtt score ...``, ``monai-mtt prepare ...``.

Each sub-command lives beside the concept it belongs to and exposes ``register(subparsers)``;
this module only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module, attribute) pairs; each ``register`` adds one sub-command and sets ``func``.
_COMMANDS = (
    ("monai_mtt.metrics.scoring", "register"),
    ("monai_mtt.data.prepare", "register"),
)


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
