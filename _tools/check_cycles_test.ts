import assert from "node:assert/strict";
import { join } from "node:path";
import {
  describe,
  findCycles,
  importGraph,
  projectFiles,
} from "./check_cycles.ts";

/** Write `files` (path → source) under a fresh directory and run `fn` on it. */
async function withProject(
  files: Record<string, string>,
  fn: (root: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "cycles_test_" });
  try {
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(join(root, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(root, path), text);
    }
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("check_cycles: a generated project with known cycles: the folder cycle through a type import, the static and the dynamic runtime file cycles, and not the type-only file cycle", async () => {
  await withProject({
    // lib/a → lib/b at runtime, lib/b → lib/a by type only: a folder cycle.
    "lib/a/x.ts": `import { y } from "../b/y.ts";\nexport const x = y + 1;\n`,
    "lib/a/z.ts": `export type T = number;\n`,
    "lib/b/y.ts":
      `import type { T } from "../a/z.ts";\nexport const y: T = 1;\n`,
    // p ⇄ q at runtime: a file cycle.
    "lib/c/p.ts": `import { q } from "./q.ts";\nexport const p = () => q;\n`,
    "lib/c/q.ts": `import { p } from "./p.ts";\nexport const q = () => p;\n`,
    // r ⇄ s by type only: allowed.
    "lib/c/r.ts":
      `import type { S } from "./s.ts";\nexport type R = { s?: S };\n`,
    "lib/c/s.ts":
      `import type { R } from "./r.ts";\nexport type S = { r?: R };\n`,
    // u → v by a dynamic import, v → u statically: a runtime file cycle.
    "lib/d/u.ts":
      `export const u = 1;\nexport const load = () => import("./v.ts");\n`,
    "lib/d/v.ts": `import { u } from "./u.ts";\nexport const v = u;\n`,
    // Below everything, imported by two folders: no cycle.
    "lib/base.ts": `export const base = 0;\n`,
    "cli/main.ts":
      `import { x } from "../lib/a/x.ts";\nimport { base } from "../lib/base.ts";\nexport const main = x + base;\n`,
    "mod.ts": `export { main } from "./cli/main.ts";\n`,
  }, async (root) => {
    const files = await projectFiles(root, ["lib", "cli"], ["mod.ts"]);
    assert.equal(files.length, 12);
    const edges = await importGraph(root, files);
    assert.deepEqual(
      edges.find((e) => e.from === "lib/b/y.ts"),
      { from: "lib/b/y.ts", to: "lib/a/z.ts", typeOnly: true },
    );
    const cycles = findCycles(edges);
    assert.deepEqual(cycles, {
      folders: [["lib/a", "lib/b"]],
      files: [["lib/c/p.ts", "lib/c/q.ts"], ["lib/d/u.ts", "lib/d/v.ts"]],
    });
    assert.deepEqual(describe(cycles), [
      "folder cycle: lib/a ⇄ lib/b",
      "runtime file cycle: lib/c/p.ts ⇄ lib/c/q.ts",
      "runtime file cycle: lib/d/u.ts ⇄ lib/d/v.ts",
    ]);
  });
});

Deno.test("check_cycles: the same project with the cycles cut is clean, and the command exits 0 there and 1 with one line per cycle here", async () => {
  const acyclic = {
    "lib/a/x.ts": `import { y } from "../b/y.ts";\nexport const x = y + 1;\n`,
    "lib/b/y.ts": `export const y = 1;\n`,
    "mod.ts": `export { x } from "./lib/a/x.ts";\n`,
  };
  await withProject(acyclic, async (root) => {
    const files = await projectFiles(root, ["lib"], ["mod.ts"]);
    assert.deepEqual(findCycles(await importGraph(root, files)), {
      folders: [],
      files: [],
    });
  });
  // The command itself, on this repository: it must find no cycle.
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      join(import.meta.dirname!, "check_cycles.ts"),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, err);
  assert.match(
    new TextDecoder().decode(out.stdout),
    /^no import cycles among \d+ files\n$/,
  );
});
