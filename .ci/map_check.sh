#!/usr/bin/env bash
# CI step: build the MONAI Application Package offline and smoke-test it on real images
# (scripts/package_map.sh --offline --smoke-test). Where Docker cannot run here (no root, no apt, no
# daemon can be started), it is SKIPPED with a loud message and exit 0: a missing daemon never fails CI.
# A MAP that does not build, or whose outputs are wrong, fails CI.
#
# Env: MONAI_MTT_SHARED_DATA (the real data folder, default ../shared/data), MONAI_MTT_MAP_TIMEOUT
# (seconds, default 1200).
set -uo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "==============================================================================" >&2
    echo "MAP CHECK SKIPPED: $*" >&2
    echo "==============================================================================" >&2
    exit 0
}

bash .ci/setup_map_tools.sh || skip "the Docker tools cannot be installed on this machine (see above)"

DATA="${MONAI_MTT_SHARED_DATA:-$(pwd)/../shared/data}/isic2017/ISIC-2017_Validation_Data"
SMOKE="$(mktemp -d)"
trap 'rm -rf "$SMOKE"' EXIT
# two full-size ISIC 2017 images of different sizes, and a truncated JPEG the app must report as bad
for id in ISIC_0009995 ISIC_0014572; do
    [ -f "$DATA/$id.jpg" ] || skip "the real images ($DATA/$id.jpg) are absent"
    cp "$DATA/$id.jpg" "$SMOKE/"
done
head -c 6000 "$DATA/ISIC_0010459.jpg" >"$SMOKE/ISIC_0010459_truncated.jpg"
chmod 0755 "$SMOKE" && chmod 0644 "$SMOKE"/*   # the MAP's user (uid 1000) reads them

OUT=build/map_ci
rm -rf "$OUT"
timeout -k 120 "${MONAI_MTT_MAP_TIMEOUT:-1200}" bash scripts/package_map.sh --offline --smoke-test "$SMOKE" --output "$OUT" \
    --model random --no-tarball
rc=$?
case $rc in
    0) echo "MAP check passed: $OUT/map_report.json" >&2; exit 0 ;;
    3) skip "scripts/package_map.sh cannot run here (see the missing items above)" ;;
    124) echo "MAP check FAILED: timed out after ${MONAI_MTT_MAP_TIMEOUT:-1200} s" >&2; exit 1 ;;
    *) echo "MAP check FAILED (exit $rc): see $OUT/logs and $OUT/smoke" >&2; exit 1 ;;
esac
