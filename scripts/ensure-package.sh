#!/usr/bin/env bash
# Usage: ensure-package.sh COMMAND PACKAGE
# Makes sure COMMAND exists, installing PACKAGE from Debian's packages if it does not (as root;
# otherwise it says what to install): one pair of ensure-packages.sh.
exec "$(dirname "$0")/ensure-packages.sh" "$1=$2"
