// In-memory decisions per second in Node: edgelimit's default memory store
// next to rate-limiter-flexible and limiter, same key patterns, same run.
// Each cell runs in a fresh process (child-decide.mjs); ROUNDS rounds with
// the cells interleaved. A figure is the median of its rounds, a ratio the
// median of the rounds' own ratios (both sides measured seconds apart), so
// one disturbed round moves neither.
import { child, log, median } from "./lib.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const DURATION_MS = Number(process.env.DURATION_MS ?? 1000);
const WARMUP_MS = Number(process.env.WARMUP_MS ?? 300);

const impls = [
  "edgelimit fixedWindow limitSync",
  "edgelimit fixedWindow limit",
  "edgelimit gcra limitSync",
  "edgelimit gcra limit",
  "edgelimit tokenBucket limitSync",
  "edgelimit tokenBucket limit",
  "rate-limiter-flexible consume",
  "limiter TokenBucket tryRemoveTokens",
  "limiter RateLimiter tryRemoveTokens",
  "promise floor (no decision)",
];
const cells = [
  ["hot", "allowed"],
  ["10k", "allowed"],
  ["hot", "denied"],
  ["10k", "denied"],
];
// Like for like: the same algorithm family and the same calling style.
const pairs = [
  ["edgelimit fixedWindow limit", "rate-limiter-flexible consume", "fixed window, awaited"],
  ["edgelimit fixedWindow limitSync", "rate-limiter-flexible consume", "fixed window, ours sync"],
  // Not ours: how far any awaited call could get ahead of rate-limiter-flexible.
  ["promise floor (no decision)", "rate-limiter-flexible consume", "the ceiling of any awaited call"],
  ["edgelimit tokenBucket limitSync", "limiter TokenBucket tryRemoveTokens", "token bucket, sync"],
  ["edgelimit gcra limitSync", "limiter TokenBucket tryRemoveTokens", "GCRA vs token bucket, sync"],
];

const rounds = {};
const admittedShare = {};
for (let round = 1; round <= ROUNDS; round++) {
  // Alternate the order so neither side always runs first.
  const order = round % 2 ? impls : [...impls].reverse();
  for (const [pattern, verdict] of cells) {
    for (const impl of order) {
      const r = child("child-decide.mjs", impl, pattern, verdict, String(WARMUP_MS), String(DURATION_MS));
      const key = `${impl}|${pattern}|${verdict}`;
      rounds[key] = [...(rounds[key] ?? []), r.opsPerSec];
      admittedShare[key] = r.admitted / r.calls;
      if (verdict === "allowed" && r.admitted !== r.calls) {
        log(`decisions: warning: ${impl} ${pattern}: only ${r.admitted} of ${r.calls} admitted`);
      }
    }
    log(`decisions: round ${round}/${ROUNDS}, ${pattern} keys ${verdict} done`);
  }
}

const fmt = (x) => Math.round(x).toLocaleString("en-US");
const figure = (key) => median(rounds[key]);
// The median of the per-round ratios a / b, with the lowest and highest.
const pairedRatio = (a, b) => {
  const ratios = rounds[a].map((x, i) => x / rounds[b][i]);
  return `${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
};
const cellHead = cells.map(([p, v]) => `${p === "hot" ? "1 hot key" : "10k keys"}, ${v}`);
const leastDenied = Math.min(
  ...Object.entries(admittedShare)
    .filter(([k]) => k.endsWith("|denied") && !k.startsWith("promise floor"))
    .map(([, share]) => 1 - share),
);

console.log(`### In-memory decisions per second (Node, medians of ${ROUNDS} rounds of ${DURATION_MS} ms after ${WARMUP_MS} ms warm-up, fresh process per cell)

| implementation | ${cellHead.join(" | ")} |
|---|${cells.map(() => "---:").join("|")}|
${impls.map((i) => `| ${i} | ${cells.map(([p, v]) => fmt(figure(`${i}|${p}|${v}`))).join(" | ")} |`).join("\n")}

Ratios (above 1: edgelimit is faster; median of the rounds' ratios, lowest–highest round in brackets):

| ours / peer | ${cellHead.join(" | ")} |
|---|${cells.map(() => "---:").join("|")}|
${pairs
  .map(
    ([a, b, what]) =>
      `| ${a} / ${b} (${what}) | ${cells.map(([p, v]) => pairedRatio(`${a}|${p}|${v}`, `${b}|${p}|${v}`)).join(" | ")} |`,
  )
  .join("\n")}

Allowed: 1e9 per hour, every call admitted (checked). Denied: 1 per hour,
so every call after each key's first is denied (at least
${(100 * leastDenied).toFixed(2)}% of the measured calls in every denied cell).
Keys: "user:0", or "user:0" to "user:9999" round-robin.
`);
