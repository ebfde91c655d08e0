import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBundle } from "../lib/model/bundle.ts";
import { InputError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/io/atomic.ts";
import { cli, FIXTURES, listDir } from "./helpers.ts";

async function copyBundle(src: string): Promise<string> {
  const dst = await Deno.makeTempDir();
  for await (const e of Deno.readDir(src)) {
    if (e.isFile) await Deno.copyFile(join(src, e.name), join(dst, e.name));
  }
  return dst;
}

async function editManifest(
  dir: string,
  edit: (m: Record<string, unknown>) => void,
): Promise<void> {
  const m = JSON.parse(await Deno.readTextFile(join(dir, "model.json")));
  edit(m);
  await Deno.writeTextFile(join(dir, "model.json"), JSON.stringify(m));
}

const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
  [
    "missing graph",
    (dir) => Deno.remove(join(dir, "net.onnx")),
    /graph "net" is missing/,
  ],
  [
    "graph bytes that do not match the pinned sha256",
    async (dir) => {
      const bytes = await Deno.readFile(join(dir, "head.onnx"));
      bytes[bytes.length - 5] ^= 0xff;
      await Deno.writeFile(join(dir, "head.onnx"), bytes);
    },
    /graph "head" .* has sha256 .* but model\.json pins/,
  ],
  [
    "corrupt .onnx (sha256 updated to match)",
    async (dir) => {
      const junk = new TextEncoder().encode(
        "this is not an onnx protobuf at all",
      );
      await Deno.writeFile(join(dir, "net.onnx"), junk);
      await editManifest(dir, (m) => {
        (m.graphs as Record<string, { sha256: string }>).net.sha256 = sha256Hex(
          junk,
        );
      });
    },
    /graph "net" .* is not a valid ONNX graph/,
  ],
  [
    "dims that disagree with the graphs",
    (dir) => editManifest(dir, (m) => void (m.seq_len = 15)),
    /has shape \[.*\], but model\.json implies/,
  ],
  [
    "H_init of the wrong length",
    (dir) => editManifest(dir, (m) => void (m.H_init = [0, 1])),
    /H_init: has 2 values, but hidden_size is 32/,
  ],
  [
    "unknown family",
    (dir) => editManifest(dir, (m) => void (m.family = "gpt")),
    /unknown model family "gpt"/,
  ],
  [
    "invalid JSON",
    (dir) => Deno.writeTextFile(join(dir, "model.json"), "{ not json"),
    /model\.json is not valid JSON/,
  ],
];

for (const [name, mutate, pattern] of cases) {
  Deno.test(`bundle: refuses ${name}`, async () => {
    const dir = await copyBundle(join(FIXTURES, "tiny_trm"));
    try {
      await mutate(dir);
      await assert.rejects(
        () => loadBundle(dir),
        (e: unknown) => e instanceof InputError && pattern.test(e.message),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("bundle: the CLI reports a corrupt bundle in one line with exit code 2 and writes nothing", async () => {
  const dir = await copyBundle(join(FIXTURES, "tiny_trm"));
  const out = await Deno.makeTempDir();
  try {
    await Deno.remove(join(dir, "net.onnx"));
    const p = await cli([
      "trace",
      "--run-dir",
      join(out, "run"),
      "--model",
      dir,
      "--inputs",
      join(FIXTURES, "tiny_trm", "puzzles.jsonl"),
    ]);
    assert.equal(p.code, 2);
    assert.equal(p.stderr.trim().split("\n").length, 1, p.stderr);
    assert.match(p.stderr, /graph "net" is missing/);
    assert.deepEqual(await listDir(out), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("bundle: loads both families and exposes their sessions", async () => {
  for (
    const [fam, roles] of [["trm", ["embed", "head", "net"]], ["hrm", [
      "H_net",
      "L_net",
      "embed",
      "head",
    ]]] as const
  ) {
    const b = await loadBundle(join(FIXTURES, `tiny_${fam}`));
    assert.deepEqual(Object.keys(b.sessions).sort(), [...roles].sort());
    assert.equal(b.sha256.length, 64);
    await b.release();
  }
});
