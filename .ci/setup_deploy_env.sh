#!/usr/bin/env bash
# Build (or reuse) the optional MONAI Deploy environment for monai_mtt.apps.deploy: .venvs/deploy.
#
#   bash .ci/setup_deploy_env.sh            # build or reuse; prints the venv's python on the last line
#   bash .ci/setup_deploy_env.sh --force    # rebuild from scratch
#   bash .ci/setup_deploy_env.sh --no-packager   # skip holoscan-cli (the `monai-deploy package` command)
#
# Kept apart from the core venv because monai-deploy-app-sdk 4.0.0 (a) pulls holoscan-cu13 -> cupy-cuda13x
# and tritonclient[all] (CUDA bits not needed to run the app on CPU), (b) pulls holoscan-cli 5.x, which has
# no `monai-deploy` command (holoscan-cli 4.2.0 is the last release that has it), and (c) makes `import monai`
# fail until pydicom and highdicom are installed (monai imports every monai.deploy module on start-up).
#
# Lightest install that runs the app (CPU, no Docker), in this order:
#   1. torch==2.13.0 FIRST (the CPU build; an unpinned torch resolves to a multi-GB CUDA build),
#   2. the SDK, holoscan-cu13 and holoscan-cli==4.2.0 with --no-deps,
#   3. only what they import at run time: cloudpickle, wheel-axle-runtime (holoscan; installed before it), typeguard, colorama,
#      tritonclient[http,grpc] (imported unconditionally by monai.deploy.core), pydicom, highdicom;
#      and holoscan-cli's own small dependencies (python-on-whales, requests, ...) unless --no-packager,
#   4. monai==1.6.1 and monai_mtt's run-time dependencies, with onnx + onnxruntime (`-m model.int8.onnx` needs
#      onnxruntime; a forced `onnxruntime` backend exports the network through onnx), then `pip install --no-deps -e <repo>`
#      (itk, nibabel, tensorboard, matplotlib and fire are not needed by the app).
# cupy-cuda13x, tritonclient's perf/cuda extras and holoscan-cli 5.x are deliberately left out.
# Env: MONAI_MTT_DEPLOY_VENV (default <repo>/.venvs/deploy), PYTHON (base interpreter, 3.10-3.13),
#      TORCH_PIP_ARGS (extra pip args for the torch step, e.g. an index serving CPU wheels elsewhere).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MONAI_MTT_DEPLOY_VENV:-$REPO/.venvs/deploy}"
FORCE=0
PACKAGER=1
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --no-packager) PACKAGER=0 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

TORCH_VERSION=2.13.0
MONAI_VERSION=1.6.1
SDK_VERSION=4.0.0
HOLOSCAN_VERSION=4.6.0
HOLOSCAN_CLI_VERSION=4.2.0
# what gets installed decides whether an existing venv can be reused
STAMP="torch=$TORCH_VERSION monai=$MONAI_VERSION sdk=$SDK_VERSION holoscan=$HOLOSCAN_VERSION cli=$HOLOSCAN_CLI_VERSION packager=$PACKAGER script=$(sha256sum "$0" | cut -c1-16)"
STAMP_FILE="$VENV/.monai_mtt_deploy_stamp"

log() { echo "[setup_deploy_env] $*" >&2; }

smoke_test() {
    # the app's imports, our package from THIS repository, and (with the packager) the monai-deploy command
    "$VENV/bin/python" - "$REPO" <<'EOF' || return 1
import sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import torch, monai, holoscan
import monai.deploy.core, monai.deploy.operators.monai_bundle_inference_operator
import monai_mtt, monai_mtt.apps.deploy.app
repo = Path(sys.argv[1]).resolve()
pkg = Path(monai_mtt.__file__).resolve()
assert repo in pkg.parents, f"monai_mtt comes from {pkg}, not from {repo}"
assert torch.__version__.startswith("2.13.0"), torch.__version__
print(f"torch {torch.__version__}, monai {monai.__version__}, holoscan {holoscan.__version__}", file=sys.stderr)
EOF
    if [ "$PACKAGER" = 1 ]; then
        "$VENV/bin/monai-deploy" version >/dev/null 2>&1 || "$VENV/bin/monai-deploy" --help >/dev/null 2>&1 || return 1
    fi
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
    for cand in python3.11 python3.12 python3.10 python3.13 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] < (3, 14)))' 2>/dev/null; then
            PY="$cand"; break
        fi
    done
fi
[ -n "$PY" ] || { log "no Python 3.10-3.13 found (set PYTHON)"; exit 1; }

start=$(date +%s)
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
log "creating $VENV with $("$PY" --version 2>&1)"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --no-input --disable-pip-version-check)

log "1/4 torch==$TORCH_VERSION (CPU build) first"
# shellcheck disable=SC2086
"${PIP[@]}" "torch==$TORCH_VERSION" ${TORCH_PIP_ARGS:-}
"$VENV/bin/python" -c 'import torch, sys; v = torch.__version__; sys.exit(0 if "+cu" not in v else f"got a CUDA torch build {v}: set TORCH_PIP_ARGS to an index with CPU wheels")'

log "2/4 monai-deploy-app-sdk==$SDK_VERSION, holoscan-cu13==$HOLOSCAN_VERSION (no deps; wheel-axle-runtime first:"
log "    holoscan's .pth start-up hook needs it)"
"${PIP[@]}" "wheel-axle-runtime<1.0" cloudpickle
"${PIP[@]}" --no-deps "monai-deploy-app-sdk==$SDK_VERSION" "holoscan-cu13==$HOLOSCAN_VERSION"

log "3/4 what the SDK imports at run time (no cupy, no tritonclient CUDA extras)"
"${PIP[@]}" "numpy>=1.24,<3" "pillow>=9" "typeguard>=3" "colorama>=0.4.1" "tritonclient[http,grpc]>=2.53" \
    pydicom highdicom
if [ "$PACKAGER" = 1 ]; then
    log "3b/4 holoscan-cli==$HOLOSCAN_CLI_VERSION (the last with the monai-deploy command; packaging needs Docker)"
    "${PIP[@]}" "holoscan-cli==$HOLOSCAN_CLI_VERSION"
fi

log "4/4 monai==$MONAI_VERSION, monai_mtt's run-time dependencies, monai_mtt (editable, no deps)"
"${PIP[@]}" "monai==$MONAI_VERSION" "pytorch-ignite>=0.4.11" "scipy>=1.10" "einops>=0.7" "pyyaml>=6.0" "tqdm>=4.60" \
    "onnx>=1.15" "onnxruntime>=1.17"  # .onnx models run; the (forced) onnxruntime backend exports through onnx
"${PIP[@]}" --no-deps -e "$REPO"

smoke_test || { log "the new environment does not import the app"; exit 1; }
echo "$STAMP" > "$STAMP_FILE"
log "done in $(( $(date +%s) - start )) s; size $(du -sh "$VENV" | cut -f1)"
echo "$VENV/bin/python"
