//! Which language and toolchain produced a plugin, from the `producers` custom sections its
//! toolchain wrote (the WebAssembly tool-conventions format). `plugin inspect` shows them, and
//! the host picks a plugin's default limits by them: a component that embeds a JavaScript or
//! Python runtime needs more memory and time than a Rust one.
//!
//! The file is untrusted input: the scanner reads only what lies within each section's declared
//! size, stops at the first malformed byte, and never fails; what it could not read is simply
//! not reported.

use serde::Serialize;

/// One `producers` entry: a field (`language`, `processed-by` or `sdk`), a name and a version;
/// or, with the field `needed`, a shared library a dynamically linked core module needs (its
/// `dylink.0` section): componentize-py's components name no Python toolchain in `producers`,
/// but their modules need `libpython3.x.so`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Producer {
    /// `language`, `processed-by` or `sdk`.
    pub field: String,
    /// Such as `Rust`, `rustc`, `wit-component`, `componentize-py`.
    pub name: String,
    /// The version the toolchain recorded (may be empty).
    pub version: String,
}

/// The runtime family a plugin's code comes from, which decides its default limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Compiled straight to WebAssembly (Rust, C, Go, …): small and fast to start.
    Compiled,
    /// A JavaScript engine inside the component (componentize-js).
    JavaScript,
    /// A Python interpreter inside the component (componentize-py).
    Python,
}

impl PluginKind {
    /// The kind named by a plugin's producers.
    pub fn of(producers: &[Producer]) -> PluginKind {
        let named = |needle: &str| {
            producers
                .iter()
                .any(|p| p.name.to_ascii_lowercase().contains(needle))
        };
        // `libpython3.x.so` among the needed libraries, or a Python toolchain named.
        if named("componentize-py") || named("python") {
            PluginKind::Python
        } else if named("componentize-js") || named("starlingmonkey") || named("javascript") {
            PluginKind::JavaScript
        } else {
            PluginKind::Compiled
        }
    }
}

/// The limit on nesting (components inside components) the scanner follows.
const MAX_DEPTH: usize = 8;

/// The longest name or version kept; toolchains write short ones.
const MAX_NAME_CHARS: usize = 128;

