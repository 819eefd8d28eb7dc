"""``python -m monai_mtt.apps.monailabel start_server ...``: MONAI Label's command, listening on 127.0.0.1 by default.

MONAI Label's own ``monailabel start_server`` listens on all interfaces (0.0.0.0) unless told
otherwise, with auth off; this entry point runs the same command with ``--host 127.0.0.1`` unless a
``--host`` is given (the app refuses a non-loopback address with auth off unless
``--conf allow_remote true``; see docs/monailabel.md). Needs the MONAI Label environment.
"""

from __future__ import annotations

import sys

DEFAULT_HOST = "127.0.0.1"


def with_default_host(argv: list[str]) -> list[str]:
    """``argv`` with ``--host 127.0.0.1`` added to a ``start_server`` command that names no host."""
    if "start_server" not in argv or any(a in ("--host", "-i") or a.startswith("--host=") for a in argv):
        return list(argv)
    return [*argv, "--host", DEFAULT_HOST]


def main() -> None:
    from monailabel.main import Main

    sys.argv = [sys.argv[0], *with_default_host(sys.argv[1:])]
    Main().run()


if __name__ == "__main__":
    main()
