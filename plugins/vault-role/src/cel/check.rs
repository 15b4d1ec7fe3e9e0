//! The checks OpenBao runs when a CEL role is **written**, so that a program OpenBao would refuse
//! to store is refused by `validate-config` instead of failing every login.
//!
//! OpenBao type-checks the program with cel-go's checker: `claims` is a map of dynamic values,
//! each variable is dynamic, and `pb.Auth` is a protobuf message with typed fields. The `cel`
//! crate has no checker, so this module infers types where they are known statically (literals,
//! operators on them, `pb.Auth` fields) and reports what cel-go's checker reports, with its
//! wording and position: undeclared references, undefined or mistyped `pb.Auth` fields, and
//! operators or functions applied to arguments no overload takes. Anything that depends on a
//! claim is dynamic and passes, as it does in cel-go.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::program::{pb_auth_field, FieldType, Parsed, PB_AUTH};

/// A statically known type, or `Dyn`.
#[derive(Debug, Clone, PartialEq)]
enum T {
    Int,
    Uint,
    Double,
    String,
    Bool,
    Bytes,
    Null,
    List(Box<T>),
    Map(Box<T>, Box<T>),
    Timestamp,
    Duration,
    PbAuth,
    Type,
    Dyn,
}

impl T {
    fn name(&self) -> String {
        match self {
            T::Int => "int".into(),
            T::Uint => "uint".into(),
            T::Double => "double".into(),
            T::String => "string".into(),
            T::Bool => "bool".into(),
            T::Bytes => "bytes".into(),
            T::Null => "null_type".into(),
            T::List(e) => format!("list({})", e.name()),
            T::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            T::Timestamp => "google.protobuf.Timestamp".into(),
            T::Duration => "google.protobuf.Duration".into(),
            T::PbAuth => PB_AUTH.into(),
            T::Type => "type".into(),
            T::Dyn => "dyn".into(),
        }
    }

    /// Whether nothing is known about it (so any overload may apply at run time).
    fn is_dyn(&self) -> bool {
        matches!(self, T::Dyn)
    }

    fn join(a: T, b: T) -> T {
        if a == b {
            a
        } else {
            T::Dyn
        }
    }
}

/// A checker finding: cel-go's message and where it points.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Finding {
    /// cel-go's rendering: `ERROR: <input>:L:C: message`, the source line, and a caret.
    pub fn render(&self, source: &str) -> String {
        let line = source.lines().nth(self.line - 1).unwrap_or("");
        format!(
            "ERROR: <input>:{}:{}: {}\n | {}\n | {}^",
            self.line,
            self.column,
            self.message,
            line,
            ".".repeat(self.column - 1)
        )
    }
}

struct Checker<'a> {
    program: &'a Parsed,
    scope: Vec<(String, T)>,
}

/// Type-checks one parsed expression with `declared` variables (besides `claims`, `now` and
/// `operation`) in scope. Returns the first finding, as cel-go reports the first error first.
pub fn check(program: &Parsed, declared: &[&str]) -> Result<(), Finding> {
    let mut scope = vec![
        (
            "claims".to_owned(),
            T::Map(Box::new(T::String), Box::new(T::Dyn)),
        ),
        ("now".to_owned(), T::Timestamp),
        ("operation".to_owned(), T::String),
    ];
    scope.extend(declared.iter().map(|name| (name.to_string(), T::Dyn)));
    let mut checker = Checker { program, scope };
    checker.expr(program.expression()).map(|_| ())
}

const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// Namespaces of extension functions (`math.greatest`, `base64.encode`, …).
const NAMESPACES: &[&str] = &["math", "base64", "strings", "lists", "sets", "optional"];

fn overload_error(function: &str, args: &[T]) -> String {
    let names: Vec<String> = args.iter().map(T::name).collect();
    format!(
        "found no matching overload for '{function}' applied to '({})'",
        names.join(", ")
    )
}

