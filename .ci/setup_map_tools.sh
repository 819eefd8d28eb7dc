#!/usr/bin/env bash
# Install what `scripts/package_map.sh --offline` needs on Debian 12 (root, apt): docker.io, debootstrap,
# docker-registry, and the docker buildx plugin (Debian 12 has none: Debian 13's docker-buildx package, fetched
# with apt from the same mirror, its plugin copied to /usr/local/lib/docker/cli-plugins). Starts no daemon.
#
#   bash .ci/setup_map_tools.sh     # exit 0 when everything is in place; 3 when this machine cannot have it
set -euo pipefail

log() { echo "[setup_map_tools] $*" >&2; }
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

have_all() {
    command -v dockerd >/dev/null && command -v docker >/dev/null && command -v debootstrap >/dev/null \
        && command -v docker-registry >/dev/null && docker buildx version >/dev/null 2>&1
}
if have_all; then
    log "docker, dockerd, debootstrap, docker-registry and docker buildx are present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "cannot install: needs root and apt-get (install docker, debootstrap, docker-registry and docker buildx yourself)"
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=()
command -v dockerd >/dev/null || pkgs+=(docker.io)
command -v debootstrap >/dev/null || pkgs+=(debootstrap)
command -v docker-registry >/dev/null || pkgs+=(docker-registry)
if [ ${#pkgs[@]} -gt 0 ]; then
    log "apt-get install ${pkgs[*]}"
    apt-get update -q >/dev/null
    # the packages' services are not started (policy-rc.d or no init system); package_map.sh starts its own
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if ! docker buildx version >/dev/null 2>&1; then
    log "docker buildx: Debian 13's docker-buildx package"
    tmp="$(mktemp -d)"
    chmod 0755 "$tmp"   # apt downloads as the _apt user
    trap 'rm -rf "$tmp"' EXIT
    mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}')"
    mirror="${mirror:-http://deb.debian.org/debian}"
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/dl"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$tmp/sources.list"
    opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
          -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "Debug::NoLocking=1")
    apt-get "${opts[@]}" update -q >/dev/null   # a private package list: the system's apt sources are untouched
    (cd "$tmp/dl" && apt-get "${opts[@]}" download docker-buildx >/dev/null 2>&1)
    dpkg-deb -x "$tmp"/dl/docker-buildx_*.deb "$tmp/x"
    mkdir -p "$PLUGIN_DIR"
    install -m 0755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-buildx" "$PLUGIN_DIR/docker-buildx"
fi
have_all || { log "tools still missing after the install"; exit 1; }
log "ready: $(docker buildx version 2>/dev/null | head -1)"
