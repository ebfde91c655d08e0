// The generated files (references/schemas/, lib/schema/types.ts) match what
// references/gen_schemas.ts makes from the current zod schemas. Here, not in
// lib/schema, because the generator sits above lib/schema; and in a
// subprocess under references/dev.lock, so the generator's developer tools
// stay out of deno.lock (what a user's first run installs).
import assert from "node:assert/strict";
import { ROOT, run } from "./helpers.ts";

Deno.test("schemas: references/schemas/ and lib/schema/types.ts are generated from the current zod schemas", async () => {
  const p = await run(Deno.execPath(), [
    "run",
    "--quiet",
    "--lock=references/dev.lock",
    "--frozen",
    "--allow-read",
    "--allow-run",
    "--allow-env",
    "--allow-sys",
    "references/gen_schemas.ts",
    "--check",
  ], { cwd: ROOT });
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /up to date/);
});

Deno.test("schemas: deno.lock, which a first run installs, holds no developer tool", async () => {
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.lock`));
  const names = Object.keys(lock.npm);
  for (const tool of ["json-schema-to-typescript", "prettier", "lodash"]) {
    assert.ok(!names.some((n) => n.startsWith(`${tool}@`)), tool);
  }
  assert.deepEqual(Object.keys(lock.specifiers).sort(), [
    "npm:onnxruntime-node@1.30.0",
    "npm:onnxruntime-web@1.30.0",
    "npm:zod@4.6.7",
  ]);
});