fn member_overload_error(function: &str, target: &T, args: &[T]) -> String {
    let names: Vec<String> = args.iter().map(T::name).collect();
    format!(
        "found no matching overload for '{function}' applied to '{}.({})'",
        target.name(),
        names.join(", ")
    )
}

impl Checker<'_> {
    fn finding(&self, id: u64, message: String) -> Finding {
        let source = self.program.source_info();
        let (line, column) = match source.offset_for(id) {
            Some((start, _)) => {
                // Offsets count characters of the source, as cel-go's do.
                let text: String = self.source_text();
                let before: Vec<char> = text.chars().take(start as usize).collect();
                let line = before.iter().filter(|c| **c == '\n').count() + 1;
                let column = before.iter().rev().take_while(|c| **c != '\n').count() + 1;
                (line, column)
            }
            None => (1, 1),
        };
        Finding {
            line,
            column,
            message,
        }
    }

    fn source_text(&self) -> String {
        let info = self.program.source_info();
        let mut text = String::new();
        let mut line = 0;
        while let Some(l) = info.snippet(line) {
            if line > 0 {
                text.push('\n');
            }
            text.push_str(l);
            line += 1;
        }
        text
    }

    fn lookup(&self, name: &str) -> Option<T> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }

    fn expr(&mut self, e: &IdedExpr) -> Result<T, Finding> {
        match &e.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => T::Bool,
                LiteralValue::Bytes(_) => T::Bytes,
                LiteralValue::Double(_) => T::Double,
                LiteralValue::Int(_) => T::Int,
                LiteralValue::Null => T::Null,
                LiteralValue::String(_) => T::String,
                LiteralValue::UInt(_) => T::Uint,
            }),
            Expr::Ident(name) => {
                if let Some(t) = self.lookup(name) {
                    Ok(t)
                } else if TYPE_NAMES.contains(&name.as_str()) {
                    Ok(T::Type)
                } else {
                    Err(self.finding(
                        e.id,
                        format!("undeclared reference to '{name}' (in container '')"),
                    ))
                }
            }
            Expr::List(list) => {
                let mut element: Option<T> = None;
                for item in &list.elements {
                    let t = self.expr(item)?;
                    element = Some(match element {
                        None => t,
                        Some(prev) => T::join(prev, t),
                    });
                }
                Ok(T::List(Box::new(element.unwrap_or(T::Dyn))))
            }
            Expr::Map(map) => {
                let (mut key, mut value): (Option<T>, Option<T>) = (None, None);
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        let k = self.expr(&entry.key)?;
                        let v = self.expr(&entry.value)?;
                        key = Some(key.map_or(k.clone(), |p| T::join(p, k)));
                        value = Some(value.map_or(v.clone(), |p| T::join(p, v)));
                    }
                }
                Ok(T::Map(
                    Box::new(key.unwrap_or(T::Dyn)),
                    Box::new(value.unwrap_or(T::Dyn)),
                ))
            }
            Expr::Select(select) => {
                // `math.greatest` and friends parse as selections of a namespace.
                if let Expr::Ident(root) = &select.operand.expr {
                    if self.lookup(root).is_none() && NAMESPACES.contains(&root.as_str()) {
                        return Ok(T::Dyn);
                    }
                }
                let operand = self.expr(&select.operand)?;
                if select.test {
                    return Ok(T::Bool);
                }
                Ok(match operand {
                    T::Map(_, value) => *value,
                    T::PbAuth => match pb_auth_field(&select.field) {
                        Some(field) => field_type(field),
                        None => T::Dyn,
                    },
                    _ => T::Dyn,
                })
            }
            Expr::Struct(strct) => {
                if strct.type_name != PB_AUTH {
                    return Err(self.finding(
                        e.id,
                        format!(
                            "undeclared reference to '{}' (in container '')",
                            strct.type_name
                        ),
                    ));
                }
                for entry in &strct.entries {
                    if let EntryExpr::StructField(field) = &entry.expr {
                        let provided = self.expr(&field.value)?;
                        let Some(expected) = pb_auth_field(&field.field) else {
                            return Err(self
                                .finding(entry.id, format!("undefined field '{}'", field.field)));
                        };
                        if !assignable(expected, &provided) {
                            return Err(self.finding(
                                entry.id,
                                format!(
                                    "expected type of field '{}' is '{}' but provided type is '{}'",
                                    field.field,
                                    expected.checker_name(),
                                    provided.name()
                                ),
                            ));
                        }
                    }
                }
                Ok(T::PbAuth)
            }
            Expr::Comprehension(c) => {
                let range = self.expr(&c.iter_range)?;
                let element = match &range {
                    T::List(e) => (**e).clone(),
                    T::Map(k, _) => (**k).clone(),
                    _ => T::Dyn,
                };
                let accu = self.expr(&c.accu_init)?;
                let depth = self.scope.len();
                self.scope.push((c.iter_var.clone(), element));
                if let Some(second) = &c.iter_var2 {
                    self.scope.push((second.clone(), T::Dyn));
                }
                self.scope.push((c.accu_var.clone(), accu));
                let result = (|| {
                    self.expr(&c.loop_cond)?;
                    let step = self.expr(&c.loop_step)?;
                    // The accumulator takes the step's type (a `map` builds a list of its results).
                    if let Some(slot) = self.scope.last_mut() {
                        if slot.1 != step {
                            slot.1 = match (&slot.1, &step) {
                                (T::List(_), T::List(_)) => step.clone(),
                                _ => T::join(slot.1.clone(), step.clone()),
                            };
                        }
                    }
                    self.expr(&c.result)
                })();
                self.scope.truncate(depth);
                result
            }
            Expr::Call(call) => {
                let target = match &call.target {
                    Some(t) => {
                        if let Expr::Ident(root) = &t.expr {
                            if self.lookup(root).is_none() && NAMESPACES.contains(&root.as_str()) {
                                for arg in &call.args {
                                    self.expr(arg)?;
                                }
                                return Ok(T::Dyn);
                            }
                        }
                        Some(self.expr(t)?)
                    }
                    None => None,
                };
                let mut args = Vec::with_capacity(call.args.len());
                for arg in &call.args {
                    args.push(self.expr(arg)?);
                }
                self.call(e.id, &call.func_name, target, args)
            }
            Expr::Unspecified => Ok(T::Dyn),
        }
    }

    fn call(&self, id: u64, function: &str, target: Option<T>, args: Vec<T>) -> Result<T, Finding> {
        let fail = |message| Err(self.finding(id, message));
        let known = |t: &T| !t.is_dyn();
        if let Some(target) = target {
            return match function {
                "startsWith" | "endsWith" | "contains" | "matches" => {
                    let ok = matches!(target, T::String | T::Dyn)
                        && args.len() == 1
                        && matches!(args[0], T::String | T::Dyn);
                    if ok {
                        Ok(T::Bool)
                    } else {
                        fail(member_overload_error(function, &target, &args))
                    }
                }
                "size" => match target {
                    T::String | T::Bytes | T::List(_) | T::Map(..) | T::Dyn => Ok(T::Int),
                    _ => fail(member_overload_error(function, &target, &args)),
                },
                "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt"
                | "format" | "reverse" => Ok(T::String),
                "split" => Ok(T::List(Box::new(T::String))),
                "indexOf" | "lastIndexOf" => Ok(T::Int),
                _ => Ok(T::Dyn),
            };
        }
        match function {
            "_&&_" | "_||_" => {
                if args.iter().all(|t| matches!(t, T::Bool | T::Dyn)) {
                    Ok(T::Bool)
                } else {
                    fail(overload_error(function, &args))
                }
            }
            "!_" => match args.first() {
                Some(T::Bool | T::Dyn) => Ok(T::Bool),
                _ => fail(overload_error(function, &args)),
            },
            "_?_:_" => {
                if !matches!(args[0], T::Bool | T::Dyn) {
                    return fail(overload_error(function, &args));
                }
                Ok(T::join(args[1].clone(), args[2].clone()))
            }
            "_==_" | "_!=_" => {
                let (a, b) = (&args[0], &args[1]);
                let comparable = !known(a)
                    || !known(b)
                    || a == b
                    || matches!(a, T::Null)
                    || matches!(b, T::Null)
                    || (matches!(a, T::List(_)) && matches!(b, T::List(_)))
                    || (matches!(a, T::Map(..)) && matches!(b, T::Map(..)));
                if comparable {
                    Ok(T::Bool)
                } else {
                    fail(overload_error(function, &args))
                }
            }
            "_<_" | "_<=_" | "_>_" | "_>=_" | "_+_" | "_-_" | "_*_" | "_/_" | "_%_" => {
                let (a, b) = (&args[0], &args[1]);
                // Every overload the arguments may select; as in cel-go, the result type is
                // known when they all agree on it (`dyn + 1` is an int), dynamic otherwise.
                let results: Vec<T> = binary_overloads(function)
                    .iter()
                    .filter(|(x, y, _)| x.admits(a) && y.admits(b))
                    .map(|(x, _, result)| result.of(*x, a))
                    .collect();
                match results.split_first() {
                    None => fail(overload_error(function, &args)),
                    Some((first, rest)) if rest.iter().all(|r| r == first) => Ok(first.clone()),
                    Some(_) => Ok(T::Dyn),
                }
            }
            "-_" => match args.first() {
                Some(t @ (T::Int | T::Double | T::Duration | T::Dyn)) => Ok(t.clone()),
                _ => fail(overload_error(function, &args)),
            },
            "@in" => match &args[1] {
                T::List(_) | T::Map(..) | T::Dyn => Ok(T::Bool),
                _ => fail(overload_error(function, &args)),
            },
            "_[_]" => Ok(match (&args[0], &args[1]) {
                (T::List(element), T::Int | T::Uint | T::Dyn) => (**element).clone(),
                (T::Map(_, value), _) => (**value).clone(),
                (T::Dyn, _) => T::Dyn,
                _ => return fail(overload_error(function, &args)),
            }),
            "size" => match args.first() {
                Some(T::String | T::Bytes | T::List(_) | T::Map(..) | T::Dyn) => Ok(T::Int),
                _ => fail(overload_error(function, &args)),
            },
            "int" => Ok(T::Int),
            "uint" => Ok(T::Uint),
            "double" => Ok(T::Double),
            "string" => Ok(T::String),
            "bool" => Ok(T::Bool),
            "bytes" => Ok(T::Bytes),
            "timestamp" => Ok(T::Timestamp),
            "duration" => Ok(T::Duration),
            "type" => Ok(T::Type),
            "@not_strictly_false" => Ok(T::Bool),
            _ => Ok(T::Dyn),
        }
    }
}

