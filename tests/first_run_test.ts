// A first run writes nothing outside the run dir and the caches: onnxruntime's
// native library keeps its device id and telemetry database to itself.
import assert from "node:assert/strict";
import { join } from "node:path";
import { listDir, ROOT, run, withTempDir } from "./helpers.ts";

Deno.test("first run: deno task trminterp trace on the native backend writes no onnxruntime device id or telemetry under the cache dir", async () => {
  const info = JSON.parse(
    (await run(Deno.execPath(), ["info", "--json"])).stdout,
  );
  await withTempDir(async (tmp) => {
    const cache = join(tmp, "cache");
    await Deno.mkdir(cache);
    const p = await run(Deno.execPath(), [
      "task",
      "trminterp",
      "trace",
      "--run-dir",
      join(tmp, "run"),
      "--limit",
      "2",
      "--backend",
      "native",
    ], {
      cwd: ROOT,
      // onnxruntime writes under $XDG_CACHE_HOME when it is set; Deno keeps
      // its own cache where it is.
      env: { XDG_CACHE_HOME: cache, DENO_DIR: info.denoDir },
    });
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /on native|backend native|trace: 2 examples/);
    const found: string[] = [];
    for await (const e of Deno.readDir(cache)) found.push(e.name);
    assert.ok(!found.includes("Microsoft"), `written: ${found.join(", ")}`);
    assert.ok((await listDir(join(tmp, "run"))).includes("trace.jsonl"));
  });
});
