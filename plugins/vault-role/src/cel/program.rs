//! Running a CEL role's program the way OpenBao's `auth/<mount>/cel/login` does, and saying what
//! it decided in OpenBao's own words.
//!
//! OpenBao (cel-go) evaluates each variable in order, binds its value under its name, then
//! evaluates the expression, with `claims` (the verified JWT payload), `now` (a timestamp) and
//! `operation` (`"update"` for a login) in scope. The result decides the login: a `pb.Auth`
//! message allows; `false` or a string denies; anything else (even `true`) is an error. JSON
//! numbers in the claims are CEL doubles, as they are for cel-go's JSON values.
//!
//! The interpreter is the `cel` crate. Where it differs from cel-go in a way a role can observe,
//! this module closes the gap: `pb.Auth` construction with OpenBao's field types, the
//! classification of results, and the texts of errors (`no such key: x`, `division by zero`,
//! `no such overload`, ...).

use cel::common::ast::{operators, EntryExpr, Expr, SourceInfo};
use cel::common::types::{CelStruct, Type};
use cel::common::value::{CowVal, Val};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, IdedExpr, StructType, Value};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::role::CelProgram;
use crate::lookup::go_quote;

/// The name a `pb.Auth` literal constructs.
pub const PB_AUTH: &str = "pb.Auth";

/// What a `pb.Auth` field holds, as OpenBao's protobuf declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    StringList,
    StringMap,
    Int,
    Uint,
    Bool,
    /// A nested message (`lease_options`, `alias`, `group_aliases`) a role can name but that this
    /// plugin does not build: its own type name as the checker reports it.
    Message(&'static str),
}

impl FieldType {
    /// The type's name in cel-go's checker messages.
    pub fn checker_name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::StringList => "list(string)",
            FieldType::StringMap => "map(string, string)",
            FieldType::Int => "int",
            FieldType::Uint => "uint",
            FieldType::Bool => "bool",
            FieldType::Message(name) => name,
        }
    }
}

/// The fields of OpenBao's `pb.Auth` (measured against OpenBao 2.7.2: each name below is
/// accepted when a role is written, any other is refused as an undefined field).
pub const PB_AUTH_FIELDS: &[(&str, FieldType)] = &[
    ("lease_options", FieldType::Message("pb.LeaseOptions")),
    ("internal_data", FieldType::String),
    ("display_name", FieldType::String),
    ("policies", FieldType::StringList),
    ("metadata", FieldType::StringMap),
    ("client_token", FieldType::String),
    ("accessor", FieldType::String),
    ("period", FieldType::Int),
    ("num_uses", FieldType::Int),
    ("entity_id", FieldType::String),
    ("alias", FieldType::Message("logical.Alias")),
    ("group_aliases", FieldType::Message("list(logical.Alias)")),
    ("bound_cidrs", FieldType::StringList),
    ("token_policies", FieldType::StringList),
    ("identity_policies", FieldType::StringList),
    ("explicit_max_ttl", FieldType::Int),
    ("token_type", FieldType::Uint),
    ("no_default_policy", FieldType::Bool),
];

/// The type of one `pb.Auth` field, if it has that field.
pub fn pb_auth_field(name: &str) -> Option<FieldType> {
    PB_AUTH_FIELDS
        .iter()
        .find(|(field, _)| *field == name)
        .map(|(_, t)| *t)
}

/// `pb.Auth{…}`: builds the message from a struct literal, converting each field as cel-go
/// converts a dynamic value into a protobuf field, with its error text.
struct PbAuth {
    r#type: Type,
}

impl StructType for PbAuth {
    fn get_type(&self) -> &Type {
        &self.r#type
    }

