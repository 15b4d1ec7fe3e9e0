//! How Vault's JWT plugin reads a claim (`getClaim`), compares it (`normalizeList`, Go's `!=`,
//! `ryanuber/go-glob`), and prints it (Go's `%v`) in its error texts.

use serde_json::Value;

/// A claim value as `getClaim` hands it on: a number becomes its integer text (Vault's
/// `json.Number(strconv.Itoa(int(v)))`, truncating), everything else stays as decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum GoValue {
    /// A JSON string.
    String(String),
    /// A JSON boolean.
    Bool(bool),
    /// A `json.Number`, compared by its text.
    Number(String),
    /// A number inside a list: a Go `float64`, which never equals a bound `json.Number`.
    Float(f64),
    /// A list.
    List(Vec<GoValue>),
    /// An object (never comparable).
    Map(Value),
    /// JSON null inside a list.
    Null,
}

impl GoValue {
    /// A claim fetched by `getClaim`: top-level numbers truncate to their integer text.
    pub fn from_claim(value: &Value) -> Option<GoValue> {
        match value {
            Value::Null => None,
            Value::Number(n) => Some(GoValue::Number(
                (n.as_f64().unwrap_or(0.0) as i64).to_string(),
            )),
            other => Some(GoValue::nested(other)),
        }
    }

    /// A value from the role's JSON, decoded with `UseNumber`: numbers keep their text.
    pub fn from_role(value: &Value) -> GoValue {
        match value {
            Value::Number(n) => GoValue::Number(n.to_string()),
            Value::Array(items) => GoValue::List(items.iter().map(GoValue::from_role).collect()),
            other => GoValue::nested(other),
        }
    }

    fn nested(value: &Value) -> GoValue {
        match value {
            Value::Null => GoValue::Null,
            Value::Bool(b) => GoValue::Bool(*b),
            Value::String(s) => GoValue::String(s.clone()),
            Value::Number(n) => GoValue::Float(n.as_f64().unwrap_or(0.0)),
            Value::Array(items) => GoValue::List(items.iter().map(GoValue::nested).collect()),
            Value::Object(_) => GoValue::Map(value.clone()),
        }
    }

    /// `normalizeList`: a string, bool or number is a list of one; a list is itself; anything
    /// else is refused.
    pub fn normalize(&self) -> Option<Vec<&GoValue>> {
        match self {
            GoValue::List(items) => Some(items.iter().collect()),
            GoValue::String(_) | GoValue::Bool(_) | GoValue::Number(_) => Some(vec![self]),
            _ => None,
        }
    }

    /// Go's `!=` between two interface values, negated: same dynamic type and equal value.
    pub fn go_equal(&self, other: &GoValue) -> bool {
        match (self, other) {
            (GoValue::String(a), GoValue::String(b)) => a == b,
            (GoValue::Bool(a), GoValue::Bool(b)) => a == b,
            (GoValue::Number(a), GoValue::Number(b)) => a == b,
            (GoValue::Float(a), GoValue::Float(b)) => a == b,
            (GoValue::Null, GoValue::Null) => true,
            _ => false,
        }
    }

    /// Go's `%v` of the value.
    pub fn go_format(&self) -> String {
        match self {
            GoValue::String(s) | GoValue::Number(s) => s.clone(),
            GoValue::Bool(b) => b.to_string(),
            GoValue::Float(f) => go_float(*f),
            GoValue::Null => "<nil>".into(),
            GoValue::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(GoValue::go_format)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            GoValue::Map(value) => go_format_json(value),
        }
    }
}

/// Go's `%v` of a decoded JSON value (`map[k:v]` with sorted keys, `[a b]`, floats as `%g`).
fn go_format_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_format_json(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        other => GoValue::nested(other).go_format(),
    }
}

