//! cel-go's `sets` extension, which OpenBao's CEL environment has and the `cel` crate does not:
//! `sets.contains(a, b)` (every element of `b` is in `a`), `sets.equivalent(a, b)` (each contains
//! the other) and `sets.intersects(a, b)` (they share an element). Elements compare as CEL's `==`
//! does, so `1`, `1u` and `1.0` are the same element.

use cel::common::types::LIST_TYPE;
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, Value};

fn elements(list: &CowVal<'_, '_>) -> Result<Vec<Value>, ExecutionError> {
    match Value::try_from(list.as_ref()) {
        Ok(Value::List(items)) => Ok(items.as_ref().clone()),
        _ => Err(ExecutionError::function_error("sets", "no such overload")),
    }
}

/// CEL equality, numbers compared by value across int, uint and double.
fn equal(a: &Value, b: &Value) -> bool {
    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn contains_all(a: &[Value], b: &[Value]) -> bool {
    b.iter().all(|x| a.iter().any(|y| equal(x, y)))
}

fn boolean<'b, 'v>(value: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let boxed: Box<dyn Val> = Value::Bool(value)
        .try_into()
        .map_err(|_| ExecutionError::function_error("sets", "no such overload"))?;
    Ok(CowVal::Owned(boxed))
}

fn pair(args: &[CowVal<'_, '_>]) -> Result<(Vec<Value>, Vec<Value>), ExecutionError> {
    match args {
        [a, b] => Ok((elements(a)?, elements(b)?)),
        _ => Err(ExecutionError::MissingArgumentOrTarget),
    }
}

fn contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = pair(&args)?;
    boolean(contains_all(&a, &b))
}

fn equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = pair(&args)?;
    boolean(contains_all(&a, &b) && contains_all(&b, &a))
}

fn intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = pair(&args)?;
    boolean(a.iter().any(|x| b.iter().any(|y| equal(x, y))))
}

/// Adds the three functions to `env`.
pub fn add_functions(env: &mut Env) {
    let lists = || vec![LIST_TYPE, LIST_TYPE];
    let _ = env.add_overload("sets.contains", "sets_contains", lists(), contains);
    let _ = env.add_overload("sets.equivalent", "sets_equivalent", lists(), equivalent);
    let _ = env.add_overload("sets.intersects", "sets_intersects", lists(), intersects);
}