    fn new_value<'b, 'v>(
        &self,
        fields: BTreeMap<String, CowVal<'b, 'v>>,
    ) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        let mut message = CelStruct::new(PB_AUTH.to_owned());
        for (field, value) in fields {
            let Some(field_type) = pb_auth_field(&field) else {
                return Err(openbao_error(format!("no such field '{field}'")));
            };
            let value =
                Value::try_from(&*value).map_err(|_| conversion_error(&field, "Unknown"))?;
            let converted = convert_field(&field, field_type, value)?;
            let boxed: Box<dyn Val> = converted
                .try_into()
                .map_err(|_| conversion_error(&field, "Unknown"))?;
            message.add_field_value(field, CowVal::Owned(boxed));
        }
        Ok(Box::new(message))
    }
}

/// An error whose text is already OpenBao's: carried through the interpreter as a function error
/// with this marker name, and printed as the message alone.
const OPENBAO_TEXT: &str = "\u{0}openbao";

fn openbao_error(message: String) -> ExecutionError {
    ExecutionError::FunctionError {
        function: OPENBAO_TEXT.to_owned(),
        message,
    }
}

fn conversion_error(field: &str, from: &str) -> ExecutionError {
    let to = match pb_auth_field(field) {
        Some(FieldType::Int) => "int64",
        Some(FieldType::Uint) => "uint32",
        Some(FieldType::Bool) => "bool",
        _ => "string",
    };
    openbao_error(format!(
        "field type conversion error for pb.Auth.{field} value type: type conversion error from {from} to '{to}'"
    ))
}

/// cel-go's name for a value's type in conversion errors (`Double`, `Int`, …).
fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Int(_) => "Int",
        Value::UInt(_) => "Uint",
        Value::Float(_) => "Double",
        Value::String(_) => "String",
        Value::Bytes(_) => "Bytes",
        Value::Bool(_) => "Bool",
        Value::Null => "Null",
        Value::List(_) => "*baseList",
        Value::Map(_) => "*baseMap",
        Value::Timestamp(_) => "Timestamp",
        Value::Duration(_) => "Duration",
        _ => "Unknown",
    }
}

fn convert_field(
    field: &str,
    field_type: FieldType,
    value: Value,
) -> Result<Value, ExecutionError> {
    let fail = |v: &Value| conversion_error(field, go_kind(v));
    match field_type {
        FieldType::String => match value {
            Value::String(_) => Ok(value),
            other => Err(fail(&other)),
        },
        FieldType::Bool => match value {
            Value::Bool(_) => Ok(value),
            other => Err(fail(&other)),
        },
        FieldType::Int => match value {
            Value::Int(_) => Ok(value),
            other => Err(fail(&other)),
        },
        FieldType::Uint => match value {
            Value::UInt(_) => Ok(value),
            other => Err(fail(&other)),
        },
        FieldType::StringList => match &value {
            Value::List(items) => {
                if let Some(bad) = items.iter().find(|v| !matches!(v, Value::String(_))) {
                    return Err(fail(bad));
                }
                Ok(value)
            }
            other => Err(fail(other)),
        },
        FieldType::StringMap => match &value {
            Value::Map(map) => {
                for (key, v) in map.map.iter() {
                    if !matches!(key, Key::String(_)) {
                        return Err(conversion_error(field, "Int"));
                    }
                    if !matches!(v, Value::String(_)) {
                        return Err(fail(v));
                    }
                }
                Ok(value)
            }
            other => Err(fail(other)),
        },
        FieldType::Message(_) => Err(fail(&value)),
    }
}

/// The environment every role's program runs in: cel-go's standard library and the extensions
/// OpenBao enables, and the `pb.Auth` message.
pub fn environment() -> Env {
    let mut env = Env::stdlib();
    for extension in [
        cel::extensions::strings,
        cel::extensions::lists,
        cel::extensions::math,
        cel::extensions::encoders,
    ] {
        // The extensions are added to a fresh standard environment: they cannot clash.
        let _ = extension(&mut env);
    }
    let _ = env.add_type(PbAuth {
        r#type: Type::new_struct(PB_AUTH.to_owned()),
    });
    super::sets::add_functions(&mut env);
    super::rewrite::add_functions(&mut env);
    env
}

