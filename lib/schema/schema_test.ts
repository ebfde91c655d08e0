import assert from "node:assert/strict";
import { join } from "node:path";
import { jsonSchemas, schemas } from "./mod.ts";

const ROOT = join(import.meta.dirname!, "..", "..");

Deno.test("schemas: every committed bundle's model.json validates", async () => {
  const fixtures = join(ROOT, "tests", "fixtures");
  for (
    const dir of [
      join(fixtures, "tiny_trm"),
      join(fixtures, "tiny_hrm"),
      join(fixtures, "tiny_trm", "f64"),
      join(fixtures, "tiny_hrm", "f64"),
      join(ROOT, "references", "models", "sudoku4-trm"),
    ]
  ) {
    const json = JSON.parse(await Deno.readTextFile(join(dir, "model.json")));
    assert.ok(schemas.ModelManifest.safeParse(json).success, dir);
  }
});

/** The backticked keys of the first column of the key table under `heading`. */
function specKeys(spec: string, heading: RegExp): string[] {
  const start = spec.search(heading);
  assert.ok(start >= 0, `spec lacks a section matching ${heading}`);
  const rest = spec.slice(start);
  const next = rest.slice(1).search(/\n#{2,3} /);
  const section = next < 0 ? rest : rest.slice(0, next + 1);
  const lines = section.split("\n");
  const head = lines.findIndex((l) => /^\|\s*key\s*\|/.test(l));
  assert.ok(head >= 0, `section ${heading} has no "| key |" table`);
  const keys: string[] = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith("|")) break;
    const cell = line.split("|")[1];
    for (const m of cell.matchAll(/`([A-Za-z_0-9]+)`/g)) keys.push(m[1]);
  }
  return keys;
}

Deno.test("schemas: the spec's key tables list exactly the schemas' keys, for every payload and record kind", async () => {
  const spec = await Deno.readTextFile(
    join(ROOT, "references", "v0-spec.md"),
  );
  const js = jsonSchemas() as Record<
    string,
    {
      properties?: Record<string, unknown>;
      oneOf?: unknown[];
      anyOf?: unknown[];
    }
  >;
  const recordKinds =
    (js["trace.record"].oneOf ?? js["trace.record"].anyOf) as {
      properties: Record<string, { const?: string }>;
    }[];
  const byKind = (kind: string) =>
    recordKinds.find((s) => s.properties.kind.const === kind)!;
  // The properties of an object-valued property.
  // deno-lint-ignore no-explicit-any
  const sub = (properties: any, key: string) => properties[key].properties;
  const cases: [RegExp, Record<string, unknown>][] = [
    [/### 1\.1 model\.json/, js["model.json"].properties!],
    [/### 3\.1 `header`/, js["trace.header"].properties!],
    [/### 3\.2 `step`/, byKind("step").properties],
    [/### 3\.3 `readout`/, byKind("readout").properties],
    [/### 3\.4 `example`/, byKind("example").properties],
    [/### 4\.1 sae\.pt/, js["sae.pt.cfg"].properties!],
    [/### 4\.2 sae_metrics\.json/, js["sae_metrics.json"].properties!],
    [/## 5\. intervene/, js["report.json"].properties!],
    [/### 5\.1 `causal`/, sub(js["report.json"].properties!, "causal")],
    [
      /### 5\.2 `causal\.cumulative`/,
      sub(sub(js["report.json"].properties!, "causal"), "cumulative"),
    ],
  ];
  for (const [heading, properties] of cases) {
    const inSpec = specKeys(spec, heading).sort();
    const inSchema = Object.keys(properties).sort();
    assert.deepEqual(inSpec, inSchema, `spec section ${heading} vs schema`);
  }
});
