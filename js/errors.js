// One error type for everything edgelimit raises, in JavaScript or in the
// WebAssembly core (which throws plain Errors named "EdgelimitError" with a
// `code`; `instanceof` recognises both).

export class EdgelimitError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "EdgelimitError";
    this.code = code;
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === "EdgelimitError" && typeof value.code === "string";
  }
}

export function invalid(message) {
  return new EdgelimitError("INVALID_ARGUMENT", message);
}

/** The longest id (UTF-8 bytes) a limiter takes unless told otherwise. */
export const DEFAULT_MAX_ID_BYTES = 1024;

export function checkId(id, maxBytes = DEFAULT_MAX_ID_BYTES) {
  if (typeof id !== "string") throw invalid(`an id must be a string, got ${typeof id}`);
  // Each UTF-16 unit is at least one UTF-8 byte: longer is surely too long,
  // and is refused before it is copied into the module (the core checks
  // the exact byte length of what passes).
  if (id.length > maxBytes) {
    throw invalid(`the id is ${id.length} characters long, above the maximum of ${maxBytes} bytes`);
  }
}

/** A key prefix: a string without braces (the id is the Redis hash tag). */
export function checkPrefix(prefix) {
  if (typeof prefix !== "string") throw invalid("prefix must be a string");
  if (/[{}]/.test(prefix)) {
    throw new EdgelimitError("INVALID_CONFIG", "prefix must not contain { or }: the id is the key's Redis hash tag");
  }
  return prefix;
}

export function checkNumber(name, value) {
  if (typeof value !== "number") throw invalid(`${name} must be a number, got ${typeof value}`);
  return value;
}
