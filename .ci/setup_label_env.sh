#!/usr/bin/env bash
# Build (or reuse) the optional MONAI Label environment for monai_mtt/apps/monailabel: .venvs/label.
#
#   bash .ci/setup_label_env.sh           # build or reuse; prints the venv's python on the last line
#   bash .ci/setup_label_env.sh --force   # rebuild from scratch
#
# Kept apart from the core venv because `pip install monailabel==0.8.5` (a) pulls torchvision, hence
# torch 2.14.1 as a multi-GB CUDA build, (b) pins numpy < 2 through numpymaxflow / pydicom-seg, and (c)
# pulls sam2, shapely, scikit-learn, pynetdicom, the full itk (1.5 GB) and more that our app never imports.
#
# Lightest install that runs the server, our infer task and our train task (CPU), in this order:
#   1. torch==2.13.0 FIRST (the CPU build; an unpinned torch resolves to a multi-GB CUDA build),
#   2. monailabel==0.8.5 with --no-deps,
#   3. only what the server imports at start-up: fastapi/uvicorn/pydantic stack, datastore and auth bits,
#      the DICOM modules its endpoints import at module level (pydicom<3 for pydicom-seg, which goes in
#      with --no-deps so numpy stays 2.x; dicomweb-client[gcp]==0.59.1, the last release that works
#      with pydicom 2), SimpleITK, and itk-core (monailabel.transform.writer does `import itk`; only
#      itk-core, 450 MB instead of 1.5 GB),
#   4. monai==1.6.1 and monai_mtt's run-time dependencies (tensorboard: the train config logs to it), with
#      onnx + onnxruntime (`--conf model_file model.int8.onnx` needs onnxruntime; a forced `onnxruntime`
#      backend exports the network through onnx),
#      then `pip install --no-deps -e <repo>` (our pyproject's full itk is not needed).
# torchvision is NOT installed: only monailabel.transform.post (Restored, DumpImagePrediction2Dd) and
# monailabel.deepedit import it, i.e. the stock BundleInferTask; our infer task is built on
# BasicInferTask and never imports them. numpymaxflow (scribbles), sam2, shapely, scikit-learn,
# pynetdicom, openslide, lmdb, mlflow and gdown are left out too.
# Python 3.10-3.12 (tested with 3.11; 3.12 relies on setuptools' distutils shim, which is installed).
# Env: MONAI_MTT_LABEL_VENV (default <repo>/.venvs/label), PYTHON (base interpreter, 3.10-3.12),
#      TORCH_PIP_ARGS (extra pip args for the torch step, e.g. an index serving CPU wheels elsewhere).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MONAI_MTT_LABEL_VENV:-$REPO/.venvs/label}"
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

TORCH_VERSION=2.13.0
MONAI_VERSION=1.6.1
LABEL_VERSION=0.8.5
STAMP="torch=$TORCH_VERSION monai=$MONAI_VERSION monailabel=$LABEL_VERSION script=$(sha256sum "$0" | cut -c1-16)"
STAMP_FILE="$VENV/.monai_mtt_label_stamp"

log() { echo "[setup_label_env] $*" >&2; }

smoke_test() {
    # the server app, our tasks, our package from THIS repository, a CPU torch 2.13
    "$VENV/bin/python" - "$REPO" <<'EOF' || return 1
import sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import torch, monai, numpy
import monailabel.app  # the FastAPI app with every endpoint (imports datastore, DICOM and writer modules)
import monailabel.interfaces.utils.app, monailabel.tasks.train.bundle, monailabel.tasks.infer.basic_infer
import monai_mtt, monai_mtt.apps.monailabel.infer_task, monai_mtt.apps.monailabel.train_task
repo = Path(sys.argv[1]).resolve()
pkg = Path(monai_mtt.__file__).resolve()
assert repo in pkg.parents, f"monai_mtt comes from {pkg}, not from {repo}"
assert torch.__version__.startswith("2.13.0"), torch.__version__
import monailabel
print(f"torch {torch.__version__}, monai {monai.__version__}, monailabel {monailabel.__version__}, "
      f"numpy {numpy.__version__}", file=sys.stderr)
EOF
}

if [ "$FORCE" = 0 ] && [ -x "$VENV/bin/python" ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ]; then
    if smoke_test; then
        log "reusing $VENV"
        echo "$VENV/bin/python"
        exit 0
    fi
    log "$VENV exists but does not work: rebuilding"
fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for cand in python3.11 python3.12 python3.10 python3; do
        if command -v "$cand" >/dev/null 2>&1 \
            && "$cand" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null; then
            PY="$cand"; break
        fi
    done
fi
[ -n "$PY" ] || { log "no Python 3.10-3.12 found (set PYTHON); tested with 3.11"; exit 1; }

start=$(date +%s)
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
log "creating $VENV with $("$PY" --version 2>&1)"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --no-input --disable-pip-version-check)

log "1/4 torch==$TORCH_VERSION (CPU build) first"
# shellcheck disable=SC2086
"${PIP[@]}" "torch==$TORCH_VERSION" ${TORCH_PIP_ARGS:-}
"$VENV/bin/python" -c 'import torch, sys; v = torch.__version__
sys.exit(0 if "+cu" not in v else f"got a CUDA torch build {v}: set TORCH_PIP_ARGS to an index with CPU wheels")'

log "2/4 monailabel==$LABEL_VERSION (no deps)"
"${PIP[@]}" --no-deps "monailabel==$LABEL_VERSION"

log "3/4 what the server imports (no torchvision, no numpymaxflow/sam2/shapely/scikit-learn, itk-core only)"
"${PIP[@]}" "monai==$MONAI_VERSION" "numpy>=1.24,<3" "pytorch-ignite==0.5.5" \
    "fastapi>=0.110.2" "uvicorn>=0.29.0" "pydantic>=2.7.0" "pydantic-settings>=2.2.1" "python-dotenv>=1.0.1" \
    "python-multipart>=0.0.9" "httpx>=0.27.0" "schedule>=1.2.1" "timeloop>=1.0.2" "expiringdict>=1.2.2" \
    "expiring_dict>=1.1.0" "cachetools>=5.3.3" "watchdog>=4.0.0" "requests>=2.31.0" "requests-toolbelt>=1.0.0" \
    "urllib3>=2.2.1" "filelock>=3.11.0" "passlib>=1.7.4" "pyjwt>=2.8.0" "bcrypt>=4.1.2" "pyyaml>=6.0.1" \
    "einops>=0.7.0" psutil "pynrrd>=1.0.0" "girder-client>=3.2.3" scipy nibabel pillow tqdm \
    "pydicom>=2.4.4,<3" "dicomweb-client[gcp]==0.59.1" SimpleITK jsonschema "itk-core==5.4.7" \
    setuptools  # monailabel.utils.others.generic imports distutils: setuptools' shim on Python >= 3.12
"${PIP[@]}" --no-deps "pydicom-seg>=0.4.1"

log "4/4 monai_mtt's run-time dependencies, monai_mtt (editable, no deps)"
"${PIP[@]}" "matplotlib>=3.7" "tensorboard>=2.12" "fire>=0.5" \
    "onnx>=1.15" "onnxruntime>=1.17"  # model_file *.onnx; the (forced) onnxruntime backend exports through onnx
"${PIP[@]}" --no-deps -e "$REPO"

smoke_test || { log "the new environment does not import the app"; exit 1; }
echo "$STAMP" > "$STAMP_FILE"
log "done in $(( $(date +%s) - start )) s; size $(du -sh "$VENV" | cut -f1)"
echo "$VENV/bin/python"