/// The kind of one operand of a standard binary operator's overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Bool,
    List,
    Timestamp,
    Duration,
}

impl K {
    fn as_type(self) -> T {
        match self {
            K::Int => T::Int,
            K::Uint => T::Uint,
            K::Double => T::Double,
            K::String => T::String,
            K::Bytes => T::Bytes,
            K::Bool => T::Bool,
            K::List => T::List(Box::new(T::Dyn)),
            K::Timestamp => T::Timestamp,
            K::Duration => T::Duration,
        }
    }

    /// Whether an argument of type `t` can be this operand: a dynamic one can be anything.
    fn admits(self, t: &T) -> bool {
        matches!(
            (self, t),
            (_, T::Dyn)
                | (K::Int, T::Int)
                | (K::Uint, T::Uint)
                | (K::Double, T::Double)
                | (K::String, T::String)
                | (K::Bytes, T::Bytes)
                | (K::Bool, T::Bool)
                | (K::List, T::List(_))
                | (K::Timestamp, T::Timestamp)
                | (K::Duration, T::Duration)
        )
    }
}

/// An overload's result: the first operand's type, a fixed one, or a list joining both.
#[derive(Debug, Clone, Copy)]
enum R {
    Same,
    Bool,
    Duration,
    Timestamp,
}

