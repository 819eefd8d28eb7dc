"""MONAI Deploy App SDK operators, one per module as the SDK's own operators are; the graph is
``loader -> inference -> writer``:

* :mod:`.loader`: :class:`DermoscopyLoaderOperator` emits one SDK ``Image`` per readable file.
* :mod:`.inference`: :class:`MTTBundleInferenceOperator` runs MT-TransUNet from a bundle
  (:mod:`monai_mtt.apps.bundle_loader`) and emits the lesion mask and the class probabilities.
* :mod:`.writer`: :class:`DermoscopyWriterOperator` writes ``<id>_segmentation.png`` and ``<id>.json``.

Files that cannot be read, or that fail later, are recorded in a shared
:class:`~monai_mtt.apps.deploy.report.RunReport` and skipped; the application writes ``summary.csv`` from it
and sets its exit code. The names below are re-exported so that ``monai_mtt.apps.deploy.operators`` keeps
its earlier public names.
"""

from monai_mtt.apps.deploy.model_source import ModelSource, resolve_model
from monai_mtt.apps.deploy.operators.inference import MTTBundleInferenceOperator
from monai_mtt.apps.deploy.operators.loader import DermoscopyLoaderOperator, load_rgb, scan_inputs
from monai_mtt.apps.deploy.operators.writer import DermoscopyWriterOperator
from monai_mtt.apps.deploy.report import RunReport

__all__ = [
    "DermoscopyLoaderOperator",
    "DermoscopyWriterOperator",
    "MTTBundleInferenceOperator",
    "ModelSource",
    "RunReport",
    "load_rgb",
    "resolve_model",
    "scan_inputs",
]
