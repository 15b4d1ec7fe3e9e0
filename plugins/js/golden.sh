#!/bin/sh
# Runs the golden cases against the built JavaScript plugin (see golden.mjs for the environment).
set -eu
exec node "$(dirname "$0")/golden.mjs" "$@"
