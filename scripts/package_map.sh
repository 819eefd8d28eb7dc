#!/usr/bin/env bash
# Package the MT-TransUNet MONAI Deploy app (monai_mtt.apps.deploy) as a MONAI Application Package (MAP)
# with `monai-deploy package` (holoscan-cli 4.2.0), and smoke-test the MAP with `docker run`.
#
#   bash scripts/package_map.sh [--offline] [--smoke-test IMAGES_DIR] [--output DIR] [--model PATH]
#                               [--tag NAME:VERSION] [--no-tarball] [--keep-work]
#
#   --model PATH       a TorchScript export with its configs embedded (model.ts), a bundle folder, or a
#                      checkpoint (.pt: exported to model.ts with this repository's bundle configs);
#                      `--model random` packages a fixed-seed random-weight network (tests the packaging
#                      only). Default: bundle/models/model.pt when present.
#   --smoke-test DIR   run the MAP on the images directly in DIR (read-only) and check its outputs: a mask
#                      PNG at each image's size, a JSON and a summary.csv row per image, status.json, and
#                      the same outputs as the app run outside the container on the same model. The smoke
#                      test uses one scale and one view (MONAI_MTT_SCALES / MONAI_MTT_VIEWS, default 224 /
#                      identity) to stay short; the MAP itself keeps the bundle's full TTA by default.
#   --output DIR       where the MAP tarball (`docker load -i`), the smoke-test outputs, logs and
#                      map_report.json go (default build/map).
#   --offline          for machines without Docker Hub / NGC (like our CI): the base image is Debian
#                      bookworm made with debootstrap, every Python wheel the app needs is fetched on the
#                      host (pip, as configured here) and installed into that base, which is served from a
#                      private local registry; `monai-deploy package` runs from a patched copy of its
#                      Dockerfile template with a docker context as its builder and a local artifacts file.
#                      When no Docker daemon answers, a private one is started (root only) and stopped.
#   (default, online)  the standard path for users: Docker running, NGC and PyPI reachable; the CLI's own
#                      base image (nvcr.io CUDA runtime) and builder.
#   --no-tarball       do not save the MAP as a tarball in --output (with a private daemon the image is then
#                      deleted at the end: a build-and-check run, as in CI).
#   --keep-work        keep the temporary work folder (private daemon data, base rootfs) for debugging.
#
# Env: MONAI_MTT_DEPLOY_VENV (default .venvs/deploy, from .ci/setup_deploy_env.sh), MONAI_MTT_MAP_WORKDIR
# (parent of the temporary work folder, default /var/tmp), MONAI_MTT_DEBIAN_MIRROR (default: the mirror apt
# uses here), TORCH_PIP_ARGS (extra pip args to fetch the CPU torch wheel offline).
#
# Exit codes: 0 the MAP was built (and, with --smoke-test, its outputs were checked); 1 packaging or the
# smoke test failed; 2 bad usage; 3 this machine cannot run it (a missing tool or no Docker daemon; the
# message says what is missing and how to install it: `bash .ci/setup_map_tools.sh` on Debian).
# The script starts and stops only the daemons it started and removes its temporary files.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MONAI_MTT_DEPLOY_VENV:-$REPO/.venvs/deploy}"
OFFLINE=0
SMOKE=""
OUTPUT="$REPO/build/map"
MODEL=""
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/monai_mtt/__init__.py")"  # the one source
TAG="monai-mtt-skin:$VERSION"
KEEP_WORK=0
TARBALL_OUT=1
SMOKE_SCALES="${MONAI_MTT_SCALES:-224}"
SMOKE_VIEWS="${MONAI_MTT_VIEWS:-identity}"
EXIT_FAILED=1
EXIT_USAGE=2
EXIT_CANNOT_RUN=3
MAP_UID=1000   # the MAP's user (holoscan-cli's default); the output folder must be writable by it
MAP_USER=holoscan

