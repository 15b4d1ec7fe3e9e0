// attestgate guest SDK for policy plugins written in JavaScript.
//
// Why this file exists: a JavaScript plugin runs the same contract (wit/policy.wit) as a Rust one,
// and a collaborator comparing the two must see the same verdicts, the same failed claim pointers
// and the same reason messages. So this SDK mirrors the Rust SDK (plugins/sdk) rule by rule: the
// claim reader keeps its lenient shapes, the rules keep their messages, and `definePolicy` keeps
// its dispatch (configuration parsed strictly, bad configuration or claims denied, not allowed).
//
// It also closes the gaps that the JavaScript bindings (componentize-js) open:
// - a `result<_, string>` export succeeds when the function *returns*, whatever it returns, and
//   traps when it throws anything but a string; so every refusal here is thrown as a string;
// - an exception escaping `evaluate` would trap (the host denies, but the operator reads a stack
//   trace); here it becomes a deny whose reason says what failed;
// - `s64` arrives as a BigInt (`ctx.verificationTime`); `verificationSeconds` is the same moment
//   as a Number, exact for any date before the year 285,000.
//
// Module layout: text helpers (Rust's `{:?}` and `trim`), Claims, Report, rules, configuration
// fields, definePolicy.

import { log as hostLog } from 'attestgate:policy/host@0.3.0';

/** The contract version this SDK builds against: the `package` line of wit/policy.wit. */
export const CONTRACT_VERSION = '0.3.0';

/** `dbgstat` of a production image. */
export const PRODUCTION_DBGSTAT = 'disabled-since-boot';

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];

/**
 * Writes one line to the host's log, tagged with the collaborator and the plugin's sha256.
 * `level` is 'debug', 'info', 'warn' or 'error'. The host caps the output; flooding it is a deny.
 */
export function log(level, message) {
  hostLog(LOG_LEVELS.includes(level) ? level : 'error', String(message));
}

// ---------------------------------------------------------------------------------------------
// Text helpers: the Rust plugins write values with Rust's `{:?}` and compare after Rust's `trim`,
// and an operator diffing the two plugins' logs should see the same bytes.

// Rust's `char::is_whitespace` (Unicode White_Space). JavaScript's `trim` differs: it strips
// U+FEFF and keeps U+0085.
const RUST_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Rust's `str::trim`. */
export function rustTrim(text) {
  const chars = Array.from(text);
  let start = 0;
  let end = chars.length;
  while (start < end && RUST_WHITESPACE.has(chars[start].codePointAt(0))) start += 1;
  while (end > start && RUST_WHITESPACE.has(chars[end - 1].codePointAt(0))) end -= 1;
  return chars.slice(start, end).join('');
}

// Code points Rust's `{:?}` writes as `\u{…}`: not printable, or grapheme extenders. The engine
// has no Unicode property escapes, so this lists the ranges that occur in practice (controls,
// format characters, separators other than space, private use, lone surrogates, combining
// marks); an unassigned code point may still print differently from Rust.
const ESCAPED_RANGES = [
  [0x00, 0x1f], [0x7f, 0x9f], [0xad, 0xad], [0xa0, 0xa0], [0x300, 0x36f], [0x483, 0x489],
  [0x600, 0x605], [0x61c, 0x61c], [0x6dd, 0x6dd], [0x70f, 0x70f], [0x890, 0x891],
  [0x8e2, 0x8e2], [0x1680, 0x1680], [0x180e, 0x180e], [0x1ab0, 0x1aff], [0x1dc0, 0x1dff],
  [0x2000, 0x200f], [0x2028, 0x202f], [0x205f, 0x2064], [0x2066, 0x206f], [0x20d0, 0x20f0],
  [0x3000, 0x3000], [0xd800, 0xdfff], [0xe000, 0xf8ff], [0xfe00, 0xfe0f], [0xfe20, 0xfe2f],
  [0xfeff, 0xfeff], [0xfff9, 0xfffb], [0xfffe, 0xffff], [0xe0001, 0xe0001],
  [0xe0020, 0xe007f], [0xe0100, 0xe01ef], [0xf0000, 0x10ffff],
];

