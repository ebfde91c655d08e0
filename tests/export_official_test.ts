// export.py's official path: a TinyRecursiveModels run's files (step_N with
// `_orig_mod.model.inner.*` keys and bfloat16 H_init/L_init, all_config.yaml, an official
// builder's dataset folder), written small (D=64) by make_official_shapes.py
// --official-layout. The tokens come from dataset.json without --tokens-json, the graphs
// equal those exported from the same weights directly, and the printed trace command runs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { PY, PYTHON, python, run, withTempDir } from "./helpers.ts";
import { readManifest } from "../lib/model/bundle.ts";

const BUILDERS = [
  {
    case: "trm_mlp_sudoku",
    data: "sudoku-extreme-1k-aug-1000",
    tokens: {
      pad: 0,
      blank: 1,
      symbols: ["1", "2", "3", "4", "5", "6", "7", "8", "9"],
      symbol_offset: 2,
    },
  },
  {
    case: "trm_att_maze",
    data: "maze-30x30-hard-1k",
    tokens: {
      pad: 0,
      blank: 2,
      symbols: ["#", " ", "S", "G", "o"],
      symbol_offset: 1,
    },
  },
  {
    case: "trm_att_arc",
    data: "arc1concept-aug-1000",
    tokens: {
      pad: 0,
      blank: 0,
      symbols: ["<eos>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
      symbol_offset: 1,
    },
  },
];

function exportArgs(dir: string, c: string, out: string, extra: string[] = []) {
  return [
    join(PY, "export.py"),
    "--checkpoint",
    join(dir, c, "official", "step_0"),
    "--official-config",
    join(dir, c, "official", "all_config.yaml"),
    "--out",
    out,
    "--no-verify",
    ...extra,
  ];
}

Deno.test("export.py: official checkpoints of the Sudoku, Maze and ARC builders need no --tokens-json; the printed trace command runs", async () => {
  await withTempDir(async (dir) => {
    await python([
      join(PY, "make_official_shapes.py"),
      "--out",
      dir,
      "--seed",
      "0",
      "--cases",
      BUILDERS.map((b) => b.case).join(","),
      "--dtypes",
      "float32",
      "--steps",
      "first",
      "--examples",
      "3",
      "--hidden-size",
      "64",
      "--official-layout",
    ]);
    for (const b of BUILDERS) {
      const out = join(dir, `${b.case}-bundle`);
      const data = join(dir, b.case, "data", b.data);
      // the dataset root: export.py takes its test/dataset.json
      const stdout = await python(
        exportArgs(dir, b.case, out, ["--dataset-json", data]),
      );
      const { manifest } = await readManifest(out);
      assert.deepEqual(manifest.tokens, b.tokens, b.case);
      const { manifest: direct } = await readManifest(
        join(dir, b.case, "float32"),
      );
      for (const role of Object.keys(direct.graphs)) {
        assert.equal(
          manifest.graphs[role].sha256,
          direct.graphs[role].sha256,
          `${b.case} ${role}: the official-layout export differs from the direct export`,
        );
      }
      assert.deepEqual(manifest.H_init, direct.H_init);
      assert.equal(manifest.seq_len, direct.seq_len);
      assert.equal(manifest.puzzle_emb_len, direct.puzzle_emb_len);
      const line = stdout.split("\n").find((l) =>
        l.includes("task trminterp trace")
      );
      assert.ok(line, stdout);
      const cmd = line.trim().split(/\s+/);
      assert.deepEqual(cmd.slice(0, 6), [
        "npx",
        "-y",
        "deno@2.9.6",
        "task",
        "trminterp",
        "trace",
      ]);
      assert.equal(cmd[cmd.indexOf("--model") + 1], out);
      assert.equal(cmd[cmd.indexOf("--inputs") + 1], join(data, "test"));
      if (b.case === "trm_mlp_sudoku") {
        // run it, as `deno task trminterp` would (the task is `deno run --allow-read --allow-write cli.ts`)
        const args = cmd.slice(6).map((a) =>
          a.startsWith("runs/") ? join(dir, a) : a
        );
        const p = await run(Deno.execPath(), [
          "run",
          "--quiet",
          "--allow-read",
          "--allow-write",
          "cli.ts",
          "trace",
          ...args,
        ]);
        assert.equal(p.code, 0, p.stderr);
        assert.match(p.stdout, /trace: 3 examples/);
      }
    }
    // errors that name the way out
    const bad = async (args: string[], re: RegExp) => {
      const p = await run(PYTHON, args);
      assert.notEqual(p.code, 0);
      assert.match(p.stderr, re);
    };
    const c = "trm_mlp_sudoku";
    await bad(
      exportArgs(dir, c, join(dir, "x")),
      /needs --dataset-json \(seq_len and tokens\) or --tokens-json/,
    );
    const weird = join(dir, "weird", "test");
    await Deno.mkdir(weird, { recursive: true });
    await Deno.writeTextFile(
      join(weird, "dataset.json"),
      JSON.stringify({
        pad_id: 3,
        ignore_label_id: 0,
        vocab_size: 11,
        seq_len: 81,
        num_puzzle_identifiers: 1,
      }),
    );
    await bad(
      exportArgs(dir, c, join(dir, "x"), ["--dataset-json", weird]),
      /cannot tell which official builder wrote it .* pass --tokens-json/,
    );
    const yaml = join(dir, "singlez.yaml");
    await Deno.writeTextFile(
      yaml,
      (await Deno.readTextFile(join(dir, c, "official", "all_config.yaml")))
        .replace(
          "recursive_reasoning.trm@",
          "recursive_reasoning.trm_singlez@",
        ),
    );
    await bad(
      [
        join(PY, "export.py"),
        "--checkpoint",
        join(dir, c, "official", "step_0"),
        "--official-config",
        yaml,
        "--out",
        join(dir, "x"),
      ],
      /trm_singlez.* is not supported/,
    );
  });
});

Deno.test("export.py: the demo bundle re-exports byte for byte (model.json and graphs)", async () => {
  await withTempDir(async (dir) => {
    const demo = join(PY, "..", "models", "sudoku4-trm");
    await python([
      join(PY, "export.py"),
      "--checkpoint",
      join(demo, "checkpoint.pt"),
      "--out",
      dir,
      "--source-json",
      join(demo, "source.json"),
      "--grid",
      "4x4/2x2",
    ]);
    for (const f of ["model.json", "embed.onnx", "net.onnx", "head.onnx"]) {
      assert.deepEqual(
        await Deno.readFile(join(dir, f)),
        await Deno.readFile(join(demo, f)),
        `${f} differs from the committed demo bundle`,
      );
    }
  });
});
