import assert from "node:assert/strict";
import { join } from "node:path";
import { schemaFiles } from "../references/gen_schemas.ts";
import { ModelManifest } from "../lib/schema/schema.ts";
import { FIXTURES, ROOT } from "./helpers.ts";

Deno.test("schemas: references/schemas/ is generated from the current zod schemas", async () => {
  for (const [file, text] of Object.entries(schemaFiles())) {
    const path = join(ROOT, "references", "schemas", file);
    const onDisk = await Deno.readTextFile(path).catch(() => "(missing)");
    assert.equal(onDisk, text, `${path} is stale; run \`deno task schemas\``);
  }
});

Deno.test("schemas: every committed bundle's model.json validates", async () => {
  for (const dir of ["tiny_trm", "tiny_hrm", "tiny_trm/f64", "tiny_hrm/f64"]) {
    const json = JSON.parse(
      await Deno.readTextFile(join(FIXTURES, dir, "model.json")),
    );
    assert.ok(ModelManifest.safeParse(json).success, dir);
  }
});

Deno.test("schemas: the spec names every record kind and key of the trace header", async () => {
  const spec = await Deno.readTextFile(join(ROOT, "references", "v0-spec.md"));
  const header = JSON.parse(schemaFiles()["trace.header.schema.json"]);
  for (const key of Object.keys(header.properties)) {
    assert.match(spec, new RegExp("`" + key + "`"), `spec lacks ${key}`);
  }
  for (const kind of ["header", "step", "readout", "example"]) {
    assert.match(spec, new RegExp(`\`${kind}\``));
  }
});
