"""Write attestgate policy plugins in Python (compiled to a WebAssembly component by componentize-py).

Why this module exists: a collaborator's rules must give the same verdict, with the same reasons,
whichever language they are written in, or an operator comparing a Python plugin with the Rust
reference cannot tell a policy difference from a language difference. So this is a port of the Rust
SDK (`plugins/sdk`): the same lenient claim access, the same rules with the same reason messages and
claim pointers, and the same handling of bad configuration and bad claims. Where the Rust text
comes from Rust's `{:?}` formatting or serde's error wording, it is reproduced here.

A plugin is a module that defines its configuration as a dataclass and a policy object, and exports
the policy under the name componentize-py looks for, `Policy`:

    from dataclasses import dataclass
    import attestgate_sdk as sdk

    @dataclass
    class Config:
        audience: str
        projects: list[str]

    class OnlyOurProject:
        Config = Config

        def audience(self, ctx):
            return sdk.oidc(ctx.config.audience)

        def evaluate(self, ctx, claims):
            report = sdk.Report()
            report.add(sdk.production_only(claims))
            report.add(sdk.one_of(claims, "/submods/gce/project_id", ctx.config.projects))
            return report

    Policy = sdk.export(OnlyOurProject())

Failing closed is the SDK's job, not the plugin author's: a configuration that does not parse
(unknown keys included) is refused, claims that do not parse are a deny naming no claim, and any
exception raised by the policy becomes a refused configuration or a deny, never an allow.
"""

from __future__ import annotations

import dataclasses
import json
import types as _pytypes
import typing
import unicodedata
from typing import Any, Iterable, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

__all__ = [
    "CONTRACT_VERSION",
    "PRODUCTION_DBGSTAT",
    "AudienceRequest",
    "Claims",
    "ConfigError",
    "Context",
    "LogLevel",
    "Report",
    "TokenType",
    "Verdict",
    "deny",
    "export",
    "is_sha256_digest",
    "log",
    "memory_monitoring_disabled",
    "min_swversion",
    "oidc",
    "one_of",
    "parse_config",
    "parse_u64",
    "pointer",
    "production_only",
    "rust_debug",
    "support_attribute",
    "tdx_up_to_date",
    "trim",
]

# The contract version these bindings were generated from (the `package` line of wit/policy.wit).
CONTRACT_VERSION = "0.3.0"

# `dbgstat` of a production image.
PRODUCTION_DBGSTAT = "disabled-since-boot"

LogLevel = host.LogLevel
TokenType = types.TokenType
AudienceRequest = types.AudienceRequest
Verdict = types.Verdict

# A reason message quoting an exception is cut here: the log is capped per call, and a reason should
# say what went wrong, not carry a dump.
_MAX_ERROR_TEXT = 300


class ConfigError(Exception):
    """Raised by a policy's `validate` or `audience` to refuse the configuration with this message,
    word for word. Any other exception refuses it too, but is reported as a bug in the policy."""


# ---------------------------------------------------------------------------------------------
# Text exactly as the Rust SDK writes it.


