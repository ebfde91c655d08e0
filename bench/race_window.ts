// The window that folder pins leave open (issue #21, cause 2): the time
// between the last lstat of checkPinned and the end of the rename (or create)
// it guards. A swap of the run dir that lands inside this window is not seen.
// Run: deno run --allow-read --allow-write bench/race_window.ts [rounds]
import { join } from "node:path";
import { checkPinned, pinFolder } from "../lib/io/pins.ts";

const rounds = Number(Deno.args[0] ?? 5000);
const root = await Deno.makeTempDir();
const dir = join(root, "a", "b", "run");
await Deno.mkdir(dir, { recursive: true });
const unpin = pinFolder(dir);
const gapRename: number[] = [], gapCreate: number[] = [], check: number[] = [];
try {
  const target = join(dir, "trace.jsonl");
  for (let i = 0; i < rounds; i++) {
    const temp = join(dir, `.t${i}.tmp`);
    const t0 = performance.now();
    checkPinned(temp);
    const t1 = performance.now();
    Deno.openSync(temp, { write: true, createNew: true }).close();
    const t2 = performance.now();
    checkPinned(target);
    const t3 = performance.now();
    Deno.renameSync(temp, target);
    const t4 = performance.now();
    check.push(t1 - t0);
    gapCreate.push(t2 - t1);
    gapRename.push(t4 - t3);
  }
} finally {
  unpin();
  await Deno.remove(root, { recursive: true });
}
const q = (a: number[], p: number) =>
  (a.sort((x, y) => x - y)[Math.floor(p * (a.length - 1))] * 1000).toFixed(1);
console.log(`rounds: ${rounds}; path depth: ${dir.split("/").length - 1}`);
for (
  const [name, a] of [
    ["checkPinned itself", check],
    ["check end -> create done", gapCreate],
    ["check end -> rename done", gapRename],
  ] as const
) {
  console.log(
    `${name}: median ${q(a, 0.5)} us, p99 ${q(a, 0.99)} us, max ${q(a, 1)} us`,
  );
}
