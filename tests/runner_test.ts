import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBundle } from "../lib/model/bundle.ts";
import { rollout } from "../lib/model/rollout.ts";
import { allAddresses, formatAddress } from "../lib/model/address.ts";
import {
  allLogits,
  examplesOf,
  FIXTURES,
  maxAbsDiff,
  npy,
  PY,
  python,
} from "./helpers.ts";

interface Parity {
  firstNet: number;
  logits: number;
  zH: number;
  predsEqual: boolean;
}

/** Run our runner on the inputs of a parity folder and compare. */
async function compareTo(
  bundleDir: string,
  parityDir: string,
): Promise<Parity> {
  const bundle = await loadBundle(bundleDir);
  try {
    const tok = npy(join(parityDir, "tokens.npy")),
      pid = npy(join(parityDir, "puzzle_identifiers.npy"));
    const first = npy(join(parityDir, "first_zL.npy")).data as Float64Array;
    const zH = npy(join(parityDir, "z_H.npy")).data as Float64Array;
    const logits = npy(join(parityDir, "logits.npy")).data as Float64Array;
    const preds = npy(join(parityDir, "preds.npy")).data as BigInt64Array;
    const B = tok.shape[0];
    const r: Parity = { firstNet: 0, logits: 0, zH: 0, predsEqual: true };
    const { H_cycles } = bundle.manifest.schedule;
    const S = bundle.manifest.seq_len;
    const examples = examplesOf(
      tok.data as BigInt64Array,
      S,
      pid.data as BigInt64Array,
    );
    const res = await rollout(bundle, examples, {
      batch: B,
      hooks: [{
        onStep: (e) => {
          if (e.t === 0) r.firstNet = maxAbsDiff(e.state, first);
          if (e.latent === "z_H" && e.address.h === H_cycles - 1) {
            const n = e.state.length;
            r.zH = Math.max(
              r.zH,
              maxAbsDiff(
                e.state,
                zH.subarray(e.address.sup * n, (e.address.sup + 1) * n),
              ),
            );
          }
        },
        onReadout: (e) => {
          const n = e.logits.length;
          r.logits = Math.max(
            r.logits,
            maxAbsDiff(
              e.logits,
              logits.subarray(e.address.sup * n, (e.address.sup + 1) * n),
            ),
          );
        },
      }],
    });
    res.forEach((o, b) =>
      o.predPerSup.forEach((p, s) => {
        for (let i = 0; i < S; i++) {
          if (p[i] !== Number(preds[(s * B + b) * S + i])) r.predsEqual = false;
        }
      })
    );
    return r;
  } finally {
    await bundle.release();
  }
}