log() { echo "[package_map] $*" >&2; }
die() { log "ERROR: $1"; exit "${2:-$EXIT_FAILED}"; }
usage() { sed -n '2,38p' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --offline) OFFLINE=1 ;;
        --smoke-test) [ $# -ge 2 ] || die "--smoke-test needs a folder of images" $EXIT_USAGE; SMOKE="$2"; shift ;;
        --output) [ $# -ge 2 ] || die "--output needs a folder" $EXIT_USAGE; OUTPUT="$2"; shift ;;
        --model) [ $# -ge 2 ] || die "--model needs a path (or 'random')" $EXIT_USAGE; MODEL="$2"; shift ;;
        --tag) [ $# -ge 2 ] || die "--tag needs NAME:VERSION" $EXIT_USAGE; TAG="$2"; shift ;;
        --keep-work) KEEP_WORK=1 ;;
        --no-tarball) TARBALL_OUT=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" $EXIT_USAGE ;;
    esac
    shift
done

# ------------------------------------------------------------------------------------------ arguments
case "$TAG" in *:*) ;; *) die "--tag must be NAME:VERSION (got '$TAG')" $EXIT_USAGE ;; esac
if [ -z "$MODEL" ]; then
    if [ -f "$REPO/bundle/models/model.pt" ]; then
        MODEL="$REPO/bundle/models/model.pt"
    else
        die "no model to package: pass --model PATH (model.ts from ckpt_export, a bundle folder or a checkpoint),
       or --model random to test the packaging with random weights (bundle/models/model.pt is absent)" $EXIT_USAGE
    fi
fi
if [ "$MODEL" != random ]; then
    [ -e "$MODEL" ] || die "--model $MODEL does not exist" $EXIT_USAGE
    MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
fi
if [ -n "$SMOKE" ]; then
    [ -d "$SMOKE" ] || die "--smoke-test $SMOKE is not a folder" $EXIT_USAGE
    SMOKE="$(cd "$SMOKE" && pwd)"
fi
mkdir -p "$OUTPUT" || die "cannot create --output $OUTPUT" $EXIT_USAGE
OUTPUT="$(cd "$OUTPUT" && pwd)"
mkdir -p "$OUTPUT/logs"

# ------------------------------------------------------------------------------------------ prerequisites
MISSING=()
need() { command -v "$1" >/dev/null 2>&1 || MISSING+=("$1 ($2)"); }
[ -x "$VENV/bin/monai-deploy" ] || MISSING+=("$VENV/bin/monai-deploy (bash .ci/setup_deploy_env.sh)")
[ -x "$VENV/bin/python" ] || MISSING+=("$VENV/bin/python (bash .ci/setup_deploy_env.sh)")
need docker "the Docker CLI: apt-get install docker.io"
if [ "$OFFLINE" = 1 ]; then
    need debootstrap "apt-get install debootstrap"
    need docker-registry "apt-get install docker-registry"
fi
if command -v docker >/dev/null 2>&1 && ! docker buildx version >/dev/null 2>&1; then
    MISSING+=("docker buildx plugin (Debian 13's docker-buildx in /usr/local/lib/docker/cli-plugins: bash .ci/setup_map_tools.sh)")
fi
if [ "$OFFLINE" = 1 ] && [ -x "$VENV/bin/python" ]; then
    pyver="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    # the offline base is Debian bookworm (Python 3.11): the wheels fetched on the host must fit it
    [ "$pyver" = 3.11 ] || MISSING+=("a deploy venv on Python 3.11 to fetch wheels for the bookworm base (it has $pyver; PYTHON=python3.11 bash .ci/setup_deploy_env.sh --force)")
fi
DAEMON_UP=0
if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
    DAEMON_UP=1
elif [ "$OFFLINE" = 0 ]; then
    MISSING+=("a running Docker daemon (start Docker, e.g. 'systemctl start docker'; --offline starts a private one as root)")
else
    [ "$(id -u)" = 0 ] || MISSING+=("root, to start a private Docker daemon (none answers)")
    need dockerd "apt-get install docker.io"
