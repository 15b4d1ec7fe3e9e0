#!/usr/bin/env bash
# Builds the Python reference plugin into a WebAssembly component:
#   target/plugins/python/confidential_space_py.wasm   (paths from the repository root)
#
# Why a script: the toolchain (componentize-py, which embeds its own CPython) must be the pinned,
# hash-checked one, or two clones would build different plugins from the same source. It is
# installed into the project's venv, target/venv, on first use, so a fresh clone needs only
# python3 (3.10 or later) and the package registry.
#
# Usage: plugins/python/build.sh [--bindings]
#   --bindings  also (re)generate the Python bindings of wit/policy.wit into plugins/python/bindings,
#               which the SDK's native unit tests (test_sdk.py) and an editor's type checks import.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/venv"
out_dir="$root/target/plugins/python"
out="$out_dir/confidential_space_py.wasm"
wit="$root/wit/policy.wit"

# The version pinned in requirements.txt; a venv holding any other is brought to it.
pinned="$(sed -n 's/^componentize-py==\([^ ]*\).*/\1/p' "$here/requirements.txt")"
installed="$("$venv/bin/componentize-py" --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed" != "$pinned" ]; then
    echo "==> installing componentize-py $pinned into target/venv (hash-checked)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
        -r "$here/requirements.txt"
fi

# componentize-py adds a site-packages to the module search path: that of $VIRTUAL_ENV when set.
# An operator's activated venv must not decide what a plugin can import, so it is unset here.
cpy=(env -u VIRTUAL_ENV "$venv/bin/componentize-py" -d "$wit" -w plugin)

if [ "${1:-}" = "--bindings" ]; then
    rm -rf "$here/bindings"
    "${cpy[@]}" bindings "$here/bindings"
    echo "==> bindings in plugins/python/bindings"
fi

mkdir -p "$out_dir"
echo "==> componentize-py $pinned: confidential_space/app.py -> ${out#"$root"/}"
# The module search path: the plugin's own directory first, then the SDK's. Only the modules the
# plugin imports end up in the component (in its pre-initialised memory snapshot).
(cd "$here" && "${cpy[@]}" --quiet componentize app -p confidential_space -p . -o "$out")
ls -l "$out" | awk '{print "    " $5 " bytes"}'