const SHORT_ESCAPES = { 0: '\\0', 9: '\\t', 10: '\\n', 13: '\\r', 34: '\\"', 92: '\\\\' };

/** A string as Rust's `{:?}` writes it: quoted, with `"`, `\` and invisible characters escaped. */
export function debugString(text) {
  let out = '"';
  for (const ch of String(text)) {
    const code = ch.codePointAt(0);
    if (code in SHORT_ESCAPES) {
      out += SHORT_ESCAPES[code];
    } else if (ESCAPED_RANGES.some(([lo, hi]) => code >= lo && code <= hi)) {
      out += `\\u{${code.toString(16)}}`;
    } else {
      out += ch;
    }
  }
  return `${out}"`;
}

/** A list of strings as Rust's `{:?}` writes it: `["a", "b"]`. */
export function debugList(values) {
  return `[${values.map(debugString).join(', ')}]`;
}

/** Rust's `{:?}` of an optional string: `Some("x")` or `None`. */
function debugOption(value) {
  return value === undefined ? 'None' : `Some(${debugString(value)})`;
}

/** A list of found claim values, quoted without escaping, as the Rust rules write them. */
function quoted(values) {
  return `[${values.map((v) => `"${v}"`).join(', ')}]`;
}

// Where each value of a JSON text starts and ends, so a message can name the line and column
// that serde_json would. Used only when a message needs it, on text JSON.parse has accepted.
// A node is {kind: '{' | '[' | 'scalar', start, end, entries: [{key, keyEnd, node}], items}.
function scanJson(text) {
  let i = 0;
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i += 1;
  };
  const skipString = () => {
    i += 1;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i += 1;
  };
  const value = () => {
    space();
    const start = i;
    const open = text[i];
    if (open !== '{' && open !== '[') {
      if (open === '"') skipString();
      else while (i < text.length && !',]} \t\n\r'.includes(text[i])) i += 1;
      return { kind: 'scalar', start, end: i, entries: [], items: [] };
    }
    const node = { kind: open, start, end: 0, entries: [], items: [] };
    i += 1;
    space();
    if (text[i] === (open === '{' ? '}' : ']')) {
      i += 1;
    } else {
      for (;;) {
        if (open === '{') {
          space();
          const keyStart = i;
          skipString();
          const keyEnd = i;
          space();
          i += 1; // the colon
          node.entries.push({ key: JSON.parse(text.slice(keyStart, keyEnd)), keyEnd, node: value() });
        } else {
          node.items.push(value());
        }
        space();
        if (text[i++] !== ',') break;
      }
    }
    node.end = i;
    return node;
  };
  return value();
}

// serde_json points after a scalar of the wrong type, and at the start of a list or map.
function wrongTypeAt(node) {
  return node.kind === 'scalar' ? node.end : node.start;
}

// " at line L column C" for a UTF-16 index into `text`, columns counted in UTF-8 bytes as
// serde_json counts them.
function position(text, index) {
  let line = 1;
  let column = 0;
  for (let i = 0; i < index; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line += 1;
      column = 0;
    } else {
      column += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
    }
  }
  return ` at line ${line} column ${column}`;
}

// ---------------------------------------------------------------------------------------------
// Claims

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// The shapes the Rust claim reader accepts. A section (an object of known shape) is the object,
// or the first element of a list (the documented shape of `tdx`), or empty when it is anything
// else. A loose claim is kept as a string or a list's strings, and otherwise only as present.
function section(value) {
  if (Array.isArray(value)) return value.length > 0 ? section(value[0]) : {};
  return isObject(value) ? value : {};
}

function looseStr(value) {
  return typeof value === 'string' ? value : undefined;
}

function looseStrings(value) {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((item) => typeof item === 'string');
  return [];
}

// How serde names a JSON value that has the wrong type, for messages identical to the Rust SDK's.
function unexpected(value) {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return `boolean \`${value}\``;
  if (typeof value === 'number') {
    return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
  }
  if (typeof value === 'string') return `string ${debugString(value)}`;
  return Array.isArray(value) ? 'sequence' : 'map';
}

