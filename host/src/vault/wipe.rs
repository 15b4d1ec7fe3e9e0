//! Wiping Vault responses: secrets and tokens are zeroed in memory before they are dropped.

/// Zeroes every string in a Vault response (secrets, tokens) in place, before it is dropped.
pub fn wipe(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => zeroize::Zeroize::zeroize(s),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}
