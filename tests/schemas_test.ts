// The generated files (references/schemas/, lib/schema/types.ts) match what
// references/gen_schemas.ts makes from the current zod schemas. Here, not in
// lib/schema, because the generator sits above lib/schema.
import assert from "node:assert/strict";
import { join } from "node:path";
import { schemaFiles, typesFile } from "../references/gen_schemas.ts";

const ROOT = join(import.meta.dirname!, "..");

Deno.test("schemas: references/schemas/ is generated from the current zod schemas", async () => {
  for (const [file, text] of Object.entries(schemaFiles())) {
    const path = join(ROOT, "references", "schemas", file);
    const onDisk = await Deno.readTextFile(path).catch(() => "(missing)");
    assert.equal(onDisk, text, `${path} is stale; run \`deno task schemas\``);
  }
});

Deno.test("schemas: lib/schema/types.ts is generated from the current zod schemas", async () => {
  const path = join(ROOT, "lib", "schema", "types.ts");
  assert.equal(
    await Deno.readTextFile(path),
    await typesFile(),
    `${path} is stale; run \`deno task schemas\``,
  );
});