// The claims the Rust SDK reads in its fast pass, by the keys rules use for them.
// A Map, not an object: a claim named `constructor` must not find Object's.
const WELL_KNOWN = new Map(Object.entries({
  iss: (t) => t.iss,
  sub: (t) => t.sub,
  aud: (t) => t.aud,
  eat_nonce: (t) => t.eat_nonce,
  hwmodel: (t) => t.hwmodel,
  swname: (t) => t.swname,
  swversion: (t) => t.swversion,
  dbgstat: (t) => t.dbgstat,
  google_service_accounts: (t) => t.google_service_accounts,
  'submods/confidential_space/support_attributes': (t) =>
    section(section(t.submods).confidential_space).support_attributes,
  'submods/container/image_digest': (t) => section(section(t.submods).container).image_digest,
  'submods/container/image_reference': (t) =>
    section(section(t.submods).container).image_reference,
  'submods/gce/project_id': (t) => section(section(t.submods).gce).project_id,
}));

/** RFC 6901 lookup, with serde_json's rules for array indices (no sign, no leading zero). */
function jsonPointer(tree, pointer) {
  if (pointer === '') return tree;
  if (!pointer.startsWith('/')) return undefined;
  let node = tree;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      node = node[Number(token)];
    } else if (isObject(node)) {
      node = Object.prototype.hasOwnProperty.call(node, token) ? node[token] : undefined;
    } else {
      return undefined;
    }
    if (node === undefined) return undefined;
  }
  return node;
}

// The node at `path`, reading each object on the way as `section` does (a list stands for its
// first element); the last of duplicated keys, as JSON.parse keeps.
function sectionPath(root, path) {
  let node = root;
  for (const key of path) {
    while (node.kind === '[' && node.items.length > 0) node = node.items[0];
    node = node.entries.filter((e) => e.key === key).pop().node;
  }
  return node;
}

/** A verified token's payload. Read-only; every accessor is lenient about shapes. */
export class Claims {
  /**
   * Reads the payload JSON the host passes in. Throws a message (a string) when it is not a JSON
   * object, or when a claim the Rust SDK types strictly has another type.
   */
  static parse(json) {
    const text = String(json);
    if (!rustTrim(text).startsWith('{')) {
      throw 'claims are not a JSON object';
    }
    let tree;
    try {
      tree = JSON.parse(text);
    } catch (e) {
      throw `claims are not valid JSON: ${e && e.message ? e.message : e}`;
    }
    if (!isObject(tree)) throw 'claims are not a JSON object';
    // The two claims the Rust reader types strictly: a token where they have another shape is
    // refused whole, in both languages, with the first mistake in the text named.
    const submods = section(tree.submods);
    const memory = section(section(submods.confidential_space).monitoring_enabled).memory;
    const signatures = section(submods.container).image_signatures;
    const mistakes = [];
    if (memory !== undefined && memory !== null && typeof memory !== 'boolean') {
      mistakes.push([`invalid type: ${unexpected(memory)}, expected a boolean`,
        ['submods', 'confidential_space', 'monitoring_enabled', 'memory']]);
    }
    if (signatures !== undefined && !Array.isArray(signatures)) {
      mistakes.push([`invalid type: ${unexpected(signatures)}, expected a sequence`,
        ['submods', 'container', 'image_signatures']]);
    }
    if (mistakes.length > 0) {
      const root = scanJson(text);
      const located = mistakes.map(([what, path]) => [what, sectionPath(root, path)]);
      located.sort((a, b) => a[1].start - b[1].start);
      const [what, node] = located[0];
      throw `claims are not valid JSON: ${what}${position(text, wrongTypeAt(node))}`;
    }
    return new Claims(tree);
  }

  constructor(tree) {
    /** The whole payload, parsed. */
    this.raw = tree;
  }

