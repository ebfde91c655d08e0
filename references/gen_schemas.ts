// Regenerates references/schemas/*.schema.json from the zod schemas in lib/schema.ts.
// Run: deno task schemas. tests/schema_test.ts fails when these files are stale.
import { join } from "node:path";
import { jsonSchemas } from "../lib/schema/schema.ts";

/** The files and contents that references/schemas/ must hold. */
export function schemaFiles(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, schema] of Object.entries(jsonSchemas())) {
    out[`${name}.schema.json`] = JSON.stringify(schema, null, 2) + "\n";
  }
  return out;
}

if (import.meta.main) {
  const dir = join(import.meta.dirname!, "schemas");
  await Deno.mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries(schemaFiles())) {
    await Deno.writeTextFile(join(dir, file), text);
    console.log(`wrote ${join(dir, file)}`);
  }
}
