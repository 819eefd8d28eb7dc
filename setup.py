"""Build hook only (the project is declared in pyproject.toml): ship the MONAI bundle inside the package.

The repository's ``bundle/`` (configs, docs, licence; never models or run outputs) is copied into the built
package as ``monai_mtt/_bundle`` so that a wheel installed outside a checkout carries it
(``monai-mtt bundle init DIR``; see ``monai_mtt/bundle.py``). The source tree keeps one copy: ``bundle/``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLE = Path(__file__).resolve().parent / "bundle"
PARTS = ("configs", "docs", "LICENSE")


class BuildPyWithBundle(build_py):
    def run(self):
        super().run()
        missing = [p for p in PARTS if not (BUNDLE / p).exists()]
        if missing:
            raise FileNotFoundError(f"{BUNDLE} lacks {missing}: the wheel would ship an incomplete bundle")
        dest = Path(self.build_lib) / "monai_mtt" / "_bundle"
        if dest.exists():
            shutil.rmtree(dest)
        for part in PARTS:
            src = BUNDLE / part
            if src.is_dir():
                shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest / part)


setup(cmdclass={"build_py": BuildPyWithBundle})
