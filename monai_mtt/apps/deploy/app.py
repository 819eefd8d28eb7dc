"""MT-TransUNet as a MONAI Deploy application: a folder of dermoscopy images in, masks + class results out.

Run locally (no Docker) in the deploy environment built by ``.ci/setup_deploy_env.sh``::

    .venvs/deploy/bin/python -m monai_mtt.apps.deploy -i IMAGES -o OUT -m MODEL [--bundle DIR] \
        [--scales 224,256,288] [--views identity,hflip,...]

``MODEL`` is a TorchScript ``model.ts`` from ``python -m monai.bundle ckpt_export`` (configs embedded),
a bundle directory, or a checkpoint (then ``--bundle`` names the bundle whose configs to use). Inside
a MAP the SDK's ``HOLOSCAN_INPUT_PATH`` / ``HOLOSCAN_OUTPUT_PATH`` / ``HOLOSCAN_MODEL_PATH`` apply; the
options above also read ``MONAI_MTT_BUNDLE``, ``MONAI_MTT_SCALES`` and ``MONAI_MTT_VIEWS``.

Per readable image ``<id>`` (the file stem): ``<id>_segmentation.png`` (0/255, the image's own size)
and ``<id>.json`` (class probabilities, predicted class, model version); for the run ``summary.csv``
with one row per input file, the unreadable ones marked ``error`` with the reason.

Exit code: 0 when every image was processed, 1 when some files were bad (reported and skipped; the
others were processed), 2 when the run could not start (no model, bad options) or failed. The same
outcome goes to ``status.json`` in the output folder (exit code, bad files, error), because a MAP's
entry script exits 0 whatever the application returns.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

warnings.filterwarnings("ignore", message="Current stack size", category=RuntimeWarning)  # holoscan, harmless here

from monai.deploy.conditions import CountCondition  # noqa: E402
from monai.deploy.core import Application  # noqa: E402

import monai_mtt  # noqa: E402
from monai_mtt.apps.deploy.model_source import ModelSource, resolve_model  # noqa: E402
from monai_mtt.apps.deploy.operators import (  # noqa: E402
    DermoscopyLoaderOperator,
    DermoscopyWriterOperator,
    MTTBundleInferenceOperator,
    scan_inputs,
)
from monai_mtt.apps.deploy.report import RunReport  # noqa: E402
from monai_mtt.utils import parse_list  # noqa: E402

__all__ = ["MTTDeployApp", "main", "EXIT_OK", "EXIT_BAD_FILES", "EXIT_FATAL"]

EXIT_OK, EXIT_BAD_FILES, EXIT_FATAL = 0, 1, 2
SUMMARY_NAME = "summary.csv"
STATUS_NAME = "status.json"

logger = logging.getLogger(__name__)


class MTTDeployApp(Application):
    """loader -> MT-TransUNet bundle inference (mask + classes) -> writer."""

    name = "monai_mtt_deploy"
    description = "MT-TransUNet skin lesion segmentation and classification (nevus, melanoma, seborrheic keratosis)"
    version = monai_mtt.__version__

    def __init__(
        self,
        app_context,
        items: Sequence[dict],
        model: ModelSource,
        report: RunReport,
        scales: Sequence[int] | None = None,
        views: Sequence[str] | None = None,
    ) -> None:
        self.app_context = app_context
        self.items = list(items)
        self.model = model
        self.report = report
        self.scales, self.views = scales, views
        super().__init__([sys.executable, "monai_mtt.apps.deploy"])

    def compose(self):
        loader = DermoscopyLoaderOperator(
            self, CountCondition(self, len(self.items)), items=self.items, report=self.report, name="loader"
        )
        infer = MTTBundleInferenceOperator(
            self,
            app_context=self.app_context,
            model=self.model,
            report=self.report,
            scales=self.scales,
            views=self.views,
            name="mtt_inference",
        )
        writer = DermoscopyWriterOperator(
            self, output_folder=self.app_context.output_path, report=self.report, name="writer"
        )
        self.add_flow(loader, infer, {("image", "image")})
        self.add_flow(infer, writer, {("pred", "pred"), ("class_probabilities", "class_probabilities")})


def _default_bundle() -> str | None:
    from monai_mtt.bundle import default_bundle  # $MONAI_MTT_BUNDLE, the wheel's copy, or a checkout's bundle/

    try:
        return str(default_bundle())
    except FileNotFoundError:
        return None


def parse_own_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """This app's options; everything else (``-i -o -m -w -l``) goes to the SDK's parser."""
    p = argparse.ArgumentParser(
        prog="python -m monai_mtt.apps.deploy",
        description="MT-TransUNet MONAI Deploy app. SDK options: -i INPUT -o OUTPUT -m MODEL [-w WORKDIR] [-l LEVEL].",
        add_help=False,
    )
    p.add_argument("--bundle", default=_default_bundle(), help="bundle directory whose configs to use with -m CKPT")
    p.add_argument("--scales", default=os.environ.get("MONAI_MTT_SCALES"), help="TTA scales, e.g. 224,256,288")
    p.add_argument("--views", default=os.environ.get("MONAI_MTT_VIEWS"), help="TTA views, e.g. identity,hflip")
    p.add_argument("-h", "--help", action="store_true")
    args, rest = p.parse_known_args(list(argv))
    if args.help:
        p.print_help()
        print("\nSDK options:")
        from monai.deploy.core.arg_parser import parse_args

        with contextlib.suppress(SystemExit):
            parse_args(["app", "--help"])
        raise SystemExit(EXIT_OK)
    return args, rest


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, rest = parse_own_args(argv)
    app_context = Application.init_app_context(["monai_mtt.apps.deploy", *rest])
    report = RunReport()
    output = Path(app_context.output_path)
    try:
        model_path = app_context.model_path
        if (
            "model" not in app_context.args
            and "HOLOSCAN_MODEL_PATH" not in os.environ
            and not Path(model_path).exists()
        ):
            model_path = None  # the SDK's default "models" folder is absent: use --bundle's own weights
        model = resolve_model(model_path, own.bundle)
        scales, views = parse_list(own.scales, int) or None, parse_list(own.views) or None
        if not Path(app_context.input_path).exists():
            raise FileNotFoundError(f"input {app_context.input_path} does not exist.")
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        _write_status(report, output, EXIT_FATAL, str(exc))
        return EXIT_FATAL
    output.mkdir(parents=True, exist_ok=True)
    items = scan_inputs(app_context.input_path, report)
    try:
        if items:
            MTTDeployApp(app_context, items, model, report, scales, views).run()
        else:
            logger.warning("no readable images in %s", app_context.input_path)
    except Exception as exc:  # the application itself failed: record it, exit 2 (not Python's 1 = bad files)
        logger.exception("the application failed")
        report.write_summary(output / SUMMARY_NAME)
        _write_status(report, output, EXIT_FATAL, f"{type(exc).__name__}: {exc}")
        print(f"error: the application failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FATAL
    summary = report.write_summary(output / SUMMARY_NAME)
    # an item that neither finished nor was reported (should not happen) counts as bad
    missing = [item for item in items if item["id"] not in report.rows]
    for item in missing:
        report.bad(item["image"], "was not processed (see the log)", item["id"])
    if missing:
        summary = report.write_summary(output / SUMMARY_NAME)
    n_ok, bad = len(report.processed), report.problems
    print(f"processed {n_ok} image(s), {len(bad)} bad file(s); model version {report.model_version}; summary {summary}")
    for r in bad:
        print(f"bad file: {r['file']}: {r['problem']}", file=sys.stderr)
    code = EXIT_BAD_FILES if bad else EXIT_OK
    _write_status(report, output, code)
    return code


def _write_status(report: RunReport, output: Path, exit_code: int, error: str = "") -> None:
    """``status.json`` in the output folder; a folder that cannot be written is reported, never fatal here."""
    try:
        report.write_status(output / STATUS_NAME, exit_code, error)
    except OSError as exc:
        print(f"warning: could not write {output / STATUS_NAME}: {exc}", file=sys.stderr)
