#!/bin/sh
# Lays out the web chat page served at /chat/ into BUILD_DIR/web/chat/:
#   index.html, magpie-chat.js   our page (web/chat/), copied on every run
#   config.js                    the deployment's settings; copied only when missing, so an
#                                edited copy in the build survives rebuilds
#   dist/                        Converse.js, installed from the npm registry with `npm ci`
#                                from web/package-lock.json (exact version pinned), never
#                                committed; source maps and the unminified bundle left out
# Quick when nothing changed: the npm step runs again only when the lock file differs from
# the one recorded in the stamp.
#
# Usage: scripts/fetch-web.sh BUILD_DIR
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
mkdir -p "$1"
build=$(cd "$1" && pwd)
npm_dir="$build/web-npm"
out="$build/web/chat"
stamp="$out/dist/.magpie-lock"
lock="$src/web/package-lock.json"

mkdir -p "$out"
for f in index.html magpie-chat.js; do
    cmp -s "$src/web/chat/$f" "$out/$f" || cp "$src/web/chat/$f" "$out/$f"
done
[ -e "$out/config.js" ] || cp "$src/web/chat/config.js" "$out/config.js"

if cmp -s "$lock" "$stamp"; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || {
    echo "fetch-web.sh: npm not found: install Debian's nodejs and npm" >&2
    exit 1
}
echo "fetch-web.sh: installing Converse.js from the npm registry (npm ci in $npm_dir)" >&2
mkdir -p "$npm_dir"
cp "$src/web/package.json" "$lock" "$npm_dir/"
# --ignore-scripts: only the published dist/ is used, nothing needs building or running.
(cd "$npm_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
dist="$npm_dir/node_modules/converse.js/dist"
[ -f "$dist/converse.min.js" ] || {
    echo "fetch-web.sh: $dist/converse.min.js missing" >&2
    exit 1
}

tmp="$out/dist.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
(cd "$dist" && tar -cf - --exclude='*.map' --exclude='./converse.js' --exclude='./converse.css' \
    --exclude='./website*.css' .) | (cd "$tmp" && tar -xf -)
cp "$npm_dir/node_modules/converse.js/LICENSE" "$tmp/LICENSE.converse"
cp "$lock" "$tmp/.magpie-lock"
rm -rf "$out/dist"
mv "$tmp" "$out/dist"
echo "fetch-web.sh: $out ready ($(du -sh "$out/dist" | cut -f1) of Converse.js)" >&2
