import assert from "node:assert/strict";
import { join } from "node:path";
import { SAE } from "../lib/sae/sae.ts";
import { encodeSaePt } from "../lib/sae/sae_pt.ts";
import { schemas } from "../lib/schema/mod.ts";
import { cli, fileSha, FIXTURES, listDir, withTempDir } from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");
const QUICK = [
  "--examples",
  "4",
  "--candidates",
  "4",
  "--random-features",
  "4",
  "--rank",
  "2",
];

/** A traced run with an SAE on z_H in `dir`, shared by the cases below. */
async function buildRun(dir: string): Promise<string> {
  const run = join(dir, "run");
  let p = await cli([
    "trace",
    "--run-dir",
    run,
    "--model",
    TINY,
    "--inputs",
    join(TINY, "puzzles.jsonl"),
  ]);
  assert.equal(p.code, 0, p.stderr);
  p = await cli([
    "sae",
    "fit",
    "--run-dir",
    run,
    "--train-steps",
    "300",
    "--features",
    "64",
    "--k",
    "8",
  ]);
  assert.equal(p.code, 0, p.stderr);
  return run;
}

async function intervene(run: string, args: string[]) {
  const p = await cli([
    "intervene",
    "--run-dir",
    run,
    "--force",
    ...QUICK,
    ...args,
  ]);
  const report = p.code === 0
    ? JSON.parse(await Deno.readTextFile(join(run, "report.json")))
    : null;
  return { ...p, report };
}

async function identityEdits(run: string): Promise<void> {
  for (
    const args of [
      [
        "--policy",
        "clamp_features",
        "--features",
        "0,1,2,3,4,5,6,7",
        "--scale",
        "1",
      ],
      [
        "--policy",
        "patch_features",
        "--features",
        "0,1,2,3,4,5,6,7",
        "--source-example",
        "p1-g048-b10",
      ],
      [
        "--policy",
        "patch_features",
        "--features",
        "0,1,2,3",
        "--source-steps",
        "s1.h1.H",
        "--steps",
        "s1.h1.H",
      ],
    ]
  ) {
    const r = await intervene(run, args);
    assert.equal(r.code, 0, r.stderr);
    const c = r.report.comparison;
    const patchOther = args.includes("--source-example");
    for (const e of c.per_example) {
      // Patching from p1 is the identity only for p1 itself.
      if (patchOther && e.example !== "p1-g048-b10") continue;
      assert.equal(e.kl, 0, `${args.join(" ")}: ${e.example} kl ${e.kl}`);
      assert.equal(e.flipped, 0);
      assert.equal(e.delta_token_acc, 0);
    }
    if (!patchOther) {
      assert.deepEqual(c.delta, {
        exact_acc: 0,
        token_acc: 0,
        mean_halt_step: 0,
        mean_kl: 0,
        flipped_fraction: 0,
      });
    }
    console.log(
      `  ${args.slice(0, 2).join(" ")} ${args.slice(4, 6).join(" ")}: delta ${
        JSON.stringify(c.delta)
      }`,
    );
  }
}

async function realAblation(run: string): Promise<void> {
  const r1 = await intervene(run, [
    "--policy",
    "ablate_features",
    "--seed",
    "3",
  ]);
  assert.equal(r1.code, 0, r1.stderr);
  const v = schemas.Report.safeParse(r1.report);
  assert.ok(v.success, JSON.stringify(!v.success && v.error.issues[0]));
  const sha1 = await fileSha(join(run, "report.json"));
  const r2 = await intervene(run, [
    "--policy",
    "ablate_features",
    "--seed",
    "3",
  ]);
  assert.equal(r2.code, 0);
  assert.equal(await fileSha(join(run, "report.json")), sha1);
  console.log(`  report.json sha256 ${sha1.slice(0, 16)} twice`);
  const top = r1.report.causal.ranking[0];
  assert.deepEqual(r1.report.policy.params.features, [top.feature]);
  assert.ok(
    r1.report.comparison.delta.mean_kl > 0,
    "ablating the top feature everywhere changes the outputs",
  );
  assert.equal(r1.report.tomography.effect.length, 3);
  assert.equal(r1.report.tomography.features.length, 2);
  const other = await intervene(run, [
    "--policy",
    "ablate_features",
    "--seed",
    "4",
  ]);
  assert.notDeepEqual(
    other.report.causal.random_features.features,
    r1.report.causal.random_features.features,
  );
  const mean = await intervene(run, [
    "--policy",
    "ablate_features",
    "--ablate-to",
    "mean",
    "--features",
    "1",
    "--save-trace",
  ]);
  assert.equal(mean.code, 0, mean.stderr);
  assert.match(
    mean.report.saved_trace,
    /^interventions\/ablate_features-[0-9a-f]{12}\/trace\.jsonl$/,
  );
  assert.ok((await listDir(join(run, "interventions"))).length >= 1);
}

