import assert from "node:assert/strict";
import { join, relative } from "node:path";

const LIB = import.meta.dirname!;

/** The library's source files (not tests), relative to lib/. */
async function sources(dir = LIB): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...await sources(path));
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
      out.push(path);
    }
  }
  return out;
}

Deno.test("library messages speak the library's language: no code line of lib/ words a trminterp command line or a trminterp flag", async () => {
  // Deno's own permission flags (--allow-read, --allow-ffi) are the
  // library's business too; trminterp's flags and commands belong to cli/.
  // lib/schema describes payload fields that record a command line.
  const cliAdvice =
    /`trminterp (trace|sae|intervene)\b|--(run-dir|force|shard|backend|train-steps|steps|latents|positions|batch)\b/;
  const found: string[] = [];
  for (const path of await sources()) {
    if (relative(LIB, path).startsWith("schema/")) continue;
    const lines = (await Deno.readTextFile(path)).split("\n");
    lines.forEach((line, i) => {
      const code = line.trimStart();
      if (
        code.startsWith("*") || code.startsWith("/**") || code.startsWith("//")
      ) return;
      if (cliAdvice.test(code)) {
        found.push(`${relative(LIB, path)}:${i + 1}: ${code}`);
      }
    });
  }
  assert.deepEqual(found, []);
});
