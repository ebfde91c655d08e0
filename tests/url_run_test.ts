import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, fileSha, FIXTURES, ROOT, run } from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");
const PUZZLES = join(TINY, "puzzles.jsonl");

/** Where `deno run <url>` finds onnxruntime-web's wasm: the global npm cache. */
async function cachedWasm(): Promise<string> {
  const info = JSON.parse(
    (await run(Deno.execPath(), ["info", "--json"])).stdout,
  );
  return join(
    info.npmCache,
    "registry.npmjs.org",
    "onnxruntime-web",
    "1.30.0",
    "dist",
    "ort-wasm-simd-threaded.wasm",
  );
}

Deno.test("url: `deno run <url>/cli.ts trace` with scoped permissions and no import map matches a local run byte for byte", async () => {
  const tmp = await Deno.makeTempDir();
  const ac = new AbortController();
  // Serve the repository over loopback on an ephemeral port.
  let ready!: (port: number) => void;
  const portP = new Promise<number>((r) => ready = r);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: ({ port }) => ready(port),
  }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("forbidden", { status: 403 });
    try {
      const body = await Deno.readFile(join(ROOT, path));
      const type = path.endsWith(".json")
        ? "application/json"
        : "application/typescript";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  try {
    const port = await portP;
    const base = `http://127.0.0.1:${port}`;
    const local = join(tmp, "local"), remote = join(tmp, "remote");
    const args = ["--model", TINY, "--inputs", PUZZLES, "--seed", "0"];
    const l = await cli(["trace", "--run-dir", local, ...args]);
    assert.equal(l.code, 0, l.stderr);
    const cwd = join(tmp, "elsewhere");
    await Deno.mkdir(cwd);
    const r = await run(Deno.execPath(), [
      "run",
      "--quiet",
      "--no-prompt",
      `--allow-net=127.0.0.1:${port}`,
      `--allow-read=${TINY},${remote},${await cachedWasm()}`,
      `--allow-write=${remote}`,
      `${base}/cli.ts`,
      "trace",
      "--run-dir",
      remote,
      ...args,
    ], { cwd });
    assert.equal(r.code, 0, r.stderr);
    for (const f of ["trace.jsonl", "states.npy"]) {
      const [a, b] = [
        await fileSha(join(local, f)),
        await fileSha(join(remote, f)),
      ];
      console.log(
        `  ${f}: local ${a.slice(0, 16)}, from URL ${b.slice(0, 16)}`,
      );
      assert.equal(a, b, f);
    }
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(tmp, { recursive: true });
  }
});
