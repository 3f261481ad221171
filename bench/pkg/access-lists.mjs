// What deny and allow lists cost a decision: limitSync on the memory store
// with no lists, and with lists of 100 000 entries (IPv4 ranges of three
// prefix lengths, IPv6 /48s and ids: 20 000 of each), for ids that are IPv4 addresses on
// no list (every range length is probed) and for plain ids. ROUNDS rounds,
// alternating; each figure the median of its rounds.
//
//   node bench/pkg/access-lists.mjs     (after `make pkg`)
import { accessList, Ratelimit } from "../../pkg/node.js";
import { median } from "./lib.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CALLS = Number(process.env.CALLS ?? 1_000_000);
const ENTRIES = 100_000;

function lists() {
  const lists = accessList();
  for (let i = 0; i < ENTRIES / 5; i++) {
    const [hi, mid, lo] = [i >> 16, (i >> 8) & 255, i & 255];
    lists.deny(`${10 + hi}.${mid}.${lo}.0/24`);
    lists.deny(`${20 + mid}.${lo}.0.0/16`);
    lists.deny(`${150 + hi}.${mid}.${lo}.1`);
    lists.allow(`2001:db8:${i.toString(16)}::/48`);
    lists.deny(`user:banned:${i}`);
  }
  return lists;
}

const shared = lists();
const ids = {
  "IPv4 address on no list": Array.from({ length: 10_000 }, (_, i) => `203.0.${i >> 8}.${i & 255}`),
  "plain id on no list": Array.from({ length: 10_000 }, (_, i) => `user:${i}`),
};

function run(withLists, keys) {
  const rl = new Ratelimit({
    limiter: Ratelimit.fixedWindow(1e9, "1 h"),
    ...(withLists ? { accessList: shared } : {}),
  });
  for (let i = 0; i < 100_000; i++) rl.limitSync(keys[i % keys.length]);
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) rl.limitSync(keys[i % keys.length]);
  return ((performance.now() - t0) * 1e6) / CALLS;
}

console.log(`Lists of ${shared.size} entries; ns per limitSync, median of ${ROUNDS} rounds of ${CALLS} calls:\n`);
console.log("| ids | no lists | with lists | ratio |");
console.log("|---|---:|---:|---:|");
for (const [name, keys] of Object.entries(ids)) {
  const without = [];
  const withLists = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [true, false] : [false, true];
    for (const listed of order) (listed ? withLists : without).push(run(listed, keys));
  }
  const [a, b] = [median(without), median(withLists)];
  console.log(`| ${name} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b / a).toFixed(2)} |`);
}