/// Go's `%v` of a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits,
/// in exponent form when the exponent is below -4 or at least 6 (`1.9e+09`).
fn go_float(f: f64) -> String {
    if !f.is_finite() {
        return match f {
            f if f.is_nan() => "NaN".into(),
            f if f > 0.0 => "+Inf".into(),
            _ => "-Inf".into(),
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.9e9".
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exponent) {
        go_exponent(mantissa, exponent)
    } else {
        format!("{f}")
    }
}

fn go_exponent(mantissa: &str, exponent: i32) -> String {
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// Whether Go's `unicode.IsPrint` holds for `c`, closely enough for the texts Vault quotes:
/// control characters, format characters (zero-width spaces, direction marks, the BOM) and
/// every space but U+0020 are not printable.
fn go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
            | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}'))
}

/// Go's `%q` of a string (`strconv.Quote`): double quotes, `\"` and `\\` escaped, and every
/// character that is not printable as `\n`, `\t`, … or `\u200b`.
pub fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if go_printable(c) => quoted.push(c),
            c if (c as u32) < 0x80 => quoted.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    quoted.push('"');
    quoted
}

/// `getClaim`: a key starting with `/` is a JSON pointer, any other key a top-level claim.
pub fn claim<'a>(claims: &'a Value, key: &str) -> Option<&'a Value> {
    if key.starts_with('/') {
        claims.pointer(key)
    } else {
        claims.get(key)
    }
    .filter(|v| !v.is_null())
}

/// The JSON pointer a claim key names, for reasons: `hwmodel` → `/hwmodel`.
pub fn pointer(key: &str) -> String {
    if key.starts_with('/') {
        key.to_owned()
    } else {
        format!("/{}", key.replace('~', "~0").replace('/', "~1"))
    }
}

/// `ryanuber/go-glob`: `*` matches any run of characters (`/` included); nothing else is
/// special, and matching is case-sensitive.
pub fn glob_match(pattern: &str, subject: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == subject;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !subject.starts_with(first) {
        return false;
    }
    let mut rest = &subject[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_glob_has_only_the_star() {
        assert!(glob_match("operator-*", "operator-project"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "a/x/b/y/c"));
        assert!(!glob_match("a*b*c", "a/x/c/y/b"));
        assert!(!glob_match("operator-?", "operator-p"));
        assert!(glob_match("operator-?", "operator-?"));
        assert!(!glob_match("Operator-*", "operator-project"));
        // go-glob checks the suffix against what is left after the middle parts.
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn numbers_compare_as_vault_compares_them() {
        let exp = GoValue::from_claim(&json!(1_900_000_000.7)).unwrap();
        assert!(exp.go_equal(&GoValue::from_role(&json!(1_900_000_000))));
        assert!(!exp.go_equal(&GoValue::from_role(&json!("1900000000"))));
        assert!(!exp.go_equal(&GoValue::from_role(&json!(1_900_000_000.0))));
        let listed = GoValue::from_claim(&json!([5])).unwrap();
        assert!(!listed.normalize().unwrap()[0].go_equal(&GoValue::from_role(&json!(5))));
    }

    #[test]
    fn strings_quote_as_go_quotes_them() {
        assert_eq!(go_quote("hwmodel"), "\"hwmodel\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("sha256:ab\u{200B} \n"), "\"sha256:ab\\u200b \\n\"");
        assert_eq!(go_quote("\u{1}é\u{a0}"), "\"\\x01é\\u00a0\"");
    }

    #[test]
    fn values_print_as_go_prints_them() {
        let object =
            GoValue::from_claim(&json!({"b": [1, "x"], "a": 1_900_000_000, "c": 260600, "d": 0.5}))
                .unwrap();
        assert_eq!(object.go_format(), "map[a:1.9e+09 b:[1 x] c:260600 d:0.5]");
        assert_eq!(
            GoValue::from_claim(&json!([true, null]))
                .unwrap()
                .go_format(),
            "[true <nil>]"
        );
    }
}
