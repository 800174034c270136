#!/usr/bin/env bash
# Makes sure bubblewrap (the local sandbox's namespaces) is installed for the execution tests.
# setpriv and prlimit come with util-linux, which every Debian system has.
set -euo pipefail

command -v bwrap >/dev/null 2>&1 && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-bubblewrap: bwrap is missing; install it with: sudo apt-get install -y bubblewrap" >&2
  exit 1
fi
echo "ensure-bubblewrap: installing bubblewrap from Debian's packages"
apt-get update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq bubblewrap >/dev/null
bwrap --version
