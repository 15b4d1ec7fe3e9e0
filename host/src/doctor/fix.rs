//! `--fix`: a classic role with the doctor's findings applied, for the collaborator to review
//! before writing it back (the doctor never writes to Vault).

use attestgate_vault_role::jwt::ROLE_FIELDS;
use attestgate_vault_role::lint::{claim_shape, closest, ClaimShape};
use attestgate_vault_role::lookup::pointer;
use serde_json::{json, Map, Value};

/// The role with what can be fixed mechanically fixed:
/// - misspelled keys renamed to the real key (`claims_mappings` → `claim_mappings`), other
///   unknown keys removed;
/// - `role_type` set to `jwt`;
/// - whitespace trimmed from bound values;
/// - `claim_mappings` kept only for string claims, with metadata keys that are plain names;
/// - `bound_subject` pinned to one instance dropped, its project bound instead;
/// - `dbgstat` bound to `disabled-since-boot` when no production binding exists.
pub fn fix_role(role: &Map<String, Value>) -> Map<String, Value> {
    let mut fixed = Map::new();
    for (key, value) in role {
        if ROLE_FIELDS.contains(&key.as_str()) {
            fixed.insert(key.clone(), value.clone());
        } else if let Some(real) = closest(key, ROLE_FIELDS) {
            if !role.contains_key(real) {
                fixed.insert(real.to_owned(), value.clone());
            }
        }
    }
    fixed.insert("role_type".into(), json!("jwt"));
    for key in ["bound_audiences", "bound_subject", "bound_claims"] {
        if let Some(value) = fixed.get_mut(key) {
            trim_strings(value);
        }
    }

    if let Some(Value::Object(mappings)) = fixed.get_mut("claim_mappings") {
        let kept: Map<String, Value> = std::mem::take(mappings)
            .into_iter()
            .filter(|(source, _)| {
                matches!(
                    claim_shape(&pointer(source)),
                    Some(ClaimShape::String) | None
                )
            })
            .map(|(source, target)| {
                let target = match target.as_str() {
                    Some(name) if name.contains('/') => {
                        json!(name.rsplit('/').next().unwrap_or(name))
                    }
                    _ => target,
                };
                (source, target)
            })
            .collect();
        *mappings = kept;
    }

    let subject = fixed
        .get("bound_subject")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if subject.contains("/instances/") {
        fixed.remove("bound_subject");
        let project = subject
            .split("/projects/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        let bound = bound_claims(&mut fixed);
        if let Some(project) = project {
            if !bound
                .keys()
                .any(|k| pointer(k) == "/submods/gce/project_id")
            {
                bound.insert("/submods/gce/project_id".into(), json!([project]));
            }
        }
    }
    let bound = bound_claims(&mut fixed);
    if !bound.keys().any(|k| pointer(k) == "/dbgstat") {
        bound.insert("dbgstat".into(), json!("disabled-since-boot"));
    }
    fixed
}

fn bound_claims(role: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = role
        .entry("bound_claims")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object above"),
    }
}

fn trim_strings(value: &mut Value) {
    match value {
        Value::String(s) => {
            let trimmed: String = s
                .trim()
                .chars()
                .filter(|c| !matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'))
                .collect();
            *s = trimmed;
        }
        Value::Array(items) => items.iter_mut().for_each(trim_strings),
        Value::Object(map) => map.values_mut().for_each(trim_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attestgate_vault_role::lint::{lint_jwt_role, Severity};
    use attestgate_vault_role::JwtRole;

    fn seed() -> Map<String, Value> {
        serde_json::from_str(include_str!(
            "../../../examples/roles/seed-role-as-written.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_seed_roles_four_traps_and_its_instance_pin_are_fixed() {
        let fixed = fix_role(&seed());
        assert!(!fixed.contains_key("claims_mappings"));
        assert!(!fixed.contains_key("bound_subject"));
        let mappings = fixed["claim_mappings"].as_object().unwrap();
        assert!(!mappings.contains_key("google_service_accounts"));
        assert!(!mappings.contains_key("/submods/confidential_space/support_attributes"));
        assert_eq!(
            mappings["/submods/container/image_digest"],
            json!("image_digest")
        );
        let digest = &fixed["bound_claims"]["/submods/container/image_digest"][0];
        assert_eq!(digest.as_str().unwrap().trim(), digest.as_str().unwrap());
        assert_eq!(
            fixed["bound_claims"]["dbgstat"],
            json!("disabled-since-boot")
        );
        assert_eq!(
            fixed["bound_claims"]["/submods/gce/project_id"],
            json!(["operator-project"])
        );
        let role = JwtRole::from_json(&fixed).unwrap();
        let errors: Vec<_> = lint_jwt_role(&role)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
}