impl R {
    /// The result of an overload whose first operand is of kind `kind`, given a first argument
    /// of type `first`.
    fn of(self, kind: K, first: &T) -> T {
        match self {
            R::Same if !first.is_dyn() => first.clone(),
            R::Same => kind.as_type(),
            R::Bool => T::Bool,
            R::Duration => T::Duration,
            R::Timestamp => T::Timestamp,
        }
    }
}

/// cel-go's standard overloads of the arithmetic and ordering operators, as OpenBao declares
/// them: same-kind operands only (no cross-type numeric comparisons: `size(x) > 0u` is refused).
fn binary_overloads(function: &str) -> &'static [(K, K, R)] {
    const ORDERED: &[(K, K, R)] = &[
        (K::Bool, K::Bool, R::Bool),
        (K::Int, K::Int, R::Bool),
        (K::Uint, K::Uint, R::Bool),
        (K::Double, K::Double, R::Bool),
        (K::String, K::String, R::Bool),
        (K::Bytes, K::Bytes, R::Bool),
        (K::Timestamp, K::Timestamp, R::Bool),
        (K::Duration, K::Duration, R::Bool),
    ];
    const ADD: &[(K, K, R)] = &[
        (K::Int, K::Int, R::Same),
        (K::Uint, K::Uint, R::Same),
        (K::Double, K::Double, R::Same),
        (K::String, K::String, R::Same),
        (K::Bytes, K::Bytes, R::Same),
        (K::List, K::List, R::Same),
        (K::Timestamp, K::Duration, R::Timestamp),
        (K::Duration, K::Timestamp, R::Timestamp),
        (K::Duration, K::Duration, R::Duration),
    ];
    const SUBTRACT: &[(K, K, R)] = &[
        (K::Int, K::Int, R::Same),
        (K::Uint, K::Uint, R::Same),
        (K::Double, K::Double, R::Same),
        (K::Timestamp, K::Timestamp, R::Duration),
        (K::Timestamp, K::Duration, R::Timestamp),
        (K::Duration, K::Duration, R::Duration),
    ];
    const MULTIPLY: &[(K, K, R)] = &[
        (K::Int, K::Int, R::Same),
        (K::Uint, K::Uint, R::Same),
        (K::Double, K::Double, R::Same),
    ];
    const MODULO: &[(K, K, R)] = &[(K::Int, K::Int, R::Same), (K::Uint, K::Uint, R::Same)];
    match function {
        "_+_" => ADD,
        "_-_" => SUBTRACT,
        "_*_" | "_/_" => MULTIPLY,
        "_%_" => MODULO,
        _ => ORDERED,
    }
}

fn field_type(field: FieldType) -> T {
    match field {
        FieldType::String => T::String,
        FieldType::StringList => T::List(Box::new(T::String)),
        FieldType::StringMap => T::Map(Box::new(T::String), Box::new(T::String)),
        FieldType::Int => T::Int,
        FieldType::Uint => T::Uint,
        FieldType::Bool => T::Bool,
        FieldType::Message(_) => T::Dyn,
    }
}

/// Whether cel-go's checker lets a value of type `provided` into a field of type `expected`:
/// dynamic parts always fit; known parts must match.
fn assignable(expected: FieldType, provided: &T) -> bool {
    fn fits(expected: &T, provided: &T) -> bool {
        match (expected, provided) {
            (_, T::Dyn) => true,
            (T::List(e), T::List(p)) => fits(e, p),
            (T::Map(ek, ev), T::Map(pk, pv)) => fits(ek, pk) && fits(ev, pv),
            (e, p) => e == p,
        }
    }
    match expected {
        // Messages are never built from literals here; only a dynamic value could fit.
        FieldType::Message(_) => provided.is_dyn() || matches!(provided, T::List(_)),
        other => fits(&field_type(other), provided),
    }
}
