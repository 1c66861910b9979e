#!/bin/sh
# `npm ci` in a folder with a package.json and package-lock.json (tests/node: Strophe.js, ws,
# xmldom, playwright-core), unless node_modules already matches the lock.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
cd "$1"
stamp=node_modules/.magpie-lock
cmp -s package-lock.json "$stamp" 2>/dev/null && exit 0
command -v npm >/dev/null 2>&1 || { echo "node-deps.sh: npm not found" >&2; exit 1; }
echo "node-deps.sh: npm ci in $1" >&2
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