/// A role's program parsed the way OpenBao parses it when the role is written: the ANTLR
/// grammar, with positions for the checker's and the parser's messages.
pub struct Checkable {
    /// Each variable's name and parsed expression, in order.
    pub variables: Vec<(String, Parsed)>,
    /// The main expression.
    pub expression: Parsed,
}

/// One expression from the ANTLR parser: its tree, and where each node was written.
pub struct Parsed {
    expression: IdedExpr,
    source_info: SourceInfo,
}

impl Parsed {
    /// The tree.
    pub fn expression(&self) -> &IdedExpr {
        &self.expression
    }

    /// Where every node was written, for the checker's messages.
    pub fn source_info(&self) -> &SourceInfo {
        &self.source_info
    }
}

/// cel-go's words for an expression nested past [`MAX_EXPRESSION_NESTING`].
pub(super) const NESTING_REFUSAL: &str =
    "ERROR: <input>:-1:0: expression recursion limit exceeded: 250";

/// Above this [`textual_nesting`], a program is refused before any parser runs.
const MAX_TEXTUAL_NESTING: usize = 2 * (MAX_EXPRESSION_NESTING as usize + 1);

/// How deep brackets, calls and conditionals may nest: cel-go's parser listener refuses 250
/// levels of `expr`. Measured with OpenBao 2.7.2: 249 nested parentheses, lists or conditionals
/// are stored, 250 are refused with "expression recursion limit exceeded: 250". The ANTLR parser
/// here stops at the same depth, and the Pratt parser at the same depth for what it counts
/// (brackets, calls; not conditionals in a conditional's last branch, which [`textual_nesting`]
/// bounds); the `cel` crate's default, 96, refused roles OpenBao stores.
pub const MAX_EXPRESSION_NESTING: u16 = 249;

/// The ANTLR parser, as cel-go's: `env`'s macros, cel-go's nesting limit.
fn antlr_parse(env: &Env, text: &str) -> Result<Parsed, String> {
    env.parser()
        .max_recursion_depth(MAX_EXPRESSION_NESTING)
        .parse_with_source_info(text)
        .map(|(expression, source_info)| Parsed {
            expression,
            source_info,
        })
        .map_err(|e| nesting_or(e.to_string()))
}

/// The parser's message, or cel-go's where the parser stopped at the nesting limit.
fn nesting_or(message: String) -> String {
    // The ANTLR parser's words, then the Pratt parser's.
    if message.contains("Recursion limit of")
        || message.contains("expression recursion limit exceeded")
    {
        NESTING_REFUSAL.to_owned()
    } else {
        message
    }
}

/// An upper bound on how deep `text` nests brackets and conditionals, read from its tokens
/// alone (the Pratt parser's own lexer, so strings, raw strings, bytes, escaped identifiers and
/// comments end where the parsers say; no recursion, whatever the input): each `(`, `[` or `{`
/// opens a level until it closes, each `?` one until its group closes or a `,` ends the element
/// (not the optional syntax's `.?`, `[?`, `{?` and `, ?`). It never counts less than the parsers
/// recurse, and at most about twice as much, so a program above twice cel-go's limit is refused
/// before a parser could recurse that deep (the Pratt parser does not count conditionals in a
/// conditional's last branch). Lexing stops at a token the lexer refuses, as the parsers do.
pub fn textual_nesting(text: &str) -> usize {
    use cel::parser::pratt_parser::{Lexer, TokenKind as T};
    let mut lexer = Lexer::new(text);
    let (mut depth, mut deepest) = (0usize, 0usize);
    // Per open group: the conditionals opened inside it.
    let mut groups: Vec<usize> = vec![0];
    let mut previous = T::TokWhitespace;
    loop {
        let token = lexer.lex().kind;
        match token {
            T::TokEnd | T::TokError => break,
            T::TokWhitespace | T::TokComment => continue,
            T::TokLeftParen | T::TokLeftBracket | T::TokLeftBrace => {
                depth += 1;
                groups.push(0);
            }
            T::TokRightParen | T::TokRightBracket | T::TokRightBrace => {
                let conditionals = if groups.len() > 1 {
                    groups.pop().unwrap_or(0)
                } else {
                    0
                };
                depth = depth.saturating_sub(1 + conditionals);
            }
            T::TokQuestion
                if !matches!(
                    previous,
                    T::TokDot | T::TokLeftBracket | T::TokLeftBrace | T::TokComma
                ) =>
            {
                depth += 1;
                if let Some(open) = groups.last_mut() {
                    *open += 1;
                }
            }
            T::TokComma => {
                if let Some(open) = groups.last_mut() {
                    depth = depth.saturating_sub(*open);
                    *open = 0;
                }
            }
            _ => {}
        }
        previous = token;
        deepest = deepest.max(depth);
    }
    deepest
}

