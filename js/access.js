// Deny and allow lists: ids, IP addresses and CIDR ranges decided before
// any store is asked (no round trip, nothing counted). The most specific
// entry decides: an exact id, then the longest range holding the id's
// address. Shared by the limiters given them; changes apply at once.

import { CoreAccessList } from "./edgelimit.js";
import { invalid } from "./errors.js";
import { describe, options } from "./options.js";
import { CORE } from "./stores.js";

const CHECKED = [undefined, "deny", "allow"];

function entry(value) {
  if (typeof value !== "string") throw invalid(`a list entry must be a string, got ${describe(value)}`);
  return value;
}

function entries(name, value) {
  if (value === undefined) return [];
  if (value === null || typeof value !== "object" || typeof value[Symbol.iterator] !== "function") {
    throw invalid(`${name} must be an array of ids, IP addresses or CIDR ranges`);
  }
  return [...value].map(entry);
}

export function accessList(config) {
  const { deny, allow } = options("accessList", config, ["deny", "allow"]);
  const core = new CoreAccessList();
  const lists = Object.freeze({
    deny(value) {
      core.put(entry(value), false);
      return lists;
    },
    allow(value) {
      core.put(entry(value), true);
      return lists;
    },
    remove(value) {
      return core.remove(entry(value));
    },
    clear() {
      core.clear();
    },
    check(id) {
      return CHECKED[core.check(entry(id))];
    },
    get size() {
      return core.size;
    },
    [CORE]: core,
  });
  const denied = entries("deny", deny);
  const allowed = entries("allow", allow);
  try {
    for (const value of denied) lists.deny(value);
    for (const value of allowed) lists.allow(value);
  } catch (error) {
    core.free();
    throw error;
  }
  return lists;
}

export function checkAccessList(lists) {
  if (!(lists?.[CORE] instanceof CoreAccessList)) throw invalid("accessList must come from accessList()");
  return lists[CORE];
}