async function badInput(run: string): Promise<void> {
  const before = await fileSha(join(run, "sae.pt"));
  const cases: [string[], RegExp][] = [
    [
      ["--policy", "ablate_features", "--features", "64"],
      /feature 64 does not exist; the SAE has features 0\.\.63/,
    ],
    [
      ["--policy", "ablate_features", "--features", "1", "--steps", "s*.*.l*"],
      /matches no z_H step/,
    ],
    [
      ["--policy", "ablate_features", "--features", "1", "--steps", "s7.*.*"],
      /matches no z_H step/,
    ],
    [[
      "--policy",
      "patch_features",
      "--features",
      "1",
      "--source-example",
      "nope",
    ], /--source-example "nope" is not in the trace/],
    [
      ["--policy", "clamp_features", "--features", "1"],
      /needs exactly one of --value or --scale/,
    ],
    [
      ["--policy", "ablate"],
      /unknown policy "ablate"; did you mean ablate_features\?/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const p = await cli(["intervene", "--run-dir", run, ...args]);
    assert.equal(p.code, 2, `${args.join(" ")}: ${p.stderr}`);
    assert.equal(p.stderr.trim().split("\n").length, 1, p.stderr);
    assert.match(p.stderr, pattern);
  }
  assert.equal(await fileSha(join(run, "sae.pt")), before);

  const tmp = await Deno.makeTempDir();
  try {
    // No sae.pt.
    const bare = join(tmp, "bare");
    await Deno.mkdir(bare);
    for (const f of ["trace.jsonl", "states.npy"]) {
      await Deno.copyFile(join(run, f), join(bare, f));
    }
    let p = await cli([
      "intervene",
      "--run-dir",
      bare,
      "--policy",
      "ablate_features",
    ]);
    assert.equal(p.code, 2);
    assert.match(
      p.stderr,
      /no sae\.pt in .*; run `deno task trminterp sae fit/,
    );
    // An SAE of another dimension.
    const small = new SAE({ arch: "topk", d_in: 16, d_sae: 32, k: 4 });
    const cfg = {
      ...small.cfg,
      format: "trminterp-sae/1" as const,
      latent: "z_H" as const,
      steps: "all",
      trace_digest: "0".repeat(64),
      model_sha256: "0".repeat(64),
      seed: 0,
      training: {},
    };
    await Deno.writeFile(join(bare, "sae.pt"), encodeSaePt(small, cfg));
    p = await cli([
      "intervene",
      "--run-dir",
      bare,
      "--policy",
      "ablate_features",
    ]);
    assert.equal(p.code, 2);
    assert.match(
      p.stderr,
      /sae\.pt has d_in 16, but the trace's states have D=32/,
    );
    // An SAE fitted on z_L, asked to act on z_H updates only.
    const zl = join(tmp, "zl");
    await Deno.mkdir(zl);
    for (const f of ["trace.jsonl", "states.npy"]) {
      await Deno.copyFile(join(run, f), join(zl, f));
    }
    p = await cli([
      "sae",
      "fit",
      "--run-dir",
      zl,
      "--latents",
      "z_L",
      "--train-steps",
      "50",
      "--features",
      "32",
      "--k",
      "4",
    ]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli([
      "intervene",
      "--run-dir",
      zl,
      "--policy",
      "ablate_features",
      "--features",
      "1",
      "--steps",
      "s*.*.H",
    ]);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /matches no z_L step \(the SAE was fitted on z_L\)/);
    assert.deepEqual(await listDir(zl), [
      ".trminterp-run",
      "sae.pt",
      "sae_metrics.json",
      "states.npy",
      "trace.jsonl",
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("intervene: on one traced run with a fitted SAE", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const run = await buildRun(dir);
    await t.step(
      "identity edits reproduce the baseline exactly and the report shows zero deltas",
      () => identityEdits(run),
    );
    await t.step(
      "a real ablation changes outputs; the report validates and is byte-identical per seed",
      () => realAblation(run),
    );
    await t.step(
      "bad input gives one line, exit code 2 and loses nothing",
      () => badInput(run),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("intervene: batched ablations from the baseline's carries equal one full rollout per ablation, bit for bit (float32/float64, max_steps/q_halt)", async () => {
  const { AblationRunner } = await import("../lib/intervene/batched.ts");
  const { InterventionSession } = await import("../lib/intervene/session.ts");
  const { planIntervention } = await import("../lib/intervene/plan.ts");
  const { AblateFeatures } = await import("../lib/intervene/policy.ts");
  const { StepSelector } = await import("../lib/model/address.ts");
  const { loadBundle } = await import("../lib/model/bundle.ts");
  const { TraceDataset } = await import("../lib/trace/dataset.ts");
  const { runTrace } = await import("../lib/trace/trace.ts");
  const { Rng } = await import("../lib/rng.ts");
  await withTempDir(async (tmp) => {
    // A q_halt copy of the tiny TRM: its random q_halt head halts some
    // examples early, so halted examples and late starts mix in a batch.
    const qhalt = join(tmp, "tiny_trm_qhalt");
    await Deno.mkdir(qhalt);
    for await (const e of Deno.readDir(TINY)) {
      if (e.isFile) {
        await Deno.copyFile(join(TINY, e.name), join(qhalt, e.name));
      }
    }
    const man = JSON.parse(await Deno.readTextFile(join(qhalt, "model.json")));
    man.schedule = { ...man.schedule, halt_max_steps: 5, halt_mode: "q_halt" };
    await Deno.writeTextFile(join(qhalt, "model.json"), JSON.stringify(man));
    let changed = 0, halted = 0;
    for (
      const model of [TINY, qhalt, join(FIXTURES, "tiny_hrm", "f64")]
    ) {
      const run = join(tmp, `run_${changed}_${halted}_${model.length}`);
      await runTrace({
        runDir: run,
        model,
        inputs: join(TINY, "puzzles.jsonl"),
        seed: 0,
        latents: ["z_H"],
        backend: "wasm",
        batch: 5, // batches of the trace and of the ablations differ
      });
      const ds = await TraceDataset.load(run);
      const D = ds.header.state_dim;
      const sae = new SAE({ arch: "topk", d_in: D, d_sae: 16, k: 3 });
      const rng = new Rng(11);
      for (const a of [sae.W_enc, sae.W_dec]) {
        for (let i = 0; i < a.length; i++) a[i] = rng.normal() * 0.4;
      }
      const plan = planIntervention(
        { runDir: run, policy: "ablate_features", seed: 0 },
        ds,
        sae,
        { latent: "z_H" },
      );
      const bundle = await loadBundle(model, { backend: "wasm" });
      try {
        const session = new InterventionSession(bundle, sae, ds, plan, 7);
        const examples = ds.examples();
        const runner = new AblationRunner(session, examples);
        const base = await runner.baseline();
        const sups = [...new Set(plan.addresses.map((a) => a.sup))];
        const jobs = [
          ...Array.from({ length: 16 }, (_, f) => ({
            features: [f],
            where: plan.selector,
          })),
          { features: [5, 2, 9], where: plan.selector },
          ...sups.flatMap((s) =>
            [1, 4].map((f) => ({
              features: [f],
              where: StepSelector.parse(`s${s}.*.H`),
            }))
          ),
        ];
        const batched = await runner.run(jobs);
        halted += base.examples.filter((e) =>
          e.haltStep < bundle.manifest.schedule.halt_max_steps - 1
        ).length;
        for (const [j, job] of jobs.entries()) {
          const alone = await session.run(
            examples,
            new AblateFeatures(job.features),
            job.where,
          );
          const view = (t: typeof alone) =>
            t.examples.map((e) => ({
              pred: Array.from(e.pred),
              perSup: e.predPerSup.map((p) =>
                Array.from(p)
              ),
              halt: e.haltStep,
              logits: [...e.logits],
            }));
          assert.deepEqual(view(batched[j]), view(alone), `job ${j}`);
          if (
            JSON.stringify(view(alone)) !== JSON.stringify(view(base))
          ) {
            changed++;
          }
        }
      } finally {
        await bundle.release();
      }
    }
    console.log(
      `  ${changed} ablations changed outcomes; ${halted} examples halted early`,
    );
    assert.ok(changed > 10, "the ablations must change something");
    assert.ok(halted > 0, "the q_halt model must halt some examples early");
  });
});