  /**
   * A claim by JSON pointer (`/submods/gce/project_id`) or, without a leading `/`, by top-level
   * name (`hwmodel`), as Vault's `bound_claims` keys work. `null` counts as missing (undefined).
   */
  pointer(key) {
    const value = key.startsWith('/')
      ? jsonPointer(this.raw, key)
      : Object.prototype.hasOwnProperty.call(this.raw, key) ? this.raw[key] : undefined;
    return value === null ? undefined : value;
  }

  /** A string claim, by pointer or top-level name; undefined when missing or not a string. */
  str(key) {
    return looseStr(this.pointer(key));
  }

  /** A claim that may be a string or a list of strings, as a list (non-strings dropped). */
  strings(key) {
    const known = WELL_KNOWN.get(key.replace(/^\/+/, ''));
    return looseStrings(known ? known(this.raw) : this.pointer(key));
  }

  issuer() { return looseStr(this.raw.iss); }
  subject() { return looseStr(this.raw.sub); }
  audiences() { return looseStrings(this.raw.aud); }
  nonces() { return looseStrings(this.raw.eat_nonce); }
  hwmodel() { return looseStr(this.raw.hwmodel); }
  swname() { return looseStr(this.raw.swname); }
  swversion() { return looseStrings(this.raw.swversion); }
  dbgstat() { return looseStr(this.raw.dbgstat); }
  serviceAccounts() { return looseStrings(this.raw.google_service_accounts); }

  /** `exp` in whole seconds, or undefined when it is not a number. */
  expiresAt() { return typeof this.raw.exp === 'number' ? Math.trunc(this.raw.exp) : undefined; }

  /** `iat` in whole seconds, or undefined when it is not a number. */
  issuedAt() { return typeof this.raw.iat === 'number' ? Math.trunc(this.raw.iat) : undefined; }

  /** A production image: debugging disabled since boot. */
  isProduction() { return this.dbgstat() === PRODUCTION_DBGSTAT; }

  /** The support attributes, or undefined when absent (which is what debug images send). */
  supportAttributes() {
    const value = section(section(this.raw.submods).confidential_space).support_attributes;
    return value === undefined || value === null ? undefined : looseStrings(value);
  }

  /** true, false, or undefined when the claim is missing. */
  memoryMonitoringEnabled() {
    const submods = section(this.raw.submods);
    const memory = section(section(submods.confidential_space).monitoring_enabled).memory;
    return typeof memory === 'boolean' ? memory : undefined;
  }

