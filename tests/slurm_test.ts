// The Slurm recipe of the README, for real: a 4-task job array of the demo
// trace on the single-node cluster that .ci/setup starts. The test fails,
// never skips, when there is no cluster.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { cli, fileSha, listDir, ROOT, run } from "./helpers.ts";

const SLURM_DIR = Deno.env.get("TRMINTERP_SLURM_DIR") ?? "/tmp/trminterp-slurm";
const SLURM_CONF = Deno.env.get("SLURM_CONF") ??
  (existsSync(join(SLURM_DIR, "slurm.conf"))
    ? join(SLURM_DIR, "slurm.conf")
    : undefined);
const FIT = [
  "--seed",
  "0",
  "--train-steps",
  "300",
  "--features",
  "128",
  "--k",
  "8",
];

/** Run a Slurm client command against the test cluster. */
async function slurm(cmd: string, args: string[]) {
  try {
    return await run(cmd, args, {
      env: SLURM_CONF ? { SLURM_CONF } : undefined,
    });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd} is not installed` };
    }
    throw e;
  }
}

Deno.test("slurm: a 4-task job array (sbatch --wait) traces the demo into one run dir; sae fit on it is byte-identical to the unsharded run's", async () => {
  const info = await slurm("sinfo", ["-h", "-o", "%t %D %c"]);
  if (info.code !== 0 || !/^(idle|mix|alloc)/m.test(info.stdout)) {
    throw new Error(
      `no Slurm cluster answers (${
        (info.stderr || info.stdout).trim().split("\n")[0] || "no idle node"
      }); run .ci/setup, which starts a single-node cluster (SLURM_CONF=${
        SLURM_CONF ?? "unset"
      })`,
    );
  }
  const tmp = await Deno.makeTempDir({ prefix: "slurm_" });
  try {
    const runDir = join(tmp, "run");
    const logs = join(tmp, "logs");
    await Deno.mkdir(logs);
    // The README's recipe: one array task per shard, all into one run dir.
    const script = join(tmp, "trace.sbatch");
    await Deno.writeTextFile(
      script,
      `#!/bin/bash
set -euo pipefail
echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT on $(hostname -s)"
"${Deno.execPath()}" run --quiet --allow-read --allow-write "${
        join(ROOT, "cli.ts")
      }" \\
  trace --run-dir "${runDir}" --seed 0 --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
`,
    );
    const start = performance.now();
    const sub = await slurm("sbatch", [
      "--wait",
      "--array=0-3",
      "--job-name=trminterp-trace",
      `--output=${join(logs, "trace_%A_%a.out")}`,
      `--chdir=${tmp}`,
      script,
    ]);
    const seconds = (performance.now() - start) / 1000;
    const names = await listDir(logs);
    const excerpt = [];
    for (const name of names) {
      const text = await Deno.readTextFile(join(logs, name));
      excerpt.push(`${name}: ${text.trim().split("\n").join(" | ")}`);
    }
    console.log(
      `  ${sub.stdout.trim()} (sbatch --wait --array=0-3: ${
        seconds.toFixed(1)
      }s)`,
    );
    for (const line of excerpt) console.log(`  ${line}`);
    assert.equal(
      sub.code,
      0,
      `sbatch failed: ${sub.stderr}\n${excerpt.join("\n")}`,
    );
    assert.equal(names.length, 4);
    assert.deepEqual(await listDir(join(runDir, "shards")), [
      "0-of-4",
      "1-of-4",
      "2-of-4",
      "3-of-4",
    ]);

    const one = join(tmp, "unsharded");
    let p = await cli(["trace", "--run-dir", one, "--seed", "0"]);
    assert.equal(p.code, 0, p.stderr);
    const shas: string[][] = [];
    for (const dir of [runDir, one]) {
      p = await cli(["sae", "fit", "--run-dir", dir, ...FIT]);
      assert.equal(p.code, 0, p.stderr);
      const ds = await TraceDataset.load(dir, { latents: ["z_H"] });
      shas.push([
        ds.meta.digest,
        await fileSha(join(dir, "sae.pt")),
        await fileSha(join(dir, "sae_metrics.json")),
      ]);
      console.log(
        `  ${
          dir === one ? "unsharded" : "4 shards "
        }: ${ds.meta.outcomes.length} examples, digest ${
          shas.at(-1)![0].slice(0, 16)
        }, sae.pt ${shas.at(-1)![1].slice(0, 16)}, sae_metrics.json ${
          shas.at(-1)![2].slice(0, 16)
        }`,
      );
    }
    assert.deepEqual(shas[0], shas[1]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
