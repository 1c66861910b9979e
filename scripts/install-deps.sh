#!/bin/sh
# Installs the Debian packages named on the command line that are not installed yet.
# Quiet and quick when everything is already there.
# A package that only brings a command (node, npm, chromium) counts as there when the command
# is: a machine with NodeSource's node has its own npm, and Debian's npm would conflict with it.
set -eu
command_of() {
    case "$1" in
    nodejs) echo node ;;
    npm) echo npm ;;
    chromium) echo chromium ;;
    *) echo "" ;;
    esac
}
missing=""
for p in "$@"; do
    cmd=$(command_of "$p")
    if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then
        continue
    fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing -- run as root, or install them first" >&2
    exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
