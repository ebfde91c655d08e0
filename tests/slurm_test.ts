// The Slurm recipe of the README, for real and as printed: a 4-task job
// array of the demo trace on the single-node cluster that .ci/setup starts.
// A system test (deno task test:system): elsewhere it reports ignored; where
// it runs, it fails, never skips, when there is no cluster.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { cli, DEMO, fileSha, listDir, ROOT, run, SYSTEM } from "./helpers.ts";

const SLURM_DIR = Deno.env.get("TRMINTERP_SLURM_DIR") ?? "/tmp/trminterp-slurm";
const SLURM_CONF = Deno.env.get("SLURM_CONF") ??
  (existsSync(join(SLURM_DIR, "slurm.conf"))
    ? join(SLURM_DIR, "slurm.conf")
    : undefined);

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

/** The README's Slurm script, exactly as printed. */
async function readmeScript(): Promise<string> {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const m = /- \*\*Slurm job array\.\*\*[^]*?```sh\n([^]*?)```/.exec(readme);
  assert.ok(m, "the README has the Slurm script");
  // The block is indented under its list item.
  return m[1].split("\n").map((l) => l.replace(/^ {2}/, "")).join("\n");
}

Deno.test({
  name:
    "slurm: the README's script (bash trace.sbatch) makes its log folder, runs a 4-task array with sbatch --wait and fits; the trace and sae.pt equal the unsharded run's",
  ignore: !SYSTEM,
  async fn() {
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
      const logs = join(tmp, "logs"); // not there yet: the script makes it
      const script = join(tmp, "trace.sbatch");
      await Deno.writeTextFile(script, await readmeScript());
      const start = performance.now();
      // `bash trace.sbatch` from this folder, as the README says, with the
      // overrides it names; deno first on PATH for the array tasks.
      const sub = await run("bash", [script], {
        cwd: ROOT,
        env: {
          ...(SLURM_CONF ? { SLURM_CONF } : {}),
          PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`,
          RUN: runDir,
          MODEL: DEMO,
          INPUTS: join(DEMO, "test.jsonl"),
          LOGS: logs,
          SBATCH_ARRAY_INX: "0-3",
        },
      });
      const seconds = (performance.now() - start) / 1000;
      const names = existsSync(logs) ? await listDir(logs) : [];
      const excerpt = [];
      for (const name of names) {
        const text = await Deno.readTextFile(join(logs, name));
        excerpt.push(
          `${name}: ${text.trim().split("\n").slice(-2).join(" | ")}`,
        );
      }
      console.log(
        `  bash trace.sbatch: exit ${sub.code}, ${seconds.toFixed(1)} s; ${
          sub.stdout.trim().split("\n")[0]
        }`,
      );
      for (const line of excerpt) console.log(`  ${line}`);
      assert.equal(
        sub.code,
        0,
        `bash trace.sbatch failed: ${sub.stderr}\n${excerpt.join("\n")}`,
      );
      assert.equal(names.length, 4);
      assert.deepEqual(await listDir(join(runDir, "shards")), [
        "0-of-4",
        "1-of-4",
        "2-of-4",
        "3-of-4",
      ]);
      assert.match(sub.stdout, /sae fit: /);

      // The unsharded run with the task's permissions (--allow-ffi: the same
      // backend, auto, as the script's `deno task trminterp`).
      const one = join(tmp, "unsharded");
      const task = ["--allow-read", "--allow-write", "--allow-ffi"];
      let p = await cli(["trace", "--run-dir", one, "--seed", "0"], task);
      assert.equal(p.code, 0, p.stderr);
      p = await cli(["sae", "fit", "--run-dir", one, "--seed", "0"], task);
      assert.equal(p.code, 0, p.stderr);
      const shas: string[][] = [];
      for (const dir of [runDir, one]) {
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
  },
});
