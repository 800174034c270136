#!/usr/bin/env bash
# Usage: ensure-package.sh COMMAND PACKAGE
# Makes sure COMMAND exists, installing PACKAGE from Debian's packages if it does not (as root;
# otherwise it says what to install). The tests use system tools this way: Chromium for the
# browser tests (never a browser a test tool downloads), bubblewrap for the local sandbox.
set -euo pipefail

command=$1
package=$2
command -v "$command" >/dev/null 2>&1 && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-package: $command is missing; install it with: sudo apt-get install -y $package" >&2
  exit 1
fi
echo "ensure-package: installing $package from Debian's packages"
apt-get update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$package" >/dev/null
command -v "$command" >/dev/null