for (const family of ["trm", "hrm"]) {
  const dir = join(FIXTURES, `tiny_${family}`);

  Deno.test(`${family}: float32 rollout matches the committed PyTorch fixture`, async () => {
    const r = await compareTo(dir, join(dir, "parity_f32"));
    console.log(
      `  ${family} f32 vs torch f32: first net ${
        r.firstNet.toExponential(2)
      }, logits ${r.logits.toExponential(2)}`,
    );
    assert.ok(r.firstNet <= 1e-5, `first net call differs by ${r.firstNet}`);
    assert.ok(r.logits <= 1e-3, `logits differ by ${r.logits}`);
    assert.ok(r.predsEqual, "predicted tokens differ at some supervision step");
  });

  Deno.test(`${family}: float64 rollout matches the committed PyTorch fixture within 1e-9`, async () => {
    const r = await compareTo(join(dir, "f64"), join(dir, "parity"));
    console.log(
      `  ${family} f64 vs torch f64: first ${
        r.firstNet.toExponential(2)
      }, z_H ${r.zH.toExponential(2)}, logits ${r.logits.toExponential(2)}`,
    );
    assert.ok(
      r.firstNet <= 1e-9 && r.zH <= 1e-9 && r.logits <= 1e-9,
      JSON.stringify(r),
    );
    assert.ok(r.predsEqual);
  });

  Deno.test(`${family}: live parity against torch recomputed now (float32 and float64)`, async () => {
    const tmp = await Deno.makeTempDir();
    try {
      for (const dtype of ["float32", "float64"]) {
        const out = join(tmp, dtype);
        await python([
          join(PY, "parity.py"),
          "--bundle",
          dtype === "float64" ? join(dir, "f64") : dir,
          "--checkpoint",
          join(dir, "checkpoint.pt"),
          "--puzzles",
          join(dir, "puzzles.jsonl"),
          "--out",
          out,
        ]);
        const r = await compareTo(
          dtype === "float64" ? join(dir, "f64") : dir,
          out,
        );
        const tol = dtype === "float64" ? 1e-9 : 1e-3;
        assert.ok(
          r.logits <= tol && r.predsEqual,
          `${dtype}: ${JSON.stringify(r)}`,
        );
        if (dtype === "float32") assert.ok(r.firstNet <= 1e-5);
        else assert.ok(r.firstNet <= 1e-9 && r.zH <= 1e-9);
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

Deno.test("runner: the hook sees every address in order and can replace the state", async () => {
  const bundle = await loadBundle(join(FIXTURES, "tiny_trm"));
  try {
    const m = bundle.manifest;
    const examples = examplesOf(
      new BigInt64Array(2 * m.seq_len).fill(1n),
      m.seq_len,
    );
    const seen: string[] = [];
    const base = await rollout(bundle, examples, {
      hooks: [{ onStep: (e) => void seen.push(formatAddress(e.address)) }],
    });
    assert.deepEqual(seen, allAddresses(m.schedule).map(formatAddress));
    // Zeroing z_H at the last H update changes the final logits; leaving it alone does not.
    const same = await rollout(bundle, examples, {
      hooks: [{ onStep: () => {} }],
    });
    assert.deepEqual(allLogits(same), allLogits(base));
    const last = seen.length - 1;
    const edited = await rollout(bundle, examples, {
      hooks: [{
        onStep: (e) => {
          if (e.t === last) e.state.fill(0);
        },
      }],
    });
    assert.ok(maxAbsDiff(allLogits(edited), allLogits(base)) > 1e-3);
  } finally {
    await bundle.release();
  }
});

Deno.test("runner: batching does not change results", async () => {
  const bundle = await loadBundle(join(FIXTURES, "tiny_hrm"));
  try {
    const S = bundle.manifest.seq_len;
    const tok = npy(join(FIXTURES, "tiny_hrm", "parity_f32", "tokens.npy"))
      .data as BigInt64Array;
    const pid = npy(
      join(FIXTURES, "tiny_hrm", "parity_f32", "puzzle_identifiers.npy"),
    ).data as BigInt64Array;
    const examples = examplesOf(tok, S, pid);
    const all = await rollout(bundle, examples);
    const one = await rollout(bundle, examples, { batch: 1 });
    for (let b = 0; b < pid.length; b++) {
      assert.ok(maxAbsDiff(one[b].logits, all[b].logits) < 1e-5);
    }
  } finally {
    await bundle.release();
  }
});

Deno.test("demo model: live parity with torch in float32 and, via a float64 export, within 1e-9", async () => {
  const demo = join(
    FIXTURES,
    "..",
    "..",
    "references",
    "models",
    "sudoku4-trm",
  );
  const tmp = await Deno.makeTempDir();
  try {
    const f64 = join(tmp, "f64");
    await python([
      join(PY, "export.py"),
      "--checkpoint",
      join(demo, "checkpoint.pt"),
      "--out",
      f64,
      "--dtype",
      "float64",
    ]);
    for (const [bundle, tol] of [[demo, 1e-3], [f64, 1e-9]] as const) {
      const out = join(tmp, `parity-${tol}`);
      await python([
        join(PY, "parity.py"),
        "--bundle",
        bundle,
        "--checkpoint",
        join(demo, "checkpoint.pt"),
        "--puzzles",
        join(demo, "test.jsonl"),
        "--limit",
        "32",
        "--out",
        out,
      ]);
      const r = await compareTo(bundle, out);
      console.log(
        `  demo ${tol === 1e-9 ? "float64" : "float32"}: first net ${
          r.firstNet.toExponential(2)
        }, z_H ${r.zH.toExponential(2)}, logits ${
          r.logits.toExponential(2)
        }, predictions ${r.predsEqual ? "identical" : "DIFFER"}`,
      );
      assert.ok(
        r.logits <= tol && r.zH <= (tol === 1e-9 ? 1e-9 : 1e-3),
        JSON.stringify(r),
      );
      assert.ok(r.firstNet <= (tol === 1e-9 ? 1e-9 : 1e-5));
      assert.ok(r.predsEqual);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
