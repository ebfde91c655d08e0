import assert from "node:assert/strict";
import { join } from "node:path";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { sha256Hex } from "../lib/io/atomic.ts";
import {
  cli,
  fileSha,
  FIXTURES,
  listDir,
  npy,
  withTempDir,
  writePuzzles,
} from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");
const FIT = ["--train-steps", "150", "--features", "64", "--k", "4"];
const ITV = [
  "--policy",
  "ablate_features",
  "--examples",
  "6",
  "--candidates",
  "3",
  "--random-features",
  "2",
  "--rank",
  "2",
];

function traceArgs(run: string, inputs: string, extra: string[] = []) {
  return [
    "trace",
    "--run-dir",
    run,
    "--model",
    TINY,
    "--inputs",
    inputs,
    "--batch",
    "4",
    ...extra,
  ];
}

async function ok(args: string[], cwd?: string): Promise<void> {
  const p = await cli(args, undefined, cwd);
  assert.equal(p.code, 0, `${args.join(" ")}: ${p.stderr}`);
}

async function refused(args: string[], pattern: RegExp): Promise<void> {
  const p = await cli(args);
  assert.equal(p.code, 2, `${args.join(" ")}: ${p.stderr}`);
  assert.equal(p.stderr.trim().split("\n").length, 1, p.stderr);
  assert.match(p.stderr, pattern);
}

