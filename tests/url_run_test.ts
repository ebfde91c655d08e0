import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, fileSha, FIXTURES, ROOT, run, withTempDir } from "./helpers.ts";

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

Deno.test("url: the README's library import runs as printed: deno task serve, a script importing mod.ts over HTTP, deno run --allow-import", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const section = readme.split("To use the library from a URL")[1];
  assert.ok(section, "the README shows the library import from a URL");
  const blocks = [...section.matchAll(/```(sh|ts)\n([^]*?)```/g)].slice(0, 3)
    .map((m) => m[2].trim());
  assert.equal(blocks[0], "deno task serve");
  const [, script, line] = blocks;
  assert.match(line, /^deno run .*script\.ts$/);
  const server = new Deno.Command(Deno.execPath(), {
    args: blocks[0].split(" ").slice(1),
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    detached: true, // its own process group: deno task's child goes with it
  }).spawn();
  try {
    const out = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await out.read();
    assert.match(
      first.value ?? "",
      /serving .* at http:\/\/127\.0\.0\.1:8765\//,
      "deno task serve did not start (is port 8765 taken?)",
    );
    out.releaseLock();
    await withTempDir(async (tmp) => {
      await Deno.writeTextFile(join(tmp, "script.ts"), script + "\n");
      const args = line.split(" ");
      const p = await run(Deno.execPath(), args.slice(1), { cwd: tmp });
      assert.equal(p.code, 0, p.stderr);
      assert.match(
        p.stdout,
        /^trminterp \d+\.\d+\.\d+: an SAE with 8 features\n$/,
      );
      console.log(`  ${line}: ${p.stdout.trim()}`);
      // Without --allow-import, the one-line stop the README names.
      const denied = await run(
        Deno.execPath(),
        ["run", "--no-prompt", "script.ts"],
        { cwd: tmp },
      );
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /Requires import access/);
    });
  } finally {
    Deno.kill(-server.pid, "SIGTERM");
    await server.status;
    await server.stdout.cancel().catch(() => {});
    await server.stderr.cancel().catch(() => {});
  }
});