/// Where parsing failed: which part of the program, and the parser's message with its position.
#[derive(Debug)]
pub struct SyntaxError {
    /// `None` for the main expression, or the variable's index and name.
    pub variable: Option<(usize, String)>,
    pub message: String,
}

impl Checkable {
    /// Parses every variable and the expression.
    pub fn parse(env: &Env, program: &CelProgram) -> Result<Checkable, SyntaxError> {
        let mut variables = Vec::new();
        for (index, variable) in program.variables.iter().enumerate() {
            let parsed = antlr_parse(env, &variable.expression).map_err(|message| SyntaxError {
                variable: Some((index, variable.name.clone())),
                message,
            })?;
            variables.push((variable.name.clone(), parsed));
        }
        let expression = antlr_parse(env, &program.expression).map_err(|message| SyntaxError {
            variable: None,
            message,
        })?;
        Ok(Checkable {
            variables,
            expression,
        })
    }
}

/// A role's program, ready to run.
///
/// Its trees come from the `cel` crate's Pratt parser: the same grammar and macros in about a
/// third of the ANTLR parser's time, and parsing is most of what one evaluation costs (every
/// call runs in a fresh instance). `validate-config` parses with both, so a program that runs
/// is one that was checked; the differential test against OpenBao runs these trees.
pub struct Compiled {
    /// Each variable's name and source, in order.
    variables: Vec<(String, String)>,
    expression_text: String,
    /// The variables' trees, then the expression's, rewritten (see [`super::rewrite`]).
    runnable: Vec<IdedExpr>,
}

impl Compiled {
    /// Parses every variable and the expression (`env` for the parts that need its macros).
    pub fn new(env: &Env, program: &CelProgram) -> Result<Compiled, SyntaxError> {
        let parts = program
            .variables
            .iter()
            .enumerate()
            .map(|(index, v)| (Some((index, v.name.clone())), v.expression.as_str()))
            .chain(std::iter::once((None, program.expression.as_str())));
        let mut runnable = Vec::with_capacity(program.variables.len() + 1);
        let mut declared: Vec<&str> = Vec::new();
        for (variable, text) in parts {
            // Before any parser: the Pratt parser recurses on conditionals in a conditional's
            // last branch without counting them. Every level opens with `(`, `[`, `{` or `?`,
            // so a program with fewer of those bytes needs no lexing (this runs on every call).
            let openers = text
                .bytes()
                .filter(|b| matches!(b, b'(' | b'[' | b'{' | b'?'))
                .count();
            if openers > MAX_TEXTUAL_NESTING && textual_nesting(text) > MAX_TEXTUAL_NESTING {
                return Err(SyntaxError {
                    variable: variable.clone(),
                    message: NESTING_REFUSAL.into(),
                });
            }
            let mut tree = cel::parser::PrattParser::new()
                .enable_optional_syntax(true)
                .max_recursion_depth(MAX_EXPRESSION_NESTING)
                .parse(text)
                .map_err(|e| SyntaxError {
                    variable: variable.clone(),
                    message: nesting_or(e.to_string()),
                })?;
            // Before anything recursive walks the tree: cel-go refuses deep programs, and the
            // walks below would exhaust the stack on them.
            if nesting_depth(&tree) > MAX_NESTING_DEPTH {
                dismantle(tree);
                return Err(SyntaxError {
                    variable: variable.clone(),
                    message: "ERROR: <input>:-1:0: max recursion depth exceeded".into(),
                });
            }
            // The Pratt parser expands only the standard macros; a part that calls one of the
            // extensions' (`math.greatest`, `math.least`, `sortBy`) takes the slower parser
            // that knows them all.
            if calls_extension_macro(&tree) {
                tree = antlr_parse(env, text)
                    .map_err(|message| SyntaxError {
                        variable: variable.clone(),
                        message,
                    })?
                    .expression;
            }
            super::rewrite::selections(&mut tree, &declared);
            if let Some((index, _)) = &variable {
                declared.push(&program.variables[*index].name);
            }
            runnable.push(tree);
        }
        Ok(Compiled {
            variables: program
                .variables
                .iter()
                .map(|v| (v.name.clone(), v.expression.clone()))
                .collect(),
            expression_text: program.expression.clone(),
            runnable,
        })
    }

