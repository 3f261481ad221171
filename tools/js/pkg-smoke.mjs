// One smoke test of the package's public API, shared by every runtime that
// tools/check-pkg.sh loads it in: decisions cross the JS<->wasm boundary, so
// a module that failed to initialise cannot pass.
export async function smoke(m) {
  const { Ratelimit, memoryStore, EdgelimitError } = m;
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "10 s"), store: memoryStore() });
  const seen = [];
  for (let i = 0; i < 3; i++) seen.push((await rl.limit("smoke")).success);
  if (seen.join() !== "true,true,false") throw new Error(`unexpected decisions: ${seen}`);
  let code = "none";
  try {
    await rl.limit("smoke", { cost: 3 });
  } catch (e) {
    if (!(e instanceof EdgelimitError)) throw e;
    code = e.code;
  }
  return `exports: ${Object.keys(m).sort().join(", ")}; decisions: ${seen}; cost 3 of 2: ${code}`;
}
