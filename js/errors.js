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

export function checkId(id) {
  if (typeof id !== "string") throw invalid(`an id must be a string, got ${typeof id}`);
}

export function checkNumber(name, value) {
  if (typeof value !== "number") throw invalid(`${name} must be a number, got ${typeof value}`);
  return value;
}
