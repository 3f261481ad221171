// 100 000 callers waiting for 4 slots of one id, in one Node process, on the
// memory store: each is granted in turn, holds its slot for a moment and
// releases it. Prints the time and the peak memory (RSS).
//
//   node bench/pkg/concurrency-waiters.mjs [waiters]   (after `make pkg`)
import { Concurrency, memoryStore } from "../../pkg/node.js";

const waiters = Number(process.argv[2] ?? 100_000);
const jobs = new Concurrency({ max: 4, leaseTtl: "1 m", store: memoryStore() });
const held = await Promise.all(Array.from({ length: 4 }, () => jobs.acquire("t")));
let peak = process.memoryUsage().rss;
const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
const started = performance.now();
const all = Array.from({ length: waiters }, () =>
  jobs.acquire("t", { timeout: 600_000 }).then(async (permit) => {
    if (!permit.acquired) throw new Error("not granted");
    await permit.release();
  }),
);
await new Promise((resolve) => setTimeout(resolve, 1_000)); // every slot held a while
const queued = performance.now() - started;
const freed = performance.now();
for (const permit of held) await permit.release();
await Promise.all(all);
const served = performance.now() - freed;
clearInterval(sample);
peak = Math.max(peak, process.memoryUsage().rss);
console.log(
  `${waiters} waiters: queued and waiting ${queued.toFixed(0)} ms, all granted and released ` +
    `${served.toFixed(0)} ms after the slots were freed; peak RSS ${(peak / 2 ** 20).toFixed(0)} MB`,
);