  imageDigest() { return looseStr(this.#container().image_digest); }
  imageReference() { return looseStr(this.#container().image_reference); }

  /** Each entry of `submods.container.image_signatures`, as `{keyId, signatureAlgorithm}`. */
  imageSignatures() {
    return (this.#container().image_signatures || []).map((entry) => {
      const s = section(entry);
      return { keyId: looseStr(s.key_id), signatureAlgorithm: looseStr(s.signature_algorithm) };
    });
  }

  projectId() { return looseStr(section(section(this.raw.submods).gce).project_id); }

  /** The TDX TCB status; `tdx` is an object in real tokens and a list in the docs. */
  tdxTcbStatus() { return looseStr(section(this.raw.tdx).gcp_attester_tcb_status); }

  #container() {
    return section(section(this.raw.submods).container);
  }
}

// ---------------------------------------------------------------------------------------------
// Reasons, reports and verdicts

/**
 * A claim key as a JSON pointer: a top-level name such as `hwmodel` becomes `/hwmodel` (escaped
 * per RFC 6901), and a pointer stays as it is.
 */
export function pointer(key) {
  if (key.startsWith('/')) return key;
  return `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

function reason(claim, passed, message) {
  return { claim: claim === null || claim === undefined ? null : pointer(claim), passed, message };
}

/** A deny with one failed reason about `claim` (a pointer or top-level name), or about none. */
export function deny(claim, message) {
  return { allow: false, reasons: [reason(claim, false, String(message))], login: { role: null } };
}

/** Collects reasons; the verdict allows only if there is at least one and all passed. */
export class Report {
  #reasons = [];
  #role = null;

  /** Adds a reason, usually one from `rules`. */
  add(r) {
    this.#reasons.push(r);
    return this;
  }

  /**
   * Adds a rule that held. `claim` is the claim it looked at (a JSON pointer or a top-level name),
   * or null when the rule concerns no single claim (say, a time window).
   */
  pass(claim, message) {
    return this.add(reason(claim, true, String(message)));
  }

  /** Adds a rule that failed; `claim` as in `pass`. */
  fail(claim, message) {
    return this.add(reason(claim, false, String(message)));
  }

  /**
   * The Vault role to log in with, overriding the collaborator's configured `role`. The host
   * refuses a role that is empty, longer than 256 bytes, or holds whitespace or control characters.
   */
  role(role) {
    this.#role = String(role);
    return this;
  }

  /** Whether there is at least one reason and every one passed. */
  passed() {
    return this.#reasons.length > 0 && this.#reasons.every((r) => r.passed === true);
  }

  /** The verdict. Fails closed: a policy that checked nothing denies. */
  verdict() {
    if (this.#reasons.length === 0) {
      this.fail(null, 'the policy checked no rule, so nothing vouches for this workload');
    }
    return { allow: this.passed(), reasons: [...this.#reasons], login: { role: this.#role } };
  }
}

// ---------------------------------------------------------------------------------------------
// Rules: the same checks, claim pointers and messages as plugins/sdk/src/rules.rs.

/** Whether `digest` is `sha256:` followed by 64 lowercase hex digits. */
export function isSha256Digest(digest) {
  return typeof digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(digest);
}

/**
 * A `swversion` like "260900" as a BigInt, read as Rust's `u64` after `trim` (an optional `+`,
 * digits, at most 2^64 - 1); undefined when it is not one.
 */
export function versionNumber(text) {
  const t = rustTrim(text);
  if (!/^\+?[0-9]+$/.test(t)) return undefined;
  const n = BigInt(t.replace(/^\+/, ''));
  return n <= 0xffffffffffffffffn ? n : undefined;
}

/**
 * Matches `text` against a glob where `*` matches any run of characters (Vault's
 * `bound_claims_type: glob`).
 */
export function globMatch(pattern, text) {
  let [pi, ti, star, mark] = [0, 0, -1, 0];
  while (ti < text.length) {
    if (pi < pattern.length && pattern[pi] === '*') {
      star = pi;
      mark = ti;
      pi += 1;
    } else if (pi < pattern.length && pattern[pi] === text[ti]) {
      pi += 1;
      ti += 1;
    } else if (star >= 0) {
      pi = star + 1;
      mark += 1;
      ti = mark;
    } else {
      return false;
    }
  }
  return /^\**$/.test(pattern.slice(pi));
}

export const rules = {
  /** The claim (a string, or a list of strings of which any one counts) must be in `allowed`. */
  oneOf(claims, key, allowed) {
    const found = claims.strings(key);
    if (found.length === 0) {
      return reason(key, false, `claim "${key}" is missing; allowed: ${debugList(allowed)}`);
    }
    const passed = found.some((value) => allowed.includes(value));
    const verb = passed ? 'is' : 'is not';
    return reason(key, passed, `${quoted(found)} ${verb} one of ${debugList(allowed)}`);
  },

  /** The list claim must contain at least one of `wanted`. */
  containsAny(claims, key, wanted) {
    const found = claims.strings(key);
    const passed = found.some((value) => wanted.includes(value));
    const verb = passed ? 'contains' : 'does not contain';
    return reason(key, passed, `${quoted(found)} ${verb} any of ${debugList(wanted)}`);
  },

  /** Production images only: `dbgstat` must be `disabled-since-boot`. */
  productionOnly(claims) {
    const status = claims.dbgstat();
    if (status === undefined) {
      return reason('/dbgstat', false, 'dbgstat is missing; a production image is required');
    }
    if (claims.isProduction()) {
      return reason('/dbgstat', true, `production image (dbgstat "${status}")`);
    }
    return reason(
      '/dbgstat',
      false,
      `debug image (dbgstat "${status}"); a production image is required`,
    );
  },

  /** `support_attributes` must contain `attribute` (debug images have none at all). */
  supportAttribute(claims, attribute) {
    const key = '/submods/confidential_space/support_attributes';
    const found = claims.supportAttributes();
    if (found === undefined) {
      return reason(
        key,
        false,
        `support_attributes is absent (as on debug images); "${attribute}" is required`,
      );
    }
    const passed = found.includes(attribute);
    const verb = passed ? 'include' : 'do not include';
    return reason(key, passed, `support attributes ${quoted(found)} ${verb} "${attribute}"`);
  },

  /** Some `swversion` must be at least `minimum` (a number as text, like "260600"). */
  minSwversion(claims, minimum) {
    const key = '/swversion';
    const found = claims.swversion();
    const min = versionNumber(minimum);
    if (min === undefined) {
      return reason(key, false, `the minimum swversion "${minimum}" is not a number`);
    }
    const passed = found.some((v) => {
      const n = versionNumber(v);
      return n !== undefined && n >= min;
    });
    const verb = passed ? 'meets' : 'is below';
    return reason(key, passed, `swversion ${quoted(found)} ${verb} the minimum ${minimum}`);
  },

  /** On TDX hardware the attester TCB must be `UpToDate`; other hardware passes as not applicable. */
  tdxUpToDate(claims) {
    const key = '/tdx/gcp_attester_tcb_status';
    const hwmodel = claims.hwmodel();
    if (hwmodel !== 'GCP_INTEL_TDX') {
      return reason(
        key,
        true,
        `not a TDX machine (hwmodel ${debugOption(hwmodel)}); TCB status does not apply`,
      );
    }
    const status = claims.tdxTcbStatus();
    if (status === 'UpToDate') return reason(key, true, 'TDX TCB status is "UpToDate"');
    if (status === undefined) {
      return reason(key, false, 'TDX TCB status is missing on a TDX machine');
    }
    return reason(key, false, `TDX TCB status is "${status}", "UpToDate" is required`);
  },

  /** Memory monitoring must be disabled (monitoring exposes workload memory statistics). */
  memoryMonitoringDisabled(claims) {
    const key = '/submods/confidential_space/monitoring_enabled/memory';
    const enabled = claims.memoryMonitoringEnabled();
    if (enabled === false) return reason(key, true, 'memory monitoring is disabled');
    if (enabled === true) {
      return reason(key, false, 'memory monitoring is enabled; it must be disabled');
    }
    return reason(key, false, 'memory monitoring status is missing');
  },
};

// ---------------------------------------------------------------------------------------------
// Configuration fields: the collaborator's `plugin_config` is parsed as strictly as the Rust
// plugins' `#[serde(deny_unknown_fields)]` structs, with serde's messages, so a misspelled key or
// a wrong type refuses the configuration at load instead of silently dropping a rule.

const REQUIRED = Symbol('required');

// A mistake in one configuration value: what serde would say, and which list item (if any) it is
// about, so the message can point where serde points.
class Mistake {
  constructor(text, item) {
    this.text = text;
    this.item = item;
  }
}

function makeField(check) {
  // `optional`: absent or null is null (Rust's `Option<T>`). `default`: the value when absent.
  return ({ optional = false, default: fallback = REQUIRED } = {}) => ({
    read(name, present, value) {
      if (!present) {
        if (fallback !== REQUIRED) return Array.isArray(fallback) ? [...fallback] : fallback;
        if (optional) return null;
        throw new Mistake(`missing field \`${name}\``);
      }
      if (value === null && optional) return null;
      return check(value);
    },
  });
}

function typed(kind, description, item) {
  return (value) => {
    if (typeof value !== kind) {
      throw new Mistake(`invalid type: ${unexpected(value)}, expected ${description}`, item);
    }
    return value;
  };
}

/** Field kinds for `definePolicy({config: {...}})`. */
export const field = {
  /** A string (Rust `String`, or `Option<String>` with `optional: true`). */
  string: makeField(typed('string', 'a string')),
  /** A boolean (Rust `bool`; give it a `default`). */
  bool: makeField(typed('boolean', 'a boolean')),
  /** A list of strings (Rust `Vec<String>`, or `Option<Vec<String>>` with `optional: true`). */
  strings: makeField((value) => {
    if (!Array.isArray(value)) {
      throw new Mistake(`invalid type: ${unexpected(value)}, expected a sequence`);
    }
    return value.map((item, i) => typed('string', 'a string', i)(item));
  }),
};

// serde's list of the fields it expected, for the unknown-field message.
function expectedFields(names) {
  const quotedNames = names.map((n) => `\`${n}\``);
  if (quotedNames.length === 0) return 'there are no fields';
  if (quotedNames.length === 1) return `expected ${quotedNames[0]}`;
  if (quotedNames.length === 2) return `expected ${quotedNames[0]} or ${quotedNames[1]}`;
  return `expected one of ${quotedNames.join(', ')}`;
}

function parseConfig(schema, text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw `invalid plugin configuration: ${message(e)}`;
  }
  if (!schema) return value;
  const refuse = (what, index) => {
    throw `invalid plugin configuration: ${what}${position(text, index)}`;
  };
  // Where things are is only needed for a message, so the text is scanned only then.
  const root = () => scanJson(text);
  const entry = (key) => root().entries.filter((e) => e.key === key).pop();
  // An array is refused outright, where serde would read its elements as the fields in order:
  // nobody means that, and positional configuration is a silent mistake waiting to happen.
  if (!isObject(value)) refuse(`invalid type: ${unexpected(value)}, expected struct Config`, wrongTypeAt(root()));
  // serde reads the keys in document order and stops at the first mistake, then names the
  // first missing field in declaration order; the same order gives the same message.
  const names = Object.keys(schema);
  const config = {};
  for (const key of Object.keys(value)) {
    if (!names.includes(key)) refuse(`unknown field \`${key}\`, ${expectedFields(names)}`, entry(key).keyEnd);
    try {
      config[key] = schema[key].read(key, true, value[key]);
    } catch (e) {
      if (!(e instanceof Mistake)) throw e;
      const node = entry(key).node;
      refuse(e.text, wrongTypeAt(e.item === undefined ? node : node.items[e.item]));
    }
  }
  for (const name of names) {
    if (!Object.prototype.hasOwnProperty.call(value, name)) {
      try {
        config[name] = schema[name].read(name, false, undefined);
      } catch (e) {
        if (!(e instanceof Mistake)) throw e;
        refuse(e.text, root().end);
      }
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// definePolicy: the plugin's `policy` export.

/** Text of anything thrown: strings as they are, errors by their message. */
function message(e) {
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message || e.name;
  try {
    return String(e);
  } catch {
    return 'an exception that cannot be printed';
  }
}

function context(schema, ctx) {
  return {
    collaborator: ctx.collaborator,
    config: parseConfig(schema, ctx.config),
    verificationTime: ctx.verificationTime,
    verificationSeconds: Number(ctx.verificationTime),
    vaultRole: ctx.vaultRole,
  };
}

/** An OIDC token for `audience`, with optional nonces. */
export function oidc(audience, nonces = []) {
  return { audience, tokenType: 'oidc', nonces };
}

/** A PKI token (signed by a leaf under the attestation PKI root) for `audience`. */
export function pki(audience, nonces = []) {
  return { audience, tokenType: 'pki', nonces };
}

function checkAudienceRequest(request) {
  if (!isObject(request) || typeof request.audience !== 'string') {
    throw 'the policy chose no audience: `audience` must return oidc(audience) or pki(audience)';
  }
  const tokenType = request.tokenType === undefined ? 'oidc' : request.tokenType;
  if (tokenType !== 'oidc' && tokenType !== 'pki') {
    throw `the policy chose token type ${debugString(String(tokenType))}; "oidc" or "pki" is required`;
  }
  const nonces = request.nonces === undefined ? [] : request.nonces;
  if (!Array.isArray(nonces) || !nonces.every((n) => typeof n === 'string')) {
    throw 'the policy chose nonces that are not a list of strings';
  }
  return { audience: request.audience, tokenType, nonces: [...nonces] };
}

// A verdict the host can read, or a deny saying why not. An allow needs `allow === true`, at least
// one reason, and every reason passed: the same rule as Report, so a hand-built verdict cannot
// allow what a Report would deny.
function checkVerdict(result) {
  if (result && typeof result.then === 'function') {
    return deny(null, 'evaluate returned a promise; it must be synchronous (no async, no await)');
  }
  const verdict = result instanceof Report ? result.verdict() : result;
  if (!isObject(verdict) || !Array.isArray(verdict.reasons)) {
    return deny(null, 'the policy returned no verdict (evaluate must return report.verdict())');
  }
  const reasons = [];
  for (const r of verdict.reasons) {
    if (!isObject(r) || typeof r.passed !== 'boolean' || typeof r.message !== 'string' ||
        !(r.claim === null || r.claim === undefined || typeof r.claim === 'string')) {
      return deny(null, 'the policy returned a malformed reason (use Report.pass and Report.fail)');
    }
    reasons.push({ claim: r.claim === undefined ? null : r.claim, passed: r.passed, message: r.message });
  }
  const role = isObject(verdict.login) ? verdict.login.role : undefined;
  if (!(role === null || role === undefined || typeof role === 'string')) {
    return deny(null, 'the policy returned a Vault role that is not a string');
  }
  const allow = verdict.allow === true && reasons.length > 0 && reasons.every((r) => r.passed);
  if (!allow && !reasons.some((r) => !r.passed)) {
    reasons.push(reason(null, false, 'the policy denied without a failed rule'));
  }
  return { allow, reasons, login: { role: role === undefined ? null : role } };
}

/**
 * Builds the plugin's `policy` export. Export it as `export const policy = definePolicy({...})`.
 *
 * - `config`: the fields of the collaborator's `plugin_config`, by name, each a `field.*`. Any
 *   other key refuses the configuration. Without `config` the JSON is handed over unchecked.
 * - `validate(config)`: extra checks, run once at load; throw (or return) a message to refuse.
 * - `audience(ctx)`: the token to mint, `oidc(ctx.config.audience)` or `pki(...)`.
 * - `evaluate(ctx, claims)`: judge the `Claims`; return `report.verdict()` (or the Report).
 *
 * `ctx` is `{collaborator, config, verificationTime (BigInt), verificationSeconds (Number),
 * vaultRole}`: `vaultRole` is the Vault role the host logs in with (the collaborator's configured
 * `role`), `undefined` when it has no role login.
 * Every failure fails closed: a configuration or claims that do not parse, and an exception in
 * `evaluate`, are a deny whose one failed reason names no claim.
 */
export function definePolicy({ config: schema, validate, audience, evaluate }) {
  if (typeof audience !== 'function' || typeof evaluate !== 'function') {
    throw new Error('definePolicy needs audience(ctx) and evaluate(ctx, claims) functions');
  }
  return {
    validateConfig(ctx) {
      try {
        const { config } = context(schema, ctx);
        const refusal = validate ? validate(config) : undefined;
        // A returned message refuses too: returning instead of throwing must not accept.
        if (refusal !== undefined && refusal !== null && refusal !== true) {
          throw typeof refusal === 'string' ? refusal : 'the configuration was refused';
        }
      } catch (e) {
        throw message(e);
      }
    },

    selectAudience(ctx) {
      try {
        return checkAudienceRequest(audience(context(schema, ctx)));
      } catch (e) {
        throw message(e);
      }
    },

    evaluate(ctx, claimsJson) {
      let c;
      try {
        c = context(schema, ctx);
      } catch (e) {
        return deny(null, message(e));
      }
      let claims;
      try {
        claims = Claims.parse(claimsJson);
      } catch (e) {
        return deny(null, message(e));
      }
      try {
        return checkVerdict(evaluate(c, claims));
      } catch (e) {
        return deny(null, `the policy failed while judging the claims: ${message(e)}`);
      }
    },
  };
}