fi
if [ ${#MISSING[@]} -gt 0 ]; then
    log "CANNOT RUN on this machine; missing:"
    for m in "${MISSING[@]}"; do log "  - $m"; done
    exit $EXIT_CANNOT_RUN
fi

# ------------------------------------------------------------------------------------------ work folder, cleanup
WORKROOT="${MONAI_MTT_MAP_WORKDIR:-/var/tmp}"
mkdir -p "$WORKROOT"
WORK="$(mktemp -d "$WORKROOT/monai_mtt_map.XXXXXX")"
DOCKERD_PID=""
REGISTRY_PID=""
CREATED_IMAGES=()
ORIG_DOCKER_HOST="${DOCKER_HOST:-}"

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ "${#CREATED_IMAGES[@]}" -gt 0 ] && [ -z "$DOCKERD_PID" ]; then
        docker image rm -f "${CREATED_IMAGES[@]}" >/dev/null 2>&1  # our intermediate images on a daemon we did not start
    fi
    if [ -n "$REGISTRY_PID" ] && kill -0 "$REGISTRY_PID" 2>/dev/null; then
        kill "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null
        log "stopped the local registry (pid $REGISTRY_PID)"
    fi
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        kill "$DOCKERD_PID"
        for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
        kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
        wait "$DOCKERD_PID" 2>/dev/null
        log "stopped the private Docker daemon (pid $DOCKERD_PID)"
    fi
    if [ "$KEEP_WORK" = 1 ]; then
        log "kept the work folder $WORK"
    else
        # never delete through a mount left behind (debootstrap's /proc, an overlay): unmount first, else keep
        local m
        for m in $(awk -v w="$WORK" '$2 == w || index($2, w "/") == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
        if awk -v w="$WORK" '$2 == w || index($2, w "/") == 1 {found=1} END {exit !found}' /proc/mounts; then
            log "WARNING: mounts remain under $WORK; not deleting it"
        else
            rm -rf "$WORK"
        fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s; }
T_START=$(now)
declare -A T   # phase -> seconds

# ------------------------------------------------------------------------------------------ docker daemon
if [ "$DAEMON_UP" = 1 ]; then
    ENDPOINT="${ORIG_DOCKER_HOST:-$(docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null || echo unix:///var/run/docker.sock)}"
    log "using the running Docker daemon at $ENDPOINT"
else
    SOCK="$WORK/docker.sock"
    ENDPOINT="unix://$SOCK"
    log "starting a private Docker daemon (data in $WORK/docker; log $OUTPUT/logs/dockerd.log)"
    dockerd --data-root "$WORK/docker" --exec-root "$WORK/x" --pidfile "$WORK/dockerd.pid" -H "$ENDPOINT" \
        >"$OUTPUT/logs/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do
        DOCKER_HOST="$ENDPOINT" docker info >/dev/null 2>&1 && break
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 1
    done
    if ! DOCKER_HOST="$ENDPOINT" docker info >/dev/null 2>&1; then
        log "CANNOT RUN: a Docker daemon cannot be started here; the end of its log:"
        tail -15 "$OUTPUT/logs/dockerd.log" >&2
        exit $EXIT_CANNOT_RUN
    fi
fi
if [ "$OFFLINE" = 1 ]; then
    # holoscan-cli would create a docker-container buildx builder (its image comes from Docker Hub); a docker
    # context by the builder's name makes buildx use the daemon's own BuildKit instead. It lives in a private
    # CLI config that goes away with WORK (the user's ~/.docker is not touched).
    unset DOCKER_HOST
    export DOCKER_CONFIG="$WORK/docker-config"
    mkdir -p "$DOCKER_CONFIG"
    docker context create holoscan_app_builder --docker "host=$ENDPOINT" >/dev/null
    export DOCKER_CONTEXT=holoscan_app_builder
fi
docker info >/dev/null || die "the Docker daemon does not answer"

# ------------------------------------------------------------------------------------------ model
DPY=(env "PYTHONPATH=$REPO" "$VENV/bin/python")
mkdir -p "$WORK/model"
t0=$(now)
export_checkpoint() {  # $1 checkpoint -> $WORK/model/model.ts, configs embedded (as docs/deploy.md does)
    local key
    key="$("${DPY[@]}" -c 'import sys, torch; c = torch.load(sys.argv[1], map_location="cpu", weights_only=True); print("model" if isinstance(c, dict) and "model" in c else "")' "$1")"
    # monai.bundle's ckpt_export through its Python API (the deploy venv has no `fire` for its command line)
    "${DPY[@]}" - "$1" "$WORK/model/model.ts" "$key" "$REPO/bundle" >"$OUTPUT/logs/ckpt_export.log" 2>&1 <<'EOF' \
        || { tail -20 "$OUTPUT/logs/ckpt_export.log" >&2; die "ckpt_export of $1 failed"; }
import sys
from monai.bundle import ckpt_export
ckpt, out, key, bundle = sys.argv[1:]
ckpt_export(net_id="network_def", filepath=out, ckpt_file=ckpt, key_in_ckpt=key, bundle_root=bundle,
            meta_file=f"{bundle}/configs/metadata.json", config_file=f"{bundle}/configs/inference.yaml")
EOF
    [ -f "$WORK/model/model.ts" ] || die "ckpt_export wrote no $WORK/model/model.ts"
}
if [ "$MODEL" = random ]; then
    log "model: a fixed-seed random-weight MT-TransUNet (tests the packaging only)"
    "${DPY[@]}" -c 'import sys, torch; from monai_mtt.networks import MTTransUNet; torch.manual_seed(0); torch.save({"model": MTTransUNet().state_dict()}, sys.argv[1])' "$WORK/model/random.pt"
    export_checkpoint "$WORK/model/random.pt"
    rm -f "$WORK/model/random.pt"
    PACKAGED_MODEL="$WORK/model/model.ts"
elif [ -d "$MODEL" ] || [[ "$MODEL" == *.ts ]]; then
    PACKAGED_MODEL="$MODEL"
else
    log "model: exporting checkpoint $MODEL to TorchScript with the bundle's configs"
    export_checkpoint "$MODEL"
    PACKAGED_MODEL="$WORK/model/model.ts"
fi
T[model]=$(( $(now) - t0 ))

# ------------------------------------------------------------------------------------------ the app folder
# monai_mtt is not on a package index: stage it next to the entry point (the MAP runs python3 /opt/holoscan/app)
APP="$WORK/app"
mkdir -p "$APP"
tar -C "$REPO" --exclude=__pycache__ --exclude='*.pyc' -cf - monai_mtt | tar -C "$APP" -xf -
cp "$REPO/monai_mtt/apps/deploy/__main__.py" "$REPO/monai_mtt/apps/deploy/app.yaml" \
    "$REPO/monai_mtt/apps/deploy/requirements.txt" "$APP/"

MAP_NAME="${TAG%%:*}"
MAP_VERSION="${TAG##*:}"
MAP_IMAGE="${MAP_NAME}-x64-workstation-dgpu-linux-amd64:${MAP_VERSION}"
PACKAGE_ARGS=("$APP" -c "$APP/app.yaml" -m "$PACKAGED_MODEL" -t "$TAG" --platform x86_64
    --uid "$MAP_UID" --gid "$MAP_UID" --username "$MAP_USER" --build-cache "$WORK/build-cache" -l INFO)
[ "$TARBALL_OUT" = 0 ] || PACKAGE_ARGS+=(--output "$OUTPUT")
HCLI_PYTHONPATH=""

# ------------------------------------------------------------------------------------------ offline: base image
if [ "$OFFLINE" = 1 ]; then
    t0=$(now)
    REG_PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$WORK/registry"
    cat >"$WORK/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$REG_PORT
EOF
    docker-registry serve "$WORK/registry.yml" >"$OUTPUT/logs/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for _ in $(seq 30); do
        curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null 2>&1 && break
        kill -0 "$REGISTRY_PID" 2>/dev/null || break
        sleep 1
    done
    curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null 2>&1 || { tail -5 "$OUTPUT/logs/registry.log" >&2; die "the local registry did not start"; }
    log "local registry on 127.0.0.1:$REG_PORT (pid $REGISTRY_PID)"

    MIRROR="${MONAI_MTT_DEBIAN_MIRROR:-}"
    if [ -z "$MIRROR" ]; then
        MIRROR="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}')"
        [ -n "$MIRROR" ] || MIRROR="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
        [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
    fi
    log "base rootfs: debootstrap --variant=minbase bookworm from $MIRROR"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,curl,jq,ca-certificates \
        bookworm "$WORK/rootfs" "$MIRROR" >"$OUTPUT/logs/debootstrap.log" 2>&1 \
        || { tail -20 "$OUTPUT/logs/debootstrap.log" >&2; die "debootstrap failed (log: $OUTPUT/logs/debootstrap.log)"; }
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    RAW="monai-mtt-map-rootfs:$(basename "$WORK" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9')"
    tar -C "$WORK/rootfs" -c . | docker import - "$RAW" >/dev/null
    CREATED_IMAGES+=("$RAW")
    rm -rf "$WORK/rootfs"
    T[base_rootfs]=$(( $(now) - t0 ))

    t0=$(now)
    log "wheels for the app's requirements (pip on the host, Python 3.11 as in the base)"
    mkdir -p "$WORK/base/wheelhouse"
    cp "$APP/requirements.txt" "$WORK/base/wheelhouse/requirements.txt"
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip wheel --no-input --disable-pip-version-check -q -w "$WORK/base/wheelhouse" \
        -r "$APP/requirements.txt" "nvidia-cuda-runtime>=13,<14" filelock wheel-axle-runtime ${TORCH_PIP_ARGS:-} \
        >"$OUTPUT/logs/pip_wheel.log" 2>&1 || { tail -20 "$OUTPUT/logs/pip_wheel.log" >&2; die "fetching the wheels failed"; }
    if ls "$WORK/base/wheelhouse"/torch-*.whl | grep -q '+cu'; then
        die "pip fetched a CUDA torch build; set TORCH_PIP_ARGS to an index with CPU wheels"
    fi
    # Every requirement is installed into the base, so the MAP's own `pip install` steps find them satisfied;
    # PIP_NO_INDEX keeps them from reaching any index. libcudart (loaded by holoscan even on a CPU) is put on
    # the loader path. holoscan's wheel makes its library symlinks on the first Python start after the install
    # (a .pth hook that imports pip, which Debian keeps in a later site folder: hence PYTHONPATH): start Python
    # once here, as root, or the MAP's unprivileged user cannot load libholoscan_core.
    cat >"$WORK/base/Dockerfile" <<EOF
FROM $RAW
RUN --mount=type=bind,source=wheelhouse,target=/tmp/wheelhouse \\
    python3 -m pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse --break-system-packages wheel-axle-runtime \\
    && python3 -m pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse --break-system-packages \\
        -r /tmp/wheelhouse/requirements.txt nvidia-cuda-runtime filelock \\
    && find /usr/local/lib/python3*/dist-packages/nvidia -name 'libcudart.so.*' -printf '%h\n' | sort -u \\
        > /etc/ld.so.conf.d/nvidia-cuda-runtime.conf && ldconfig && ldconfig -p | grep -q libcudart \\
    && PYTHONPATH=/usr/lib/python3/dist-packages python3 -c "import holoscan.core" \\
    && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
ENV PIP_NO_INDEX=1
EOF
    BASE="localhost:$REG_PORT/monai-mtt-map-base:bookworm"
    docker build -t "$BASE" "$WORK/base" >"$OUTPUT/logs/base_build.log" 2>&1 \
        || { tail -30 "$OUTPUT/logs/base_build.log" >&2; die "building the base image failed (log: $OUTPUT/logs/base_build.log)"; }
    CREATED_IMAGES+=("$BASE")
    docker push "$BASE" >"$OUTPUT/logs/base_push.log" 2>&1 || { tail -10 "$OUTPUT/logs/base_push.log" >&2; die "pushing the base to the local registry failed"; }
    rm -rf "$WORK/base/wheelhouse"
    T[base_image]=$(( $(now) - t0 ))

    # holoscan-cli downloads artifacts.json for its release: a local one, keyed by the installed holoscan version
    HOLOSCAN_VERSION="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(next(m.version(d) for d in ("holoscan-cu13", "holoscan") if m.distribution(d)))' 2>/dev/null)"
    "$VENV/bin/python" - "$HOLOSCAN_VERSION" "$BASE" "$WORK/artifacts.json" <<'EOF'
import json, sys
version, base, out = sys.argv[1:]
images = {"x64-workstation": base}
doc = {version: {
    "holoscan": {"debian-version": f"{version}.1-1", "wheel-version": version,
                 "base-images": {"dgpu": base, "cpu": base},
                 "build-images": {"dgpu": images, "igpu": {}, "cpu": images}},
    "health-probes": {}}}
json.dump(doc, open(out, "w"), indent=2)
EOF
    # a patched COPY of holoscan-cli (the installed package is never edited): its Dockerfile template fetches
    # the CUDA apt key from an NVIDIA host and pins Ubuntu 24.04's Python packages
    HCLI_SRC="$("$VENV/bin/python" -c 'import holoscan_cli, os; print(os.path.dirname(holoscan_cli.__file__))')"
    mkdir -p "$WORK/hcli"
    cp -r "$HCLI_SRC" "$WORK/hcli/holoscan_cli"
    "$VENV/bin/python" - "$WORK/hcli/holoscan_cli/packager/templates/Dockerfile.jinja2" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
key = re.compile(r"# Update NV GPG repo key\n.*?&& apt-get update\n", re.S)
text, n_key = key.subn("# (offline: no CUDA apt key; the base is Debian bookworm)\n", text)
n_pin = text.count("=${PYTHON_VERSION}") + text.count("=${PYTHON_PIP_VERSION}")
text = text.replace("=${PYTHON_VERSION}", "").replace("=${PYTHON_PIP_VERSION}", "")
if n_key != 1 or n_pin < 5:
    sys.exit(f"the holoscan-cli Dockerfile template changed (CUDA key blocks {n_key}, Python pins {n_pin}): update scripts/package_map.sh")
open(path, "w").write(text)
EOF
    HCLI_PYTHONPATH="$WORK/hcli"
    PACKAGE_ARGS+=(--base-image "$BASE" --source "$WORK/artifacts.json" --no-cache)
fi

# ------------------------------------------------------------------------------------------ package
t0=$(now)
log "monai-deploy package -> $MAP_IMAGE (log $OUTPUT/logs/package.log)"
rm -f "$OUTPUT/${MAP_IMAGE//:/-}.tar"
OLD_IMAGE_ID="$(docker image inspect -f '{{.Id}}' "$MAP_IMAGE" 2>/dev/null || true)"   # a previous build's
if ! env ${HCLI_PYTHONPATH:+PYTHONPATH="$HCLI_PYTHONPATH"} "$VENV/bin/monai-deploy" package "${PACKAGE_ARGS[@]}" \
        >"$OUTPUT/logs/package.log" 2>&1; then
    tail -40 "$OUTPUT/logs/package.log" >&2
    die "monai-deploy package failed (log: $OUTPUT/logs/package.log)"
fi
# holoscan-cli reports a failed build in its log but may still exit 0: require a new image
NEW_IMAGE_ID="$(docker image inspect -f '{{.Id}}' "$MAP_IMAGE" 2>/dev/null || true)"
if [ -z "$NEW_IMAGE_ID" ] || [ "$NEW_IMAGE_ID" = "$OLD_IMAGE_ID" ]; then
    tail -40 "$OUTPUT/logs/package.log" >&2
    die "monai-deploy package did not produce a new $MAP_IMAGE (log: $OUTPUT/logs/package.log)"
fi
[ -z "$DOCKERD_PID" ] || CREATED_IMAGES+=("$MAP_IMAGE")
TARBALL=""
if [ "$TARBALL_OUT" = 1 ]; then
    TARBALL="$OUTPUT/${MAP_IMAGE//:/-}.tar"
    [ -f "$TARBALL" ] || die "the MAP tarball $TARBALL was not written"
fi
T[package]=$(( $(now) - t0 ))
IMAGE_BYTES="$(docker image inspect -f '{{.Size}}' "$MAP_IMAGE")"
log "built $MAP_IMAGE: $(( IMAGE_BYTES / 1000000 )) MB; tarball ${TARBALL:-(none: --no-tarball)}"

# ------------------------------------------------------------------------------------------ smoke test
SMOKE_OK=""
if [ -n "$SMOKE" ]; then
    t0=$(now)
    SOUT="$OUTPUT/smoke"
    rm -rf "$SOUT"
    mkdir -p "$SOUT/map_output" "$SOUT/local_output"
    chmod 0777 "$SOUT/map_output"   # the MAP runs as uid $MAP_UID
    log "smoke test: the MAP on $SMOKE (scales $SMOKE_SCALES, views $SMOKE_VIEWS)"
    set +e
    docker run --rm --network none -e MONAI_MTT_SCALES="$SMOKE_SCALES" -e MONAI_MTT_VIEWS="$SMOKE_VIEWS" \
        -v "$SMOKE:/var/holoscan/input:ro" -v "$SOUT/map_output:/var/holoscan/output" "$MAP_IMAGE" \
        >"$SOUT/map_run.log" 2>&1
    MAP_RC=$?
    set -e
    T[smoke_map_run]=$(( $(now) - t0 ))
    # give the files back to the caller (they were written by the MAP's user)
    docker run --rm --network none --user 0 --entrypoint chown -v "$SOUT/map_output:/o" "$MAP_IMAGE" \
        -R "$(id -u):$(id -g)" /o >/dev/null 2>&1 || log "WARNING: could not chown $SOUT/map_output"
    chmod 0755 "$SOUT/map_output"
    t0=$(now)
    log "smoke test: the same app outside the container on the same model"
    set +e
    env PYTHONPATH="$REPO" MONAI_MTT_SCALES="$SMOKE_SCALES" MONAI_MTT_VIEWS="$SMOKE_VIEWS" \
        "$VENV/bin/python" -m monai_mtt.apps.deploy -i "$SMOKE" -o "$SOUT/local_output" -m "$PACKAGED_MODEL" \
        >"$SOUT/local_run.log" 2>&1
    LOCAL_RC=$?
    set -e
    T[smoke_local_run]=$(( $(now) - t0 ))
    set +e
    "${DPY[@]}" -m monai_mtt.apps.deploy.check_outputs --inputs "$SMOKE" --output "$SOUT/map_output" \
        --reference "$SOUT/local_output" --reference-exit-code "$LOCAL_RC" --container-log "$SOUT/map_run.log" \
        --json "$SOUT/check.json" >&2
    CHECK_RC=$?
    set -e
    log "container exit code $MAP_RC (the MAP's entry script exits 0 whatever the app returns); app outside: $LOCAL_RC"
    if [ "$CHECK_RC" = 0 ]; then SMOKE_OK=true; else SMOKE_OK=false; fi
fi

# ------------------------------------------------------------------------------------------ report
T[total]=$(( $(now) - T_START ))
"$VENV/bin/python" - "$OUTPUT/map_report.json" <<EOF
import json, sys
times = {$(for k in "${!T[@]}"; do printf '"%s": %s, ' "$k" "${T[$k]}"; done)}
doc = {"map_image": "$MAP_IMAGE", "tarball": "$TARBALL" or None, "image_bytes": $IMAGE_BYTES, "offline": bool($OFFLINE),
       "model": "$MODEL", "smoke_test": "$SMOKE" or None, "smoke_ok": {"true": True, "false": False}.get("$SMOKE_OK"),
       "seconds": times}
json.dump(doc, open(sys.argv[1], "w"), indent=2)
print(json.dumps(doc, indent=2))
EOF
if [ "$SMOKE_OK" = false ]; then
    die "the smoke test failed (see $OUTPUT/smoke/check.json and the logs there)"
fi
if [ -n "$TARBALL" ]; then
    log "done in ${T[total]} s: $TARBALL (load it with: docker load -i $TARBALL)"
else
    log "done in ${T[total]} s: $MAP_IMAGE$([ -n "$DOCKERD_PID" ] && echo ' (in the private daemon, deleted now)')"
fi
