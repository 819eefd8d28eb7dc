"""The CI entry point and the README's test command stay one command, and it runs the lint and type checks."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    intro = text.index("what `.ci/run` runs")
    block = re.search(r"```bash\n(.*?)\n```", text[intro:], re.S)
    assert block, "README: no ```bash block after the Tests paragraph"
    return block.group(1).strip()


def _ci_command() -> str:
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip()]
    return lines[-1].strip()


def test_ci_runs_the_readme_test_command_verbatim():
    assert _ci_command() == _readme_test_command()


def test_lint_and_type_checks_run_before_the_tests():
    steps = [s.strip() for s in _ci_command().split("&&")]
    pytest_at = next(i for i, s in enumerate(steps) if "-m pytest" in s)
    install_at = max(i for i, s in enumerate(steps) if "pip install" in s and ".[test" in s)
    checks = {
        "ruff check": ".venv/bin/ruff check monai_mtt",
        "ruff format": ".venv/bin/ruff format --check monai_mtt",
        "mypy": ".venv/bin/mypy monai_mtt",
    }
    for name, prefix in checks.items():
        at = [i for i, s in enumerate(steps) if s.startswith(prefix)]
        assert at, f".ci/run lacks {name} ({prefix})"
        assert install_at < at[0] < pytest_at, f"{name} must run after the install and before pytest: {steps}"
    for step in steps:  # every step is one well-formed shell command
        assert shlex.split(step)
