import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { cli, DEMO, ROOT, run, withTempDir } from "./helpers.ts";

// A researcher's script in a folder of its own, with no deno.json and no
// --config: it imports mod.ts, writes its own policy, and runs it during a
// rollout of the bundled model.
const SCRIPT = (mod: string, demo: string) => `
import assert from "node:assert/strict";
import { type InterventionPolicy, loadBundle, policyHook, rollout, SAE, StepSelector } from "${mod}";

/** Push every edited row towards zero by half. */
class Shrink implements InterventionPolicy {
  readonly name = "shrink";
  params() { return { factor: 0.5 }; }
  apply(_step: unknown, h: Float32Array) { return h.map((v) => v * 0.5); }
}

const bundle = await loadBundle(${JSON.stringify(demo)});
const text = await Deno.readTextFile(${
  JSON.stringify(join(demo, "test.jsonl"))
});
const examples = text.trim().split("\\n").slice(0, 8).map((l) => {
  const p = JSON.parse(l);
  return { id: String(p.id), tokens: p.tokens, label: p.label };
});
const sae = new SAE({ arch: "relu", d_in: 64, d_sae: 8 });
const site = { latent: "z_H" as const, steps: StepSelector.parse("s0-3.*.H"), positions: [...Array(16).keys()] };
const clean = await rollout(bundle, examples);
const shrunk = await rollout(bundle, examples, { hooks: [policyHook(new Shrink(), sae, site)] });
await bundle.release();
let changed = 0;
shrunk.forEach((o, i) => { if (o.logits.some((v, j) => v !== clean[i].logits[j])) changed++; });
assert.equal(changed, examples.length);
console.log(JSON.stringify({ examples: examples.length, changed }));
`;

Deno.test("library: a script in another folder imports mod.ts without --config and runs its own policy", async () => {
  await withTempDir(async (tmp) => {
    const mod = pathToFileURL(join(ROOT, "mod.ts")).href;
    await Deno.writeTextFile(join(tmp, "study.ts"), SCRIPT(mod, DEMO));
    const p = await run(Deno.execPath(), [
      "run",
      "--quiet",
      "--no-prompt",
      "--allow-read",
      "--allow-env",
      "study.ts",
    ], { cwd: tmp });
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(JSON.parse(p.stdout.trim()), { examples: 8, changed: 8 });
  });
});

Deno.test("library: the README's feature-level policy (editActivations, Evaluator.compare on rollout's results) runs as printed", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const m = /Saved as `boost\.ts`[^]*?```ts\n([^]*?)```\n\n```sh\n([^\n]*)\n```/
    .exec(readme);
  assert.ok(m, "the README shows boost.ts and the line that runs it");
  const [, code, line] = m;
  const script = join(ROOT, "boost.ts");
  // Never replace a user's file of that name.
  const taken = await Deno.lstat(script).then(() => true, () => false);
  if (taken) throw new Error(`${script} exists; move it away to run this test`);
  await withTempDir(async (tmp) => {
    const runDir = join(tmp, "demo");
    let p = await cli(["trace", "--run-dir", runDir, "--limit", "32"]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli(["sae", "fit", "--run-dir", runDir, "--train-steps", "200"]);
    assert.equal(p.code, 0, p.stderr);
    await Deno.writeTextFile(script, code);
    try {
      // The printed line, on this test's run dir instead of runs/demo.
      const args = line.split(" ").map((a) => a === "runs/demo" ? runDir : a);
      assert.equal(args[0], "deno");
      p = await run(Deno.execPath(), args.slice(1), { cwd: ROOT });
    } finally {
      await Deno.remove(script);
    }
    assert.equal(p.code, 0, p.stderr);
    assert.match(
      p.stdout,
      /^feature 102 x3: token accuracy [\d.]+ -> [\d.]+, mean KL [\d.e-]+\n$/,
    );
    console.log(`  ${p.stdout.trim()}`);
  });
});