    /// Runs the program on `claims` at `now` (Unix seconds), as a login does.
    pub fn run(&self, env: Arc<Env>, claims: &Json, now: i64) -> Outcome {
        let mut context = Context::with_env(env);
        context.add_variable_from_value("claims", json_to_cel(claims));
        context.add_variable_from_value("operation", "update");
        if let Some(time) = chrono::DateTime::from_timestamp(now, 0) {
            context.add_variable_from_value("now", Value::Timestamp(time.fixed_offset()));
        }
        for (index, (name, text)) in self.variables.iter().enumerate() {
            match evaluate(&self.runnable[index], &context) {
                Ok(value) => context.add_variable_from_value(name.clone(), value),
                Err(e) => {
                    return Outcome::Failed(format!(
                        "failed to evaluate variables: variable[{index}].{name}: failed to evaluate expression {}: {}",
                        go_quote(text),
                        cel_go_error(&e)
                    ))
                }
            }
        }
        match evaluate(&self.runnable[self.variables.len()], &context) {
            Ok(value) => classify(value),
            Err(e) => Outcome::Failed(format!(
                "failed to evaluate expression: failed to evaluate expression {}: {}",
                go_quote(&self.expression_text),
                cel_go_error(&e)
            )),
        }
    }
}

/// Evaluates `expr` with cel-go's error precedence in its boolean structure: of `a && b` (and
/// `a || b`), a side that decides the result wins even over an error on the other side (as in
/// both interpreters), and when both sides fail, cel-go reports the **left** side's error, where
/// the `cel` crate reports the right's. Conditions and branches of `?:` are walked the same way;
/// everything else is the `cel` crate's.
fn evaluate(expr: &IdedExpr, context: &Context) -> Result<Value, ExecutionError> {
    if let Expr::Call(call) = &expr.expr {
        if call.target.is_none() {
            match (call.func_name.as_str(), call.args.as_slice()) {
                (operators::LOGICAL_AND, [left, right]) => {
                    return logical(left, right, context, false)
                }
                (operators::LOGICAL_OR, [left, right]) => {
                    return logical(left, right, context, true)
                }
                (operators::CONDITIONAL, [condition, then, otherwise]) => {
                    return match evaluate(condition, context)? {
                        Value::Bool(true) => evaluate(then, context),
                        Value::Bool(false) => evaluate(otherwise, context),
                        _ => Err(no_such_overload()),
                    };
                }
                _ => {}
            }
        }
    }
    Value::resolve(expr, context)
}

/// `left && right` (`decisive` false) or `left || right` (`decisive` true), as cel-go runs it.
fn logical(
    left: &IdedExpr,
    right: &IdedExpr,
    context: &Context,
    decisive: bool,
) -> Result<Value, ExecutionError> {
    let left = evaluate(left, context);
    if matches!(left, Ok(Value::Bool(b)) if b == decisive) {
        return Ok(Value::Bool(decisive));
    }
    let right = evaluate(right, context);
    if matches!(right, Ok(Value::Bool(b)) if b == decisive) {
        return Ok(Value::Bool(decisive));
    }
    match (left, right) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(Value::Bool(_)), Ok(Value::Bool(b))) => Ok(Value::Bool(b)),
        _ => Err(no_such_overload()),
    }
}