function statesSha(ds: TraceDataset): string {
  const s = ds.states;
  return sha256Hex(new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
}

Deno.test("shards: the shards of any count hold the unsharded trace's states; sae.pt, sae_metrics.json and report.json are byte-identical", async () => {
  await withTempDir(async (tmp) => {
    const inputs = join(tmp, "p.jsonl");
    await writePuzzles(inputs, 50, 3);
    const sel = ["--limit", "30", "--seed", "2"];
    const runs: Record<string, string> = { unsharded: join(tmp, "one") };
    await ok(traceArgs(runs.unsharded, inputs, sel));
    for (const n of [2, 3]) {
      runs[`${n} shards`] = join(tmp, `n${n}`);
      for (let i = 0; i < n; i++) {
        await ok(
          traceArgs(runs[`${n} shards`], inputs, [
            ...sel,
            "--shard",
            `${i}/${n}`,
          ]),
        );
      }
    }
    assert.deepEqual(await listDir(join(tmp, "n3", "shards")), [
      "0-of-3",
      "1-of-3",
      "2-of-3",
    ]);
    // Per block, the shards' states.npy slices concatenated are the unsharded block.
    const one = JSON.parse(
      (await Deno.readTextFile(join(runs.unsharded, "trace.jsonl"))).split(
        "\n",
      )[0],
    );
    const whole = npy(join(runs.unsharded, "states.npy"));
    const parts = [0, 1, 2].map((i) => {
      const dir = join(tmp, "n3", "shards", `${i}-of-3`);
      return {
        header: JSON.parse(
          Deno.readTextFileSync(join(dir, "trace.jsonl")).split("\n")[0],
        ),
        states: npy(join(dir, "states.npy")),
      };
    });
    const D = 32;
    one.blocks.forEach((b: { row: number; rows: number }, k: number) => {
      const cat = parts.flatMap((p) => {
        const pb = p.header.blocks[k];
        return [...p.states.data.subarray(pb.row * D, (pb.row + pb.rows) * D)];
      });
      assert.deepEqual(
        cat,
        [...whole.data.subarray(b.row * D, (b.row + b.rows) * D)],
        `block ${k}`,
      );
    });
    const shas: Record<string, string[]> = {};
    for (const [name, run] of Object.entries(runs)) {
      await ok(["sae", "fit", "--run-dir", run, ...FIT]);
      await ok(["intervene", "--run-dir", run, ...ITV]);
      const ds = await TraceDataset.load(run);
      shas[name] = [
        statesSha(ds),
        ds.meta.digest,
        await fileSha(join(run, "sae.pt")),
        await fileSha(join(run, "sae_metrics.json")),
        await fileSha(join(run, "report.json")),
      ];
      console.log(
        `  ${name.padEnd(9)}: states ${shas[name][0].slice(0, 16)} digest ${
          shas[name][1].slice(0, 16)
        } sae.pt ${shas[name][2].slice(0, 16)} sae_metrics ${
          shas[name][3].slice(0, 16)
        } report ${shas[name][4].slice(0, 16)}`,
      );
    }
    assert.deepEqual(shas["2 shards"], shas.unsharded);
    assert.deepEqual(shas["3 shards"], shas.unsharded);
  });
});

Deno.test("shards: a run with a missing shard, shards traced differently, mixed counts or both layouts is refused with exit 2", async () => {
  await withTempDir(async (tmp) => {
    const inputs = join(TINY, "puzzles.jsonl");
    const run = join(tmp, "run");
    await ok(traceArgs(run, inputs, ["--shard", "0/2"]));
    // Shard 1 of 2 is missing.
    await refused(
      ["sae", "fit", "--run-dir", run],
      /lacks 1 of its 2 shards \(1-of-2 have no trace\.jsonl\); run `deno task trminterp trace --run-dir .* --shard 1\/2`/,
    );
    await refused([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "ablate_features",
    ], /lacks 1 of its 2 shards/);
    // Shard 1 traced with other settings.
    await ok(
      traceArgs(run, inputs, ["--shard", "1/2", "--positions", "puzzle"]),
    );
    await refused(
      ["sae", "fit", "--run-dir", run],
      /shard 1-of-2 was traced with different settings than 0-of-2 \(record\.positions: /,
    );
    await ok(
      traceArgs(run, inputs, [
        "--shard",
        "1/2",
        "--force",
        "--states-dtype",
        "float16",
      ]),
    );
    await refused(
      ["sae", "fit", "--run-dir", run],
      /different settings than 0-of-2 \(dtype: "float32" vs "float16"\)/,
    );
    await ok(traceArgs(run, inputs, ["--shard", "1/2", "--force"]));
    await ok(["sae", "fit", "--run-dir", run, ...FIT]);
    // Another count into the same run dir, and an unsharded trace, are refused.
    await refused(
      traceArgs(run, inputs, ["--shard", "0/3"]),
      /holds shards of another count \(shards\/\d-of-2\)/,
    );
    await refused(
      traceArgs(run, inputs, ["--force"]),
      /holds a sharded trace \(shards\/\)/,
    );
    const plain = join(tmp, "plain");
    await ok(traceArgs(plain, inputs));
    await refused(
      traceArgs(plain, inputs, ["--shard", "0/2"]),
      /holds an unsharded trace\.jsonl/,
    );
    // Shards of two counts or both layouts, made by hand, are refused on read.
    await Deno.mkdir(join(run, "shards", "0-of-3"));
    await refused(
      ["sae", "fit", "--run-dir", run, "--force"],
      /holds shards of different counts \(of-2, of-3\)|holds shards of different counts \(of-3, of-2\)/,
    );
    await Deno.remove(join(run, "shards", "0-of-3"));
    await Deno.copyFile(join(plain, "trace.jsonl"), join(run, "trace.jsonl"));
    await refused(
      ["sae", "fit", "--run-dir", run, "--force"],
      /holds both trace\.jsonl and shards\//,
    );
    // A shard's states.npy replaced by another shard's is refused.
    await Deno.remove(join(run, "trace.jsonl"));
    await Deno.copyFile(
      join(run, "shards", "0-of-2", "states.npy"),
      join(run, "shards", "1-of-2", "states.npy"),
    );
    await refused(
      ["sae", "fit", "--run-dir", run, "--force"],
      /1-of-2\/states\.npy is not the states\.npy its trace\.jsonl pins/,
    );
    // Usage errors.
    await refused(
      traceArgs(join(tmp, "x"), inputs, ["--shard", "2/2"]),
      /--shard 2\/2: I must lie in 0\.\.1/,
    );
    await refused(
      traceArgs(join(tmp, "x"), inputs, ["--shard", "a/b"]),
      /--shard takes I\/N/,
    );
    await refused(
      traceArgs(join(tmp, "x"), inputs, ["--shard", "0/5"]),
      /--shard 0\/5 gets no examples: 4 are selected; use at most 4 shards/,
    );
    assert.ok(!(await listDir(tmp)).includes("x"));
  });
});

Deno.test("location: the same run in two folders gives the same bytes in every output file; sae fit finds the model from the header's relative path, or --model", async () => {
  await withTempDir(async (tmp) => {
    const shas: string[][] = [];
    const folders = [join(tmp, "a"), join(tmp, "b", "deeper", "still")];
    for (const folder of folders) {
      // A project folder: the model, the inputs and the run, run from inside it.
      await Deno.mkdir(join(folder, "model"), { recursive: true });
      for (const f of ["model.json", "embed.onnx", "net.onnx", "head.onnx"]) {
        await Deno.copyFile(join(TINY, f), join(folder, "model", f));
      }
      await writePuzzles(join(folder, "p.jsonl"), 12, 4);
      const args = ["--run-dir", "runs/x"];
      await ok([
        "trace",
        ...args,
        "--model",
        "model",
        "--inputs",
        "p.jsonl",
        "--batch",
        "4",
      ], folder);
      await ok(["sae", "fit", ...args, ...FIT], folder);
      await ok(["intervene", ...args, ...ITV], folder);
      const run = join(folder, "runs", "x");
      const files = [
        "trace.jsonl",
        "states.npy",
        "sae.pt",
        "sae_metrics.json",
        "report.json",
      ];
      shas.push(await Promise.all(files.map((f) => fileSha(join(run, f)))));
      console.log(
        `  ${folder.slice(tmp.length)}: ${
          files.map((f, i) => `${f} ${shas.at(-1)![i].slice(0, 12)}`).join(", ")
        }`,
      );
      const header = JSON.parse(
        (await Deno.readTextFile(join(run, "trace.jsonl"))).split("\n")[0],
      );
      assert.equal(header.model.path, "../../model");
      assert.equal(header.inputs.path, "../../p.jsonl");
      const m = JSON.parse(
        await Deno.readTextFile(join(run, "sae_metrics.json")),
      );
      // Measured (the model was found), whatever the value.
      assert.equal(typeof m.task_accuracy_recovered.acc_clean, "number");
    }
    assert.deepEqual(shas[1], shas[0]);
    // The project moved elsewhere: the relative path still finds the model.
    const moved = join(tmp, "moved");
    await Deno.rename(folders[0], moved);
    const run = join(moved, "runs", "x");
    await ok(["sae", "fit", "--run-dir", run, "--force", ...FIT]);
    assert.equal(await fileSha(join(run, "sae.pt")), shas[0][2]);
    await ok(["intervene", "--run-dir", run, "--force", ...ITV]);
    assert.equal(await fileSha(join(run, "report.json")), shas[0][4]);
    // With the model gone, an explicit --model still works.
    const model = join(tmp, "elsewhere");
    await Deno.rename(join(moved, "model"), model);
    let p = await cli(["sae", "fit", "--run-dir", run, "--force", ...FIT]);
    assert.equal(p.code, 0, p.stderr);
    let m = JSON.parse(await Deno.readTextFile(join(run, "sae_metrics.json")));
    assert.equal(m.task_accuracy_recovered.value, null);
    assert.match(m.task_accuracy_recovered.reason, /model not at hand/);
    p = await cli([
      "sae",
      "fit",
      "--run-dir",
      run,
      "--force",
      "--model",
      model,
      ...FIT,
    ]);
    assert.equal(p.code, 0, p.stderr);
    m = JSON.parse(await Deno.readTextFile(join(run, "sae_metrics.json")));
    // Measured (the model was found), whatever the value.
    assert.equal(typeof m.task_accuracy_recovered.acc_clean, "number");
    assert.equal(await fileSha(join(run, "sae.pt")), shas[0][2]);
    await ok([
      "intervene",
      "--run-dir",
      run,
      "--force",
      "--model",
      model,
      ...ITV,
    ]);
    const r = JSON.parse(await Deno.readTextFile(join(run, "report.json")));
    assert.equal(r.comparison.examples, 12);
  });
});
