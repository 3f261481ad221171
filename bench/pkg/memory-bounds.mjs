// The memory store's bounds, measured in Node (issue figures: ids of 10 MB,
// 300 000 ids of 16 KB, a flood of fresh ids next to one limited id):
//
//   node bench/pkg/memory-bounds.mjs    (after `make pkg`)
import { memoryStore, Ratelimit } from "../../pkg/node.js";

const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const rss = () => process.memoryUsage().rss;

// 1. Ids of 10 MB: refused at once, nothing kept, the limiter keeps working.
{
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(10, "1 h") });
  const huge = "x".repeat(10_000_000);
  let refused = 0;
  for (let i = 0; i < 1_000; i++) {
    try {
      rl.limitSync(huge + i);
    } catch (error) {
      if (error.code === "INVALID_ARGUMENT") refused++;
    }
  }
  console.log(
    `10 MB ids: ${refused} of 1000 refused (INVALID_ARGUMENT); next call admitted: ${rl.limitSync("ok").success}`,
  );
}

// 2. 300 000 distinct ids of 16 KB, then of 1 KiB (the longest accepted), default bounds.
for (const size of [16_384, 1_000]) {
  const store = memoryStore();
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(10, "1 h"), store });
  const before = rss();
  let refused = 0;
  const pad = "k".repeat(size - 8);
  for (let i = 0; i < 300_000; i++) {
    try {
      rl.limitSync(`${pad}${String(i).padStart(8, "0")}`);
    } catch {
      refused++;
    }
  }
  globalThis.gc?.();
  console.log(`300000 ids of ${size} B: ${refused} refused; RSS +${mb(rss() - before)} (store bound ${mb(32 << 20)})`);
}

// 3. One id at fixedWindow(10, "1 h")'s limit among 1000 fresh ids, and among a million.
for (const fresh of [1_000, 1_000_000]) {
  const rl = new Ratelimit({
    limiter: Ratelimit.fixedWindow(10, "1 h"),
    store: memoryStore({ maxKeys: fresh === 1_000 ? 64 : 10_000 }),
  });
  let admitted = 0;
  const every = fresh / 1_000;
  for (let i = 0; i < fresh; i++) {
    if (i % every === 0 && rl.limitSync("hot").success) admitted++;
    rl.limitSync(`fresh-${i}`);
  }
  console.log(`hot id called 1000 times among ${fresh} fresh ids: admitted ${admitted} (limit 10)`);
}
