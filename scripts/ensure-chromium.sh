#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests. Test tools never download a
# browser of their own (this machine reaches no browser CDN): Playwright drives /usr/bin/chromium.
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-chromium: /usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi
echo "ensure-chromium: installing chromium from Debian's packages"
apt-get update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
chromium --version