fn no_such_overload() -> ExecutionError {
    openbao_error("no such overload".into())
}

/// Whether `expr` calls a macro of the environment's extensions, which only the
/// environment-aware parser expands.
fn calls_extension_macro(expr: &IdedExpr) -> bool {
    let mut found = false;
    visit(expr, &mut |e| {
        if let Expr::Call(call) = &e.expr {
            if call.target.is_some()
                && matches!(call.func_name.as_str(), "greatest" | "least" | "sortBy")
            {
                found = true;
            }
        }
    });
    found
}

/// How deep cel-go lets a program nest (its parser's `maxRecursionDepth`), counted as
/// [`nesting_depth`] does; deeper is refused with "max recursion depth exceeded".
pub const MAX_NESTING_DEPTH: usize = 250;

/// The expressions directly inside `expr`.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| &**t)
            .chain(call.args.iter())
            .collect(),
        Expr::Select(select) => vec![&*select.operand],
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => Some([&entry.key, &entry.value]),
                _ => None,
            })
            .flatten()
            .collect(),
        Expr::Struct(strct) => strct
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::StructField(field) => Some(&field.value),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a node adds a level to cel-go's `maxRecursionDepth`. Measured with OpenBao 2.7.2
/// (`1+…+1 == 2 ? pb.Auth{} : 'no'` stores 248 `+`, a bare `claims.a.…` 250 selections; each
/// conditional in front takes one `+` away; `&&`, brackets and calls around a chain take none):
/// conditionals, operators, selections and method calls count; literals and names, `&&` and
/// `||`, lists, maps, messages and function calls do not (what nests inside brackets is the
/// parser listener's limit, [`MAX_EXPRESSION_NESTING`]), nor a run of the same negation, which
/// cel-go folds. `!` and `-` alternating (`!-!-x`), which cel-go's grammar refuses, count, so
/// that a long run cannot build a deep tree unchecked.
fn counted(e: &IdedExpr) -> bool {
    let Expr::Call(call) = &e.expr else {
        return matches!(e.expr, Expr::Select(_));
    };
    if call.target.is_some() {
        return true;
    }
    let unary = |name: &str| name == operators::LOGICAL_NOT || name == operators::NEGATE;
    if unary(&call.func_name) {
        return call.args.iter().any(|arg| {
            matches!(&arg.expr, Expr::Call(inner)
                if inner.target.is_none() && unary(&inner.func_name) && inner.func_name != call.func_name)
        });
    }
    let operator = call.func_name.starts_with(['_', '@']);
    operator && call.func_name != operators::LOGICAL_AND && call.func_name != operators::LOGICAL_OR
}

/// How deeply `expr` nests, as cel-go counts it (see `counted`): the most counted nodes on a path
/// from the root. Computed without recursion, so a hostile program cannot exhaust the stack here.
pub fn nesting_depth(expr: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(expr, 0usize)];
    while let Some((e, above)) = pending.pop() {
        let here = above + usize::from(counted(e));
        deepest = deepest.max(here);
        pending.extend(children(e).into_iter().map(|c| (c, here)));
    }
    deepest
}