# Unicode White_Space, which Rust's `str::trim` strips. Python's `str.strip` strips a different set
# (it includes U+001C..U+001F), and a configuration value must be judged the same in both SDKs.
_WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# Characters outside the marks (Mn, Me) that have the Grapheme_Extend property; Rust's `{:?}`
# escapes every grapheme-extending character.
_OTHER_GRAPHEME_EXTEND = frozenset(
    map(
        chr,
        [0x09BE, 0x09D7, 0x0B3E, 0x0B57, 0x0BBE, 0x0BD7, 0x0CC2, 0x0CD5, 0x0CD6, 0x0D3E, 0x0D57,
         0x0DCF, 0x0DDF, 0x1B35, 0x302E, 0x302F, 0xFF9E, 0xFF9F, 0x1133E, 0x11357, 0x114B0,
         0x114BD, 0x115AF, 0x11930, 0x1D165, 0x1D16E, 0x1D16F, 0x1D170, 0x1D171, 0x1D172],
    )
)
_NOT_PRINTABLE = frozenset(["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "Mn", "Me"])
_SIMPLE_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\0": "\\0", '"': '\\"', "\\": "\\\\"}


def trim(text: str) -> str:
    """Rust's `str::trim`."""
    start, end = 0, len(text)
    while start < end and text[start] in _WHITE_SPACE:
        start += 1
    while end > start and text[end - 1] in _WHITE_SPACE:
        end -= 1
    return text[start:end]


def _trim_start(text: str) -> str:
    """Rust's `str::trim_start`."""
    start = 0
    while start < len(text) and text[start] in _WHITE_SPACE:
        start += 1
    return text[start:]


def _debug_str(text: str) -> str:
    """A string as Rust's `{:?}` writes it: quoted, with `\\u{..}` for what does not print.
    Identical for ASCII; beyond it, as exact as this Python's Unicode tables are to Rust's."""
    out = ['"']
    for char in text:
        if char in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        elif (
            char < " "
            or char in _OTHER_GRAPHEME_EXTEND
            or unicodedata.category(char) in _NOT_PRINTABLE
        ):
            out.append("\\u{%x}" % ord(char))
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def rust_debug(value: Any) -> str:
    """Rust's `{:?}` for the shapes reason messages use: a string, a list of strings, an option."""
    if isinstance(value, str):
        return _debug_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(rust_debug(item) for item in value) + "]"
    if value is None:
        return "None"
    raise TypeError(f"no Rust debug form for {type(value).__name__}")


def _debug_option(value: Optional[str]) -> str:
    return "None" if value is None else f"Some({_debug_str(value)})"


def _quoted(values: Iterable[str]) -> str:
    """Found claim values, quoted but not escaped (as the Rust rules print them)."""
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def parse_u64(text: str) -> Optional[int]:
    """Rust's `text.trim().parse::<u64>()`: ASCII digits after an optional `+`, below 2**64.
    Python's `int()` would also take underscores, non-ASCII digits and a sign."""
    digits = trim(text)
    if digits.startswith("+"):
        digits = digits[1:]
    if not digits or not all("0" <= d <= "9" for d in digits):
        return None
    value = int(digits)
    return value if value < 2**64 else None


# ---------------------------------------------------------------------------------------------
# JSON, read as serde_json reads it where the difference could change a verdict.


def _no_constant(name: str) -> Any:
    # serde_json has no NaN or Infinity.
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    # The host hands over only JSON that serde_json has read: a token whose payload repeats a key,
    # or holds an unpaired surrogate escape, is refused before any plugin sees it, and
    # `plugin_config` comes from TOML, which has no repeated keys. So Python's `json` and serde
    # read the same values here.
    return json.loads(text, parse_constant=_no_constant)


def _unexpected(value: Any) -> str:
    """serde's description of a JSON value that has the wrong type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return f"string {_debug_str(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


# ---------------------------------------------------------------------------------------------
# Claims.


def pointer(key: str) -> str:
    """A claim key as a JSON pointer: `hwmodel` becomes `/hwmodel` (escaped per RFC 6901), and a
    pointer stays as it is."""
    if key.startswith("/"):
        return key
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _section(value: Any) -> dict:
    """An object of known shape, or an empty one when the claim is missing or not an object. A
    list (the documented shape of `tdx`) yields its first element."""
    while isinstance(value, list):
        if not value:
            return {}
        value = value[0]
    return value if isinstance(value, dict) else {}


def _loose_strings(value: Any) -> list:
    """A claim that may be a string or a list of strings, as a list; other shapes give none."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


# Claims the Rust SDK reads in its fast pass, where a list of objects counts as its first object;
# `Claims.strings` must find them the same way.
_WELL_KNOWN = {
    "iss": ("iss",),
    "sub": ("sub",),
    "aud": ("aud",),
    "eat_nonce": ("eat_nonce",),
    "hwmodel": ("hwmodel",),
    "swname": ("swname",),
    "swversion": ("swversion",),
    "dbgstat": ("dbgstat",),
    "google_service_accounts": ("google_service_accounts",),
    "submods/confidential_space/support_attributes": (
        "submods", "confidential_space", "support_attributes"),
    "submods/container/image_digest": ("submods", "container", "image_digest"),
    "submods/container/image_reference": ("submods", "container", "image_reference"),
    "submods/gce/project_id": ("submods", "gce", "project_id"),
}


class Claims:
    """A verified token's payload, read leniently: any claim may be missing, `null`, or of an
    unexpected type (claims differ between image versions and between debug and production
    images), and the accessors then return None or an empty list instead of failing."""

    def __init__(self, tree: dict):
        self._tree = tree

    @classmethod
    def parse(cls, text: str) -> "Claims":
        """Reads the payload JSON the host passes in. Raises ValueError (with the reason for the
        operator) where the Rust SDK refuses the claims, so both deny the same payloads."""
        if not _trim_start(text).startswith("{"):
            raise ValueError("claims are not a JSON object")
        try:
            tree = _loads(text)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"claims are not valid JSON: {_short(error)}") from None
        problem = _shape_problem(tree)
        if problem:
            raise ValueError(f"claims are not valid JSON: {problem}")
        return cls(tree)

    @property
    def raw(self) -> dict:
        """The whole payload as parsed JSON."""
        return self._tree

    def pointer(self, key: str) -> Any:
        """A claim by JSON pointer (`/submods/gce/project_id`) or, without a leading `/`, by
        top-level name (`hwmodel`), as Vault's `bound_claims` keys work. `null` counts as
        missing (None)."""
        if not key.startswith("/"):
            return self._tree.get(key)
        value: Any = self._tree
        for token in key[1:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(value, dict):
                if token not in value:
                    return None
                value = value[token]
            elif isinstance(value, list):
                # As serde_json: a decimal index without sign or leading zero.
                if not token.isascii() or not token.isdigit() or (token[0] == "0" and token != "0"):
                    return None
                index = int(token)
                if index >= len(value):
                    return None
                value = value[index]
            else:
                return None
        return value

    def str(self, key: str) -> Optional[str]:
        """A string claim, by pointer or top-level name."""
        value = self.pointer(key)
        return value if isinstance(value, str) else None

    def strings(self, key: str) -> list:
        """A claim that may be a string or a list of strings, as a list (non-strings dropped)."""
        path = _WELL_KNOWN.get(key.lstrip("/"))
        if path is not None:
            return _loose_strings(self._known(path))
        return _loose_strings(self.pointer(key))

    def _known(self, path: tuple) -> Any:
        """A field of the structures the Rust SDK reads in its fast pass (sections on the way)."""
        value: Any = self._tree
        for depth, name in enumerate(path):
            value = (value if depth == 0 else _section(value)).get(name)
        return value

    def hwmodel(self) -> Optional[str]:
        value = self._tree.get("hwmodel")
        return value if isinstance(value, str) else None

    def swname(self) -> Optional[str]:
        value = self._tree.get("swname")
        return value if isinstance(value, str) else None

    def swversion(self) -> list:
        return _loose_strings(self._tree.get("swversion"))

    def dbgstat(self) -> Optional[str]:
        value = self._tree.get("dbgstat")
        return value if isinstance(value, str) else None

    def is_production(self) -> bool:
        """A production image: debugging disabled since boot."""
        return self.dbgstat() == PRODUCTION_DBGSTAT

    def support_attributes(self) -> Optional[list]:
        """None when absent, which is what debug images send."""
        value = self._known(("submods", "confidential_space", "support_attributes"))
        return None if value is None else _loose_strings(value)

    def memory_monitoring_enabled(self) -> Optional[bool]:
        space = _section(_section(self._tree.get("submods")).get("confidential_space"))
        return _section(space.get("monitoring_enabled")).get("memory")

    def image_digest(self) -> Optional[str]:
        value = self._known(("submods", "container", "image_digest"))
        return value if isinstance(value, str) else None

    def project_id(self) -> Optional[str]:
        value = self._known(("submods", "gce", "project_id"))
        return value if isinstance(value, str) else None

    def service_accounts(self) -> list:
        return _loose_strings(self._tree.get("google_service_accounts"))

    def tdx_tcb_status(self) -> Optional[str]:
        """The TDX TCB status; `tdx` is an object in real tokens and a list in the docs."""
        value = _section(self._tree.get("tdx")).get("gcp_attester_tcb_status")
        return value if isinstance(value, str) else None


def _shape_problem(tree: dict) -> Optional[str]:
    """Where the Rust SDK's typed fast pass refuses claims that Python's `json` accepts:
    `monitoring_enabled.memory` not a boolean, `image_signatures` not a list."""
    submods = _section(tree.get("submods"))
    space = _section(submods.get("confidential_space"))
    memory = _section(space.get("monitoring_enabled")).get("memory")
    if memory is not None and not isinstance(memory, bool):
        return f"invalid type: {_unexpected(memory)}, expected a boolean"
    signatures = _section(submods.get("container")).get("image_signatures", [])
    if not isinstance(signatures, list):
        return f"invalid type: {_unexpected(signatures)}, expected a sequence"
    return None


# ---------------------------------------------------------------------------------------------
# Configuration: a dataclass, read as serde reads a `#[serde(deny_unknown_fields)]` struct.


def _expected(kind: Any) -> str:
    """serde's name for what a field expects."""
    origin = typing.get_origin(kind)
    if kind is str:
        return "a string"
    if kind is bool:
        return "a boolean"
    if kind is int:
        return "i64"
    if kind is float:
        return "f64"
    if origin is list:
        return "a sequence"
    if origin is dict:
        return "a map"
    if dataclasses.is_dataclass(kind):
        return f"struct {kind.__name__}"
    return repr(kind)


def _optional_of(kind: Any) -> Optional[Any]:
    """T for `Optional[T]` (or `T | None`), else None."""
    if typing.get_origin(kind) in (typing.Union, _pytypes.UnionType):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(inner) == 1 and len(inner) < len(typing.get_args(kind)):
            return inner[0]
    return None


def _convert(value: Any, kind: Any, where: str) -> Any:
    inner = _optional_of(kind)
    if inner is not None:
        return None if value is None else _convert(value, inner, where)
    origin = typing.get_origin(kind)
    ok = (
        kind is Any
        or (kind is str and isinstance(value, str))
        or (kind is bool and isinstance(value, bool))
        or (kind is int and isinstance(value, int) and not isinstance(value, bool))
        or (kind is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (origin is list and isinstance(value, list))
        or (origin is dict and isinstance(value, dict))
        or (dataclasses.is_dataclass(kind) and isinstance(value, dict))
    )
    if not ok:
        raise ValueError(
            f"invalid type: {_unexpected(value)}, expected {_expected(kind)} (at `{where}`)"
        )
    if origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(kind) or (str, Any)
        return {k: _convert(v, item, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        return _build(value, kind, f"{where}.")
    return value


def _one_of(names: list) -> str:
    """serde's list of the fields it expected."""
    if not names:
        return "there are no fields"
    quoted = [f"`{name}`" for name in names]
    if len(quoted) == 1:
        return f"expected {quoted[0]}"
    if len(quoted) == 2:
        return f"expected {quoted[0]} or {quoted[1]}"
    return "expected one of " + ", ".join(quoted)


# Config dataclass -> (its init fields, their resolved type hints).
_SCHEMAS: dict = {}


def _schema(cls: type) -> tuple:
    """A configuration dataclass's fields and types, resolved once. `export` resolves the plugin's
    at import time, which componentize-py runs at build time: the result is in the component's
    pre-initialised memory, instead of `typing.get_type_hints` (about 1 ms of `eval`, several in
    WebAssembly) running again in every call's fresh instance."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"a policy's Config must be a dataclass, not {cls!r}")
        hints = typing.get_type_hints(cls)
        schema = _SCHEMAS[cls] = ([f for f in dataclasses.fields(cls) if f.init], hints)
        for kind in hints.values():
            _resolve_nested(kind)
    return schema


def _resolve_nested(kind: Any) -> None:
    if dataclasses.is_dataclass(kind):
        _schema(kind)
    for arg in typing.get_args(kind):
        _resolve_nested(arg)


def _build(obj: dict, cls: type, prefix: str = "") -> Any:
    """A dataclass from a JSON object: unknown keys refused, each value checked against the
    field's annotation, absent fields taking the dataclass defaults (an absent Optional field
    without a default is None, as serde does)."""
    fields, hints = _schema(cls)
    names = [f.name for f in fields]
    values: dict = {}
    # In the JSON text's order, so the first problem reported is the one serde reports.
    for key, value in obj.items():
        if key not in names:
            raise ValueError(f"unknown field `{prefix}{key}`, {_one_of(names)}")
        values[key] = _convert(value, hints[key], prefix + key)
    for f in fields:
        if f.name in values:
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if _optional_of(hints[f.name]) is None:
                raise ValueError(f"missing field `{prefix}{f.name}`")
            values[f.name] = None
    return cls(**values)


def parse_config(text: str, cls: type) -> Any:
    """The collaborator's `plugin_config` (JSON text) as an instance of the dataclass `cls`.
    Raises ValueError with the message the host shows when it refuses the configuration."""
    try:
        tree = _loads(text)
        if not isinstance(tree, dict):
            raise ValueError(f"invalid type: {_unexpected(tree)}, expected struct {cls.__name__}")
        return _build(tree, cls)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"invalid plugin configuration: {_short(error)}") from None


# ---------------------------------------------------------------------------------------------
# Reports and rules: the same reasons, word for word, as `plugins/sdk/src/rules.rs`.


def _reason(claim: Optional[str], passed: bool, message: str) -> types.Reason:
    return types.Reason(None if claim is None else pointer(claim), passed, message)


class Report:
    """Collects reasons; the verdict allows only if there is at least one and every one passed."""

    def __init__(self) -> None:
        self.reasons: list = []
        self._role: Optional[str] = None

    def add(self, reason: types.Reason) -> "Report":
        """Adds a reason, usually one from this module's rules."""
        self.reasons.append(reason)
        return self

    def pass_(self, claim: Optional[str], message: str) -> "Report":
        """Adds a rule that held. `claim` is the claim it looked at (a JSON pointer or a top-level
        name), or None when the rule concerns no single claim (say, a time window)."""
        return self.add(_reason(claim, True, message))

    def fail(self, claim: Optional[str], message: str) -> "Report":
        """Adds a rule that failed; `claim` as in `pass_`."""
        return self.add(_reason(claim, False, message))

    def role(self, role: str) -> "Report":
        """The Vault role to log in with, overriding the collaborator's configured `role`. The host
        refuses a role that is empty, longer than 256 bytes, or holds whitespace or control
        characters."""
        self._role = role
        return self

    def passed(self) -> bool:
        """Whether there is at least one reason and every one passed."""
        return bool(self.reasons) and all(reason.passed is True for reason in self.reasons)

    def verdict(self) -> types.Verdict:
        """The verdict. Fails closed: a policy that checked nothing denies."""
        if not self.reasons:
            self.fail(None, "the policy checked no rule, so nothing vouches for this workload")
        return types.Verdict(self.passed(), list(self.reasons), types.Login(self._role))


def one_of(claims: Claims, key: str, allowed: list) -> types.Reason:
    """The claim (a string, or a list of strings of which any one counts) must be in `allowed`."""
    found = claims.strings(key)
    if not found:
        return _reason(key, False, f'claim "{key}" is missing; allowed: {rust_debug(allowed)}')
    passed = any(value in allowed for value in found)
    verb = "is" if passed else "is not"
    return _reason(key, passed, f"{_quoted(found)} {verb} one of {rust_debug(allowed)}")


def production_only(claims: Claims) -> types.Reason:
    """Production images only: `dbgstat` must be `disabled-since-boot`."""
    status = claims.dbgstat()
    if status is None:
        return _reason("/dbgstat", False, "dbgstat is missing; a production image is required")
    if claims.is_production():
        return _reason("/dbgstat", True, f'production image (dbgstat "{status}")')
    return _reason(
        "/dbgstat", False, f'debug image (dbgstat "{status}"); a production image is required'
    )


def support_attribute(claims: Claims, attribute: str) -> types.Reason:
    """`support_attributes` must contain `attribute` (debug images have none at all)."""
    key = "/submods/confidential_space/support_attributes"
    found = claims.support_attributes()
    if found is None:
        return _reason(
            key,
            False,
            f'support_attributes is absent (as on debug images); "{attribute}" is required',
        )
    passed = attribute in found
    verb = "include" if passed else "do not include"
    return _reason(key, passed, f'support attributes {_quoted(found)} {verb} "{attribute}"')


def min_swversion(claims: Claims, minimum: str) -> types.Reason:
    """Some `swversion` must be at least `minimum` (both compared as numbers)."""
    key = "/swversion"
    found = claims.swversion()
    floor = parse_u64(minimum)
    if floor is None:
        return _reason(key, False, f'the minimum swversion "{minimum}" is not a number')
    passed = any(v is not None and v >= floor for v in map(parse_u64, found))
    verb = "meets" if passed else "is below"
    return _reason(key, passed, f"swversion {_quoted(found)} {verb} the minimum {minimum}")


def is_sha256_digest(digest: str) -> bool:
    """Whether `digest` is `sha256:` followed by 64 lowercase hex digits."""
    hex_part = digest[len("sha256:"):] if digest.startswith("sha256:") else None
    return (
        hex_part is not None
        and len(hex_part) == 64
        and all(c in "0123456789abcdef" for c in hex_part)
    )


def tdx_up_to_date(claims: Claims) -> types.Reason:
    """On TDX hardware the attester TCB must be `UpToDate`; other hardware passes as not
    applicable."""
    key = "/tdx/gcp_attester_tcb_status"
    hwmodel = claims.hwmodel()
    if hwmodel != "GCP_INTEL_TDX":
        return _reason(
            key,
            True,
            f"not a TDX machine (hwmodel {_debug_option(hwmodel)}); TCB status does not apply",
        )
    status = claims.tdx_tcb_status()
    if status == "UpToDate":
        return _reason(key, True, 'TDX TCB status is "UpToDate"')
    if status is None:
        return _reason(key, False, "TDX TCB status is missing on a TDX machine")
    return _reason(key, False, f'TDX TCB status is "{status}", "UpToDate" is required')


def memory_monitoring_disabled(claims: Claims) -> types.Reason:
    """Memory monitoring must be disabled (monitoring exposes workload memory statistics)."""
    key = "/submods/confidential_space/monitoring_enabled/memory"
    enabled = claims.memory_monitoring_enabled()
    if enabled is False:
        return _reason(key, True, "memory monitoring is disabled")
    if enabled is True:
        return _reason(key, False, "memory monitoring is enabled; it must be disabled")
    return _reason(key, False, "memory monitoring status is missing")


# ---------------------------------------------------------------------------------------------
# The exported interface.


@dataclasses.dataclass
class Context:
    """Who a call is for, with the collaborator's configuration already parsed."""

    # The collaborator's name, from the host configuration.
    collaborator: str
    # The collaborator's `plugin_config`, as an instance of the policy's `Config` dataclass.
    config: Any
    # The moment the token is checked at (Unix seconds). Time-based rules use this, never a clock
    # of their own, so a decision can be reproduced. In `audience` it is the current time.
    verification_time: int
    # The Vault role the host logs in with unless the verdict names another (the collaborator's
    # configured `role`); None when it has no role login.
    vault_role: Optional[str] = None


# Log lines written with no host (the plugin's code run natively, as in its unit tests).
native_log: list = []


def log(level: host.LogLevel, message: str) -> None:
    """Writes a line to the host's log (capped by the host; flooding it is a deny). Run natively,
    there is no host: the line is kept in `native_log` for tests to read."""
    try:
        host.log(level, message)
    except NotImplementedError:
        # The bindings `componentize-py bindings` writes for native use are stubs.
        native_log.append((level, message))


def oidc(audience: str, nonces: Iterable[str] = ()) -> types.AudienceRequest:
    """An OIDC token for `audience`, with these nonces bound into `eat_nonce`."""
    return types.AudienceRequest(audience, types.TokenType.OIDC, list(nonces))


def deny(claim: Optional[str], message: str) -> types.Verdict:
    """A deny with one failed reason about `claim` (a JSON pointer), or about no single claim."""
    return types.Verdict(False, [_reason(claim, False, message)], types.Login(None))


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "…"


def _bug(call: str, error: BaseException) -> str:
    """The message for an exception the policy did not mean to raise: a bug, so say where."""
    message = f"the policy failed in {call}: {type(error).__name__}: {_short(error)}"
    try:
        log(host.LogLevel.ERROR, message)
    except Exception:  # noqa: BLE001 - the verdict below must still be returned
        pass
    return message


def _context(policy: Any, ctx: types.Context) -> Context:
    return Context(
        ctx.collaborator,
        parse_config(ctx.config, policy.Config),
        ctx.verification_time,
        ctx.vault_role,
    )


def _checked(verdict: Any) -> types.Verdict:
    """The policy's answer as a verdict the host accepts, or a deny: an allow must have reasons,
    all passed."""
    if isinstance(verdict, Report):
        return verdict.verdict()
    if not isinstance(verdict, types.Verdict):
        return deny(None, f"the policy returned {type(verdict).__name__}, not a Report or Verdict")
    if verdict.allow is True and not (
        verdict.reasons and all(reason.passed is True for reason in verdict.reasons)
    ):
        return deny(None, "the policy allowed with a failed rule, or with none checked")
    return verdict


def export(policy: Any) -> type:
    """The class componentize-py exports as the plugin's `policy` interface; bind it to the name
    `Policy` in the plugin's module (`Policy = export(MyPolicy())`).

    `policy` has a `Config` dataclass and the methods `audience(ctx)` and `evaluate(ctx, claims)`,
    and optionally `validate(config)`, which raises ConfigError to refuse a configuration."""
    # At import, so at build time: a Config that is not a dataclass fails the build, not a call.
    _schema(policy.Config)

    class Policy(exports.Policy):
        def validate_config(self, ctx: types.Context) -> None:
            try:
                config = parse_config(ctx.config, policy.Config)
            except ValueError as error:
                # Already worded for the operator: which key, what was expected.
                raise Err(str(error)) from None
            except Exception as error:  # noqa: BLE001 - any exception refuses, never accepts
                raise Err(_bug("validate", error)) from None
            try:
                validate = getattr(policy, "validate", None)
                if validate is not None:
                    validate(config)
            except ConfigError as error:
                raise Err(str(error)) from None
            except Exception as error:  # noqa: BLE001
                raise Err(_bug("validate", error)) from None

        def select_audience(self, ctx: types.Context) -> types.AudienceRequest:
            try:
                context = _context(policy, ctx)
            except ValueError as error:
                raise Err(str(error)) from None
            except Exception as error:  # noqa: BLE001
                raise Err(_bug("audience", error)) from None
            try:
                request = policy.audience(context)
            except ConfigError as error:
                raise Err(str(error)) from None
            except Exception as error:  # noqa: BLE001
                raise Err(_bug("audience", error)) from None
            if not isinstance(request, types.AudienceRequest):
                raise Err(f"the policy's audience returned {type(request).__name__}, not an "
                          "AudienceRequest (use attestgate_sdk.oidc)")
            return request

        def evaluate(self, ctx: types.Context, claims: str) -> types.Verdict:
            try:
                context = _context(policy, ctx)
                parsed = Claims.parse(claims)
            except ValueError as error:
                return deny(None, str(error))
            except Exception as error:  # noqa: BLE001
                return deny(None, _bug("evaluate", error))
            try:
                return _checked(policy.evaluate(context, parsed))
            except BaseException as error:  # noqa: BLE001 - even sys.exit() denies, never allows
                return deny(None, _bug("evaluate", error))

    Policy.__qualname__ = f"Policy({type(policy).__name__})"
    return Policy
