#!/bin/sh
# Builds the JavaScript plugins into components under <repo>/target/plugins/js/.
# Works from a fresh clone: installs the pinned toolchain (package-lock.json) when node_modules is
# missing. Arguments are plugin folder names (default: all).
set -eu
cd "$(dirname "$0")"
if [ ! -d node_modules/@bytecodealliance/componentize-js ]; then
    npm ci --no-audit --no-fund
fi
exec node build.mjs "$@"
