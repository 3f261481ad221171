// Options objects are checked by name: a misspelt or unsupported option is
// an error, never silently replaced by a default (a limit that quietly
// does not apply is the worst kind of bug a rate limiter can have).

import { EdgelimitError, invalid } from "./errors.js";

const NONE = Object.freeze({});

/** A short description of any value for an error message (BigInt and Symbol included). */
export function describe(value) {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return typeof value === "function" ? "a function" : String(value);
  return Array.isArray(value) ? "an array" : "an object";
}

/**
 * `value` as the options of `what`: undefined is none; anything but a plain
 * object is INVALID_ARGUMENT; a name not in `known` is INVALID_CONFIG, with
 * `hints[name]` when it is another library's (e.g. @upstash/ratelimit's).
 */
export function options(what, value, known, hints = NONE) {
  if (value === undefined) return NONE;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(`${what} takes an object of options, got ${describe(value)}`);
  }
  for (const name in value) {
    if (!known.includes(name)) {
      const hint = Object.hasOwn(hints, name) ? `: ${hints[name]}` : "";
      throw new EdgelimitError(
        "INVALID_CONFIG",
        `${what}: unknown option ${JSON.stringify(name)}${hint} (known: ${known.join(", ")})`,
      );
    }
  }
  return value;
}
