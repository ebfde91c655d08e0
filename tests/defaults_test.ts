// One defaults table per command: the spec's §7 table, each command's --help
// and the library's table say the same.
import assert from "node:assert/strict";
import { join } from "node:path";
import { INTERVENE_DEFAULTS } from "../lib/intervene/defaults.ts";
import { TRACE_DEFAULTS } from "../lib/trace/defaults.ts";
import { cli, ROOT } from "./helpers.ts";

const TABLES: Record<string, Record<string, unknown>> = {
  trace: TRACE_DEFAULTS,
  intervene: INTERVENE_DEFAULTS,
};

/** `--random-features` → `randomFeatures`. */
const key = (flag: string) =>
  flag.replace(/^--/, "").replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

/** A table value as the spec and --help print it. */
const text = (v: unknown) => Array.isArray(v) ? v.join(",") : String(v);

Deno.test("defaults: the spec's §7 table lists every trace and intervene default, with the library's value", async () => {
  const spec = await Deno.readTextFile(
    join(ROOT, "references", "v0-spec.md"),
  );
  const rows = [
    ...spec.matchAll(/^\| `(\w+)`\s*\| `(--[\w-]+)`\s*\| `([^`]*)`\s*\|$/gm),
  ];
  const seen = new Set<string>();
  for (const [, command, flag, value] of rows) {
    const table = TABLES[command];
    assert.ok(table, `spec §7 names command ${command}`);
    assert.ok(
      key(flag) in table,
      `spec §7: ${command} ${flag} is in the table`,
    );
    assert.equal(value, text(table[key(flag)]), `spec §7: ${command} ${flag}`);
    seen.add(`${command} ${key(flag)}`);
  }
  for (const [command, table] of Object.entries(TABLES)) {
    for (const k of Object.keys(table)) {
      assert.ok(seen.has(`${command} ${k}`), `spec §7 lacks ${command} ${k}`);
    }
  }
});

Deno.test("defaults: --help of trace and intervene prints each default from the table", async () => {
  for (const [command, table] of Object.entries(TABLES)) {
    const p = await cli([command, "--help"]);
    assert.equal(p.code, 0, p.stderr);
    for (const [k, v] of Object.entries(table)) {
      const flag = "--" + k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
      const line = p.stdout.split("\n").find((l) =>
        l.trimStart().startsWith(flag + " ")
      );
      assert.ok(line, `${command} --help lists ${flag}`);
      assert.match(
        line,
        new RegExp(`\\(default ${text(v)}[):]`),
        `${command} --help: ${flag}`,
      );
    }
  }
});