/// Drops a tree without recursion: dropping a deep tree the ordinary way recurses once per
/// level, which a hostile program could use to exhaust the stack.
fn dismantle(tree: IdedExpr) {
    let mut pending = vec![tree];
    while let Some(mut e) = pending.pop() {
        match &mut e.expr {
            Expr::Call(call) => {
                pending.extend(call.target.take().map(|t| *t));
                pending.append(&mut call.args);
            }
            Expr::Select(select) => pending.push(std::mem::take(&mut *select.operand)),
            Expr::Comprehension(c) => {
                for part in [
                    &mut c.iter_range,
                    &mut c.accu_init,
                    &mut c.loop_cond,
                    &mut c.loop_step,
                    &mut c.result,
                ] {
                    pending.push(std::mem::take(part));
                }
            }
            Expr::List(list) => pending.append(&mut list.elements),
            Expr::Map(map) => {
                for entry in std::mem::take(&mut map.entries) {
                    if let EntryExpr::MapEntry(entry) = entry.expr {
                        pending.push(entry.key);
                        pending.push(entry.value);
                    }
                }
            }
            Expr::Struct(strct) => {
                for entry in std::mem::take(&mut strct.entries) {
                    if let EntryExpr::StructField(field) = entry.expr {
                        pending.push(field.value);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Calls `f` on `expr` and every expression inside it.
fn visit(expr: &IdedExpr, f: &mut impl FnMut(&IdedExpr)) {
    f(expr);
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                visit(target, f);
            }
            call.args.iter().for_each(|a| visit(a, f));
        }
        Expr::Select(select) => visit(&select.operand, f),
        Expr::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(e, f);
            }
        }
        Expr::List(list) => list.elements.iter().for_each(|e| visit(e, f)),
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    visit(&entry.key, f);
                    visit(&entry.value, f);
                }
            }
        }
        Expr::Struct(strct) => {
            for entry in &strct.entries {
                if let EntryExpr::StructField(field) = &entry.expr {
                    visit(&field.value, f);
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// What a program decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It returned a `pb.Auth`: the login goes ahead.
    Allowed {
        /// `policies` as the message set them.
        policies: Vec<String>,
        /// `metadata` as the message set it.
        metadata: BTreeMap<String, String>,
        /// `no_default_policy`: OpenBao then does not add `default`.
        no_default_policy: bool,
    },
    /// It returned `false`.
    BlockedFalse,
    /// It returned a string: the denial message.
    BlockedMessage(String),
    /// It returned something else: cel-go's name for its type (`types.Bool`, …).
    UnexpectedType(&'static str),
    /// Evaluating it failed: OpenBao's text after `CEL auth program failed: `.
    Failed(String),
}

impl Outcome {
    /// OpenBao's login error for this outcome, for the role called `role`; `None` for an allow.
    pub fn openbao_error(&self, role: &str) -> Option<String> {
        let text = match self {
            Outcome::Allowed { .. } => return None,
            Outcome::BlockedFalse => {
                format!("CEL role '{role}' blocked authorization with boolean false return")
            }
            Outcome::BlockedMessage(message) => {
                format!("CEL role '{role}' blocked authorization with message: {message}")
            }
            Outcome::UnexpectedType(name) => {
                format!("CEL program '{role}' returned unexpected type: {name}")
            }
            Outcome::Failed(cause) => format!("CEL auth program failed: {cause}"),
        };
        Some(format!("error executing cel program: {text}"))
    }
}

fn classify(value: Value) -> Outcome {
    match value {
        Value::Bool(false) => Outcome::BlockedFalse,
        Value::String(message) => Outcome::BlockedMessage(message.to_string()),
        Value::Struct(message) if message.name() == PB_AUTH => {
            let field = |name: &str| message.field_value(name).map(Value::try_from);
            let policies = match field("policies") {
                Some(Ok(Value::List(items))) => items
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.to_string()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let metadata = match field("metadata") {
                Some(Ok(Value::Map(map))) => map
                    .map
                    .iter()
                    .filter_map(|(k, v)| match (k, v) {
                        (Key::String(k), Value::String(v)) => Some((k.to_string(), v.to_string())),
                        _ => None,
                    })
                    .collect(),
                _ => BTreeMap::new(),
            };
            let no_default_policy =
                matches!(field("no_default_policy"), Some(Ok(Value::Bool(true))));
            Outcome::Allowed {
                policies,
                metadata,
                no_default_policy,
            }
        }
        other => Outcome::UnexpectedType(go_type_name(&other)),
    }
}

/// cel-go's `%T` of a result value, as OpenBao prints it.
fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "types.Bool",
        Value::Int(_) => "types.Int",
        Value::UInt(_) => "types.Uint",
        Value::Float(_) => "types.Double",
        Value::Bytes(_) => "types.Bytes",
        Value::Null => "types.Null",
        Value::List(_) => "*types.baseList",
        Value::Map(_) => "*types.baseMap",
        Value::Timestamp(_) => "types.Timestamp",
        Value::Duration(_) => "types.Duration",
        Value::Struct(_) => "*types.protoObj",
        _ => "types.Unknown",
    }
}

/// Which operators cel-go dispatches by a trait of their first operand: when the operand lacks
/// the trait, its error names the function (`no such overload: _%_`); when the operand has it but
/// the other argument does not fit, it is a bare `no such overload`.
fn operand_has_trait(function: &str, operand: &str) -> bool {
    let arithmetic = ["int", "uint", "double"];
    match function {
        "_+_" => {
            arithmetic.contains(&operand)
                || ["string", "bytes", "list", "timestamp", "duration"].contains(&operand)
        }
        "_-_" => arithmetic.contains(&operand) || ["timestamp", "duration"].contains(&operand),
        "_*_" | "_/_" => arithmetic.contains(&operand),
        "_%_" => ["int", "uint"].contains(&operand),
        "-_" => ["int", "double", "duration"].contains(&operand),
        "_<_" | "_<=_" | "_>_" | "_>=_" => [
            "int",
            "uint",
            "double",
            "string",
            "bytes",
            "bool",
            "timestamp",
            "duration",
        ]
        .contains(&operand),
        "size" => ["string", "bytes", "list", "map"].contains(&operand),
        // Functions that check their arguments' types themselves.
        _ => true,
    }
}

/// cel-go's text for an evaluation error.
fn cel_go_error(error: &ExecutionError) -> String {
    match error {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(_, left, _) => match left {
            Value::UInt(_) => "unsigned integer overflow".into(),
            _ => "integer overflow".into(),
        },
        ExecutionError::IndexOutOfBounds(index) => match index {
            Value::Int(i) => format!("index out of bounds: {i}"),
            Value::UInt(i) => format!("index out of bounds: {i}"),
            Value::Float(f) => format!("index out of bounds: {f}"),
            other => format!("index out of bounds: {other:?}"),
        },
        ExecutionError::UnsupportedIndex(index, _) => {
            format!("unsupported index type '{}' in list", index.type_of())
        }
        ExecutionError::NoSuchOverload(overload)
            if overload.function() == "_[_]"
                && overload.argument_types().first().map(String::as_str) == Some("list") =>
        {
            let index = overload.argument_types().get(1).map(String::as_str);
            format!(
                "unsupported index type '{}' in list",
                index.unwrap_or("dyn")
            )
        }
        ExecutionError::NoSuchOverload(overload) => {
            let function = overload.function();
            let operand = overload
                .argument_types()
                .first()
                .map(String::as_str)
                .unwrap_or("");
            if operand_has_trait(function, operand) {
                "no such overload".into()
            } else {
                format!("no such overload: {function}")
            }
        }
        ExecutionError::FunctionError { function, message } if function == OPENBAO_TEXT => {
            message.clone()
        }
        // cel-go's words for a failed `int('x')`, `uint('x')`, `double('x')`.
        ExecutionError::FunctionError { function, .. }
            if function == "int" || function == "uint" || function == "double" =>
        {
            format!("type conversion error from 'string' to '{function}'")
        }
        ExecutionError::FunctionError { message, .. } => message.clone(),
        ExecutionError::UndeclaredReference(name) => {
            format!("no such attribute(s): {name}")
        }
        _ => "no such overload".into(),
    }
}

/// The claims as cel-go sees a JSON document: every number a double, objects as string-keyed maps.
pub fn json_to_cel(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(json_to_cel).collect())),
        Json::Object(map) => {
            let map: HashMap<Key, Value> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_cel(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}
