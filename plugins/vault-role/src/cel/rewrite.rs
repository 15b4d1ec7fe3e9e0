//! Field selection with cel-go's semantics, by rewriting the parsed program before it runs.
//!
//! cel-go answers `x.f` on a value that is not a map with `no such key: f`, and `has(x.f)` on it
//! with `false`; the `cel` crate fails both with an overload error that no longer names the field.
//! The rewrite turns every `x.f` into `@select(x, 'f')` and every `has(x.f)` into
//! `@has(x, 'f')`, two functions of this plugin's environment that behave as cel-go does. The
//! checker works on the program as written, so positions are unchanged.
//!
//! It also resolves namespaced functions (`math.greatest(…)`, `sets.contains(…)`,
//! `base64.encode(…)`): the Pratt parser reads them as member calls on an identifier, where the
//! environment-aware parser names the function `math.greatest`; a declared variable of the same
//! name keeps the member call, as in cel-go.

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelString, Kind, DYN_TYPE, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{Env, ExecutionError};
use std::sync::Arc;

const SELECT: &str = "@select";
const HAS: &str = "@has";

/// The namespaces of the extension functions in the environment.
const NAMESPACES: &[&str] = &["math", "base64", "sets", "strings", "lists"];

/// Rewrites every field selection in `expr`, and resolves namespaced function calls; `declared`
/// are the variables in scope (they shadow a namespace).
pub fn selections(expr: &mut IdedExpr, declared: &[&str]) {
    if let Expr::Call(call) = &mut expr.expr {
        let namespace = match call.target.as_deref() {
            Some(IdedExpr {
                expr: Expr::Ident(name),
                ..
            }) if NAMESPACES.contains(&name.as_str()) && !declared.contains(&name.as_str()) => {
                Some(name.clone())
            }
            _ => None,
        };
        if let Some(namespace) = namespace {
            call.target = None;
            call.func_name = format!("{namespace}.{}", call.func_name);
        }
    }
    match &mut expr.expr {
        Expr::Select(select) => {
            selections(&mut select.operand, declared);
            let function = if select.test { HAS } else { SELECT };
            let operand = std::mem::take(&mut *select.operand);
            let field = IdedExpr {
                // Ids only locate expressions in the source; this literal has no place there.
                id: u64::MAX,
                expr: Expr::Literal(LiteralValue::String(CelString::from(select.field.clone()))),
            };
            expr.expr = Expr::Call(CallExpr {
                func_name: function.to_owned(),
                target: None,
                args: vec![operand, field],
            });
        }
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                selections(target, declared);
            }
            for arg in &mut call.args {
                selections(arg, declared);
            }
        }
        Expr::Comprehension(c) => {
            for e in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                selections(e, declared);
            }
        }
        Expr::List(list) => {
            for element in &mut list.elements {
                selections(element, declared);
            }
        }
        Expr::Map(map) => {
            for entry in &mut map.entries {
                if let EntryExpr::MapEntry(entry) = &mut entry.expr {
                    selections(&mut entry.key, declared);
                    selections(&mut entry.value, declared);
                }
            }
        }
        Expr::Struct(strct) => {
            for entry in &mut strct.entries {
                if let EntryExpr::StructField(field) = &mut entry.expr {
                    selections(&mut field.value, declared);
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn field_name(field: &CowVal<'_, '_>) -> String {
    field
        .downcast_ref::<CelString>()
        .map(|s| s.inner().to_owned())
        .unwrap_or_default()
}

/// Whether a value has fields to select: a map or a message.
fn has_fields(value: &CowVal<'_, '_>) -> bool {
    matches!(value.get_type().kind(), Kind::Map | Kind::Struct)
}

fn select<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (Some(field), Some(operand)) = (args.pop(), args.pop()) else {
        return Err(ExecutionError::MissingArgumentOrTarget);
    };
    let name = field_name(&field);
    let no_such_key = || ExecutionError::NoSuchKey(Arc::new(name.clone()));
    if !has_fields(&operand) {
        return Err(no_such_key());
    }
    let found = match operand {
        CowVal::Borrowed(value) => value.as_indexer().map(|i| i.get(field.as_ref())),
        CowVal::Owned(value) => value
            .as_indexer()
            .map(|i| i.get(field.as_ref()).map(|v| CowVal::Owned(v.into_owned()))),
    };
    match found {
        Some(Ok(value)) => Ok(value),
        _ => Err(no_such_key()),
    }
}

fn has<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (Some(field), Some(operand)) = (args.pop(), args.pop()) else {
        return Err(ExecutionError::MissingArgumentOrTarget);
    };
    let present = has_fields(&operand)
        && operand
            .as_indexer()
            .is_some_and(|i| i.get(field.as_ref()).is_ok());
    let value: Box<dyn cel::common::value::Val> = cel::Value::Bool(present)
        .try_into()
        .map_err(|_| ExecutionError::MissingArgumentOrTarget)?;
    Ok(CowVal::Owned(value))
}

/// Adds `@select` and `@has` to `env`.
pub fn add_functions(env: &mut Env) {
    // Names no program can spell: they cannot clash with the standard library.
    let _ = env.add_overload(
        SELECT,
        "attestgate_select",
        vec![DYN_TYPE, STRING_TYPE],
        select,
    );
    let _ = env.add_overload(HAS, "attestgate_has", vec![DYN_TYPE, STRING_TYPE], has);
}
