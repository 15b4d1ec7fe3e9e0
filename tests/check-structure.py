#!/usr/bin/env python3
"""Structural checks on the attestgate library (`host/src`, without the binary's `cli/`).

1. No module cycles: a module never imports from a module that (directly or through others)
   imports it. Modules are files; `use` trees and inline `crate::`/`super::`/`self::` paths are
   resolved to the file module that defines them. A child reaching a re-export in its parent's
   `mod.rs` counts as importing the parent, which is what makes parent/child tangles visible.
2. No library function returns `Result<_, String>`: causes stay typed.
3. The library prints nothing (no `print!`, `eprint!`, `dbg!`, no handle on stdout or stderr),
   and the binary writes its standard output only through `out!` (`cli::write_stdout`), which
   ends quietly when the reader went away (`attestgate token inspect t.jwt | head -1`).

Run from anywhere: `python3 tests/check-structure.py`. Exits 1 and names every violation.
`./tests/run.sh` runs it, together with `cargo doc` under `-D missing-docs`.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "host" / "src"
# The binary's own modules (`main.rs`, `cli/`) are a separate crate over the library.
SKIP = {ROOT / "main.rs", ROOT / "cli"}


def library_files():
    for path in sorted(ROOT.rglob("*.rs")):
        if any(path == skip or skip in path.parents for skip in SKIP):
            continue
        yield path


def module_of(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(["crate"] + parts)


def strip_tests_and_comments(text):
    """Drops `#[cfg(test)]` items (their `use super::*` is the file itself), comments, strings."""
    text = re.sub(r"#\[cfg\((?:all\()?test[^\]]*\]\s*mod\s+\w+\s*\{.*", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    # `pub(in crate::x)` names a visibility, not an import.
    text = re.sub(r"pub\(in [^)]*\)", "pub", text)
    return text


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]; `a::b as c` -> [a::b]."""
    tree = re.sub(r"\s+", "", tree)
    depth, start = 0, None
    for index, char in enumerate(tree):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                prefix, inner = tree[:start], tree[start + 1 : index]
                items, depth2, last = [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        depth2 += 1
                    elif c == "}":
                        depth2 -= 1
                    elif c == "," and depth2 == 0:
                        items.append(inner[last:j])
                        last = j + 1
                items.append(inner[last:])
                paths = []
                for item in filter(None, items):
                    paths += expand_use_tree(item if item == "self" else prefix + item)
                return [p[: -len("::self")] if p.endswith("::self") else p for p in paths]
    return [re.sub(r"as\w+$", "", tree.split(" as ")[0])] if tree else []


def absolute(path, module, is_mod_file):
    segments = path.split("::")
    if segments[0] == "crate":
        return tuple(segments)
    if segments[0] in ("self", "super"):
        base = list(module)
        # In `a/b.rs` (module crate::a::b), `super` is crate::a; in `a/mod.rs` it is crate.
        while segments and segments[0] in ("self", "super"):
            if segments.pop(0) == "super":
                base.pop()
        return tuple(base + segments)
    return None  # an external crate or a local name


def resolve(path, module, is_mod_file, modules):
    """The absolute path `path` names from `module`: rooted at crate/self/super, or relative to
    the module itself when its first segment is a child module (`use child::Item`)."""
    rooted = absolute(path, module, is_mod_file)
    if rooted:
        return rooted
    first = path.split("::")[0]
    if module + (first,) in modules:
        return module + tuple(path.split("::"))
    return None


def main():
    modules = {}
    texts = {}
    for path in library_files():
        module = module_of(path)
        modules[module] = path
        texts[module] = strip_tests_and_comments(path.read_text())

    edges = {module: set() for module in modules}
    for module, text in texts.items():
        is_mod_file = modules[module].name in ("mod.rs", "lib.rs")
        paths = []
        for tree in re.findall(r"\buse\s+([^;]+);", text):
            paths += expand_use_tree(tree)
        paths += re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text)
        for path in paths:
            target = resolve(path, module, is_mod_file, modules)
            if not target:
                continue
            # The longest prefix that is a file module is where the item lives.
            for length in range(len(target), 0, -1):
                if target[:length] in modules:
                    found = target[:length]
                    break
            else:
                continue
            if found != module:
                edges[module].add(found)

    failures = []
    # Cycles: a depth-first search reporting each back edge's cycle once.
    state, stack, seen_cycles = {}, [], set()

    def visit(module):
        state[module] = "active"
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "active":
                cycle = stack[stack.index(target) :] + [target]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    failures.append(
                        "module cycle: " + " -> ".join("::".join(m) for m in cycle)
                    )
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(modules):
        if module not in state:
            visit(module)

    returns_string = re.compile(r"->\s*Result<[^;{]*,\s*String\s*>|type\s+Err\s*=\s*String")
    for module, path in modules.items():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith(("#[cfg(test)]", "#[cfg(all(test")):
                break  # test modules sit at the end of a file
            if not line.lstrip().startswith("//") and returns_string.search(line):
                failures.append(
                    f"{path.relative_to(ROOT.parent.parent)}:{number}: returns Result<_, String>; keep the cause typed"
                )

    failures += output_outside_its_channel()

    for failure in failures:
        print(failure)
    if failures:
        sys.exit(1)
    print(
        f"structure: {len(modules)} library modules, no cycles, no Result<_, String>, "
        "no printing in the library, standard output only through out!"
    )


def output_outside_its_channel():
    """Check 3: where the library or the binary writes to the terminal behind its channel's back."""
    library = re.compile(r"\b(?:e?print(?:ln)?|dbg)!|\b(?:stdout|stderr)\(\)")
    # The binary reports errors on stderr itself; its standard output goes through `out!`, whose
    # one implementation (`write_stdout` in `cli/mod.rs`) is the only holder of the handle.
    binary = re.compile(r"\bprint(?:ln)?!|\bstdout\(\)")
    failures = []
    for path in sorted(ROOT.rglob("*.rs")):
        in_binary = any(path == skip or skip in path.parents for skip in SKIP)
        pattern = binary if in_binary else library
        allowed = {"write_stdout"} if path == ROOT / "cli" / "mod.rs" else set()
        function = None
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.lstrip()
            if stripped.startswith(("#[cfg(test)]", "#[cfg(all(test")):
                break  # test modules sit at the end of a file
            found = re.match(r"(?:pub(?:\([^)]*\))?\s+)?fn\s+(\w+)", stripped)
            if found:
                function = found.group(1)
            elif line.startswith("}"):
                function = None  # a top-level item ended
            if stripped.startswith("//") or function in allowed:
                continue
            if pattern.search(line):
                where = "the library prints" if not in_binary else "standard output outside out!"
                failures.append(f"{path.relative_to(ROOT.parent.parent)}:{number}: {where}: {stripped}")
    return failures


if __name__ == "__main__":
    main()
