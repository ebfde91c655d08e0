/**
 * Serve this folder over HTTP with the content types Deno needs to import
 * TypeScript from a URL: `.ts` as `application/typescript`. Generic static
 * servers get this wrong (`python3 -m http.server` sends `.ts` as
 * `video/mp2t`, and Deno then reports a syntax error in mod.ts and caches
 * the bad copy).
 *
 *     deno task serve                 # http://127.0.0.1:8765/mod.ts
 *     deno task serve --hostname 0.0.0.0 --port 8000
 *
 * Read-only, GET and HEAD only, no directory listings, and nothing outside
 * the folder (no `..`, no links followed).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { extname, join, resolve } from "node:path";

const TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".mts": "application/typescript; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
  ".mjs": "application/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".jsonl": "application/jsonl; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".wasm": "application/wasm",
};

/**
 * The content type a path is served with (`application/octet-stream` for
 * what Deno does not import).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { contentType } from "./serve.ts";
 * assert.equal(contentType("/mod.ts"), "application/typescript; charset=utf-8");
 * assert.equal(contentType("/references/models/sudoku4-trm/net.onnx"), "application/octet-stream");
 * ```
 */
export function contentType(path: string): string {
  return TYPES[extname(path)] ?? "application/octet-stream";
}

/**
 * Serve the files under `root` until `signal` aborts; resolves with the
 * port once listening.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serveFolder } from "./serve.ts";
 * const root = new URL("..", import.meta.url).pathname;
 * const ac = new AbortController();
 * const port = await serveFolder(root, { hostname: "127.0.0.1", port: 0, signal: ac.signal });
 * try {
 *   const res = await fetch(`http://127.0.0.1:${port}/mod.ts`);
 *   assert.equal(res.headers.get("content-type"), "application/typescript; charset=utf-8");
 *   assert.match(await res.text(), /export \{ loadBundle \}/);
 *   const up = await fetch(`http://127.0.0.1:${port}/../etc/passwd`);
 *   assert.equal(up.status, 404);
 *   await up.body?.cancel();
 * } finally {
 *   ac.abort();
 * }
 * ```
 */
export function serveFolder(
  root: string,
  opts: { hostname: string; port: number; signal?: AbortSignal },
): Promise<number> {
  const base = resolve(root);
  return new Promise((ready) => {
    Deno.serve({
      hostname: opts.hostname,
      port: opts.port,
      signal: opts.signal,
      onListen: ({ port }) => ready(port),
    }, async (req) => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return new Response("method not allowed\n", { status: 405 });
      }
      const rel = decodeURIComponent(new URL(req.url).pathname);
      const parts = rel.split("/").filter((p) => p !== "");
      if (parts.some((p) => p === "." || p === ".." || p.includes("\0"))) {
        return new Response("not found\n", { status: 404 });
      }
      // Walk the path with lstat: a link anywhere on it is not served.
      let path = base;
      try {
        for (const p of parts) {
          path = join(path, p);
          if ((await Deno.lstat(path)).isSymlink) throw new Error("link");
        }
        if (!(await Deno.lstat(path)).isFile) throw new Error("not a file");
        const body = req.method === "HEAD" ? null : await Deno.readFile(path);
        return new Response(body, {
          headers: { "content-type": contentType(path) },
        });
      } catch {
        return new Response("not found\n", { status: 404 });
      }
    });
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      hostname: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8765" },
    },
  });
  const root = new URL("..", import.meta.url).pathname;
  const port = await serveFolder(root, {
    hostname: values.hostname!,
    port: Number(values.port),
  });
  console.log(
    `serving ${root} at http://${values.hostname}:${port}/ (.ts as application/typescript)`,
  );
}
