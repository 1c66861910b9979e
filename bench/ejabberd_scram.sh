#!/usr/bin/env bash
# ejabberd as its documentation recommends running it: passwords stored as SCRAM keys
# (auth_password_format: scram) instead of the harness's plain text. Then a SASL PLAIN login
# costs ejabberd the same PBKDF2 it costs Magpie, which stores only SCRAM keys: the like-for-like
# PLAIN comparison. Everything else is the shared servers/ejabberd.sh, run from a copy with that
# one line changed, on its own data directory (/tmp/bench-ejabberd_scram).
#   BENCH_SERVER_DIR=$PWD/bench ../shared/bench/compare.sh --servers 'magpie ejabberd_scram' ...
set -euo pipefail
: "${BENCH_HOME:?BENCH_HOME must point at the shared bench directory}"
export BENCH_DIR=${BENCH_DIR:-/tmp/bench-ejabberd_scram}
COPY=$(mktemp -d /tmp/ejabberd-scram-script.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
cp "$BENCH_HOME/servers/lib.sh" "$COPY/lib.sh"
sed 's/^auth_password_format: plain$/auth_password_format: scram/' \
    "$BENCH_HOME/servers/ejabberd.sh" >"$COPY/ejabberd.sh"
grep -q '^auth_password_format: scram$' "$COPY/ejabberd.sh" ||
    { echo "ejabberd_scram: servers/ejabberd.sh has no 'auth_password_format: plain' line" >&2; exit 1; }
bash "$COPY/ejabberd.sh" "$@"