/// Every `producers` entry in `wasm`: the component's own and its core modules', deduplicated,
/// in order of appearance.
pub fn producers(wasm: &[u8]) -> Vec<Producer> {
    let mut found = Vec::new();
    scan(wasm, 0, &mut found);
    let mut unique: Vec<Producer> = Vec::new();
    for p in found {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    unique
}

/// A cursor over bytes that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// An unsigned LEB128 of at most 32 bits.
    fn u32(&mut self) -> Option<u32> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            value |= u32::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    /// A name, as text safe to print: control characters escaped, at most
    /// [`MAX_NAME_CHARS`] characters (the plugin wrote it).
    fn name(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        let text: String = String::from_utf8_lossy(bytes)
            .chars()
            .take(MAX_NAME_CHARS)
            .collect();
        Some(crate::http::escape_control(&text).into_owned())
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// Walks a module's or a component's sections: custom sections named `producers` are read,
/// nested core modules (component section 1) and components (section 4) are walked in turn.
fn scan(wasm: &[u8], depth: usize, found: &mut Vec<Producer>) {
    if depth > MAX_DEPTH || wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return;
    }
    // The layer field tells a component (1) from a core module (0).
    let is_component = wasm[6] == 1;
    let mut reader = Reader { bytes: wasm, at: 8 };
    while !reader.done() {
        let (Some(id), Some(size)) = (reader.byte(), reader.u32()) else {
            return;
        };
        let Some(body) = reader.take(size as usize) else {
            return;
        };
        match id {
            0 => {
                let mut section = Reader { bytes: body, at: 0 };
                match section.name().as_deref() {
                    Some("producers") => read_producers(&mut section, found),
                    Some("dylink.0") => read_needed(&mut section, found),
                    _ => {}
                }
            }
            1 | 4 if is_component => scan(body, depth + 1, found),
            _ => {}
        }
    }
}

/// The `needed` subsection (type 2) of a `dylink.0` section: the libraries a module links.
fn read_needed(section: &mut Reader<'_>, found: &mut Vec<Producer>) {
    const NEEDED: u8 = 2;
    while !section.done() {
        let (Some(kind), Some(size)) = (section.byte(), section.u32()) else {
            return;
        };
        let Some(body) = section.take(size as usize) else {
            return;
        };
        if kind != NEEDED {
            continue;
        }
        let mut needed = Reader { bytes: body, at: 0 };
        let Some(count) = needed.u32() else { return };
        for _ in 0..count {
            let Some(name) = needed.name() else { return };
            found.push(Producer {
                field: "needed".into(),
                name,
                version: String::new(),
            });
        }
    }
}

fn read_producers(section: &mut Reader<'_>, found: &mut Vec<Producer>) {
    let Some(fields) = section.u32() else { return };
    for _ in 0..fields {
        let Some(field) = section.name() else { return };
        let Some(values) = section.u32() else { return };
        for _ in 0..values {
            let (Some(name), Some(version)) = (section.name(), section.name()) else {
                return;
            };
            found.push(Producer {
                field: field.clone(),
                name,
                version,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn name(s: &str, out: &mut Vec<u8>) {
        leb(s.len(), out);
        out.extend_from_slice(s.as_bytes());
    }

    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len(), out);
        out.extend_from_slice(body);
    }

    fn producers_section(entries: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        name("producers", &mut body);
        leb(entries.len(), &mut body);
        for (field, n, v) in entries {
            name(field, &mut body);
            leb(1, &mut body);
            name(n, &mut body);
            name(v, &mut body);
        }
        body
    }

    fn module(entries: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        section(0, &producers_section(entries), &mut wasm);
        wasm
    }

    #[test]
    fn producers_are_read_from_the_component_and_its_core_modules() {
        let core = module(&[("language", "Python", "3.12")]);
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        section(1, &core, &mut component);
        section(
            0,
            &producers_section(&[("processed-by", "componentize-py", "0.25.1")]),
            &mut component,
        );
        let found = producers(&component);
        assert_eq!(
            found.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["Python", "componentize-py"]
        );
        assert_eq!(PluginKind::of(&found), PluginKind::Python);
        assert_eq!(
            PluginKind::of(&producers(&module(&[("language", "Rust", "")]))),
            PluginKind::Compiled
        );
    }

    #[test]
    fn a_module_that_links_libpython_is_a_python_plugin() {
        let mut body = Vec::new();
        name("dylink.0", &mut body);
        // A mem-info subsection (type 1) to skip, then needed (type 2): one library.
        body.extend_from_slice(&[1, 2, 0, 0]);
        let mut needed = Vec::new();
        leb(1, &mut needed);
        name("libpython3.14.so", &mut needed);
        body.push(2);
        leb(needed.len(), &mut body);
        body.extend_from_slice(&needed);
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        section(0, &body, &mut wasm);
        let found = producers(&wasm);
        assert_eq!(found[0].field, "needed");
        assert_eq!(found[0].name, "libpython3.14.so");
        assert_eq!(PluginKind::of(&found), PluginKind::Python);
    }

    #[test]
    fn truncated_or_lying_sections_are_not_read_and_never_panic() {
        let whole = module(&[("processed-by", "componentize-js", "0.19")]);
        for cut in 0..whole.len() {
            let _ = producers(&whole[..cut]);
        }
        // A name that would rewrite the terminal is escaped.
        let forged = producers(&module(&[("language", "Rust\u{1b}[2J\nkind python", "1")]));
        assert!(!forged[0].name.contains('\n') && !forged[0].name.contains('\u{1b}'));
        // A section claiming 4 GiB, and a name claiming more than the section holds.
        let mut lying = b"\0asm\x01\0\0\0\0\xff\xff\xff\xff\x0f".to_vec();
        lying.extend_from_slice(b"producers");
        assert!(producers(&lying).is_empty());
        let mut short = b"\0asm\x01\0\0\0\0\x05".to_vec();
        short.extend_from_slice(&[0x7f, b'p', b'r', b'o', b'd']);
        assert!(producers(&short).is_empty());
    }
}
