#!/usr/bin/env bash
# Usage: ensure-packages.sh COMMAND=PACKAGE ...
# Makes sure each COMMAND exists, installing the PACKAGEs of those that do not from Debian's
# packages in one apt-get run (as root; otherwise it says what to install). The tests use system
# tools this way: Chromium for the browser tests (never a browser a test tool downloads),
# bubblewrap for the local sandbox, podman, a JDK, ...
set -euo pipefail

missing=()
for pair in "$@"; do
  command=${pair%%=*}
  package=${pair#*=}
  command -v "$command" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-packages: missing; install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "ensure-packages: installing ${missing[*]} from Debian's packages"
apt-get update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null || { echo "ensure-packages: ${pair%%=*} is still missing" >&2; exit 1; }
done
