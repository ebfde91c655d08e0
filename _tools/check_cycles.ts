/**
 * Fails on import cycles, as denoland/std's _tools check its packages: reads
 * the module graph that `deno info --json` resolves for every TypeScript file
 * of the project, then reports
 *
 * - any cycle between folders (lib/model, lib/sae, …, cli, tests), counting
 *   type-only imports too, since a folder that needs another's types sits
 *   above it; and
 * - any cycle between files through runtime imports (static or dynamic).
 *
 * Run: `deno run --allow-read --allow-write --allow-run _tools/check_cycles.ts`
 * (part of `deno task check`). Exit 0 when acyclic, 1 with one line per cycle.
 *
 * @module
 */
import { join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** One import between two project files. */
export interface ImportEdge {
  /** Importing file, relative to the project root (`lib/sae/fit.ts`). */
  from: string;
  /** Imported file, relative to the project root. */
  to: string;
  /** True when no runtime import joins them (`import type` only). */
  typeOnly: boolean;
}

/** The cycles found: each a list of members, in a stable order. */
export interface Cycles {
  /** Folder cycles (each folder once, sorted). */
  folders: string[][];
  /** Runtime file cycles (each file once, sorted). */
  files: string[][];
}

/**
 * The folder a file belongs to for layering: `lib/<name>` for anything under
 * lib/<name>/ (subfolders such as lib/sae/arch count as lib/sae), `lib` for
 * the shared files directly in lib/, the top folder otherwise, and the file
 * itself for files at the root (mod.ts, cli.ts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { folderOf } from "./check_cycles.ts";
 * assert.equal(folderOf("lib/sae/arch/topk.ts"), "lib/sae");
 * assert.equal(folderOf("lib/rng.ts"), "lib");
 * assert.equal(folderOf("tests/helpers.ts"), "tests");
 * assert.equal(folderOf("mod.ts"), "mod.ts");
 * ```
 */
export function folderOf(file: string): string {
  const parts = file.split("/");
  if (parts.length === 1) return file;
  if (parts[0] === "lib") return parts.length > 2 ? `lib/${parts[1]}` : "lib";
  return parts[0];
}

/**
 * Strongly connected components with more than one member, or one member
 * that imports itself (Tarjan's algorithm), each sorted, sorted by first
 * member.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stronglyConnected } from "./check_cycles.ts";
 * const edges = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]);
 * assert.deepEqual(stronglyConnected(edges), [["a", "b", "c"]]);
 * ```
 */
export function stronglyConnected(
  edges: ReadonlyMap<string, readonly string[]>,
): string[][] {
  const nodes = new Set<string>(edges.keys());
  for (const targets of edges.values()) for (const t of targets) nodes.add(t);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (edges.get(v) ?? []).includes(v)) {
      out.push(scc.sort());
    }
  };
  for (const v of [...nodes].sort()) if (!index.has(v)) visit(v);
  return out.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

/**
 * The folder cycles (all imports) and runtime file cycles of a graph.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findCycles } from "./check_cycles.ts";
 * const cycles = findCycles([
 *   { from: "lib/sae/fit.ts", to: "lib/intervene/policy.ts", typeOnly: false },
 *   { from: "lib/intervene/policy.ts", to: "lib/sae/sae.ts", typeOnly: true },
 * ]);
 * assert.deepEqual(cycles, { folders: [["lib/intervene", "lib/sae"]], files: [] });
 * ```
 */
export function findCycles(edges: readonly ImportEdge[]): Cycles {
  const folders = new Map<string, string[]>();
  const files = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, a: string, b: string) => {
    const list = m.get(a) ?? [];
    if (!list.includes(b)) list.push(b);
    m.set(a, list);
  };
  for (const e of edges) {
    const [fa, fb] = [folderOf(e.from), folderOf(e.to)];
    if (fa !== fb) add(folders, fa, fb);
    if (!e.typeOnly) add(files, e.from, e.to);
  }
  return {
    folders: stronglyConnected(folders),
    files: stronglyConnected(files),
  };
}

interface InfoModule {
  specifier: string;
  dependencies?: {
    code?: { specifier?: string };
    type?: { specifier?: string };
  }[];
}

/**
 * The imports among `files` (paths relative to `root`) and whatever they
 * reach inside `root`, as `deno info --json` resolves them. Every file is
 * a root of the graph, so files no entry point reaches are checked too.
 */
export async function importGraph(
  root: string,
  files: readonly string[],
): Promise<ImportEdge[]> {
  const absRoot = resolve(root);
  const dir = await Deno.makeTempDir({ prefix: "check_cycles_" });
  try {
    const entry = join(dir, "all.ts");
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import "${pathToFileURL(join(absRoot, f)).href}";\n`)
        .join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: absRoot,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `deno info failed: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: InfoModule[];
    };
    const local = (spec: string | undefined): string | undefined => {
      if (!spec?.startsWith("file:")) return undefined;
      const rel = relative(absRoot, fileURLToPath(spec));
      return rel.startsWith("..") ? undefined : rel.replaceAll("\\", "/");
    };
    const edges: ImportEdge[] = [];
    for (const m of info.modules) {
      const from = local(m.specifier);
      if (!from) continue;
      for (const d of m.dependencies ?? []) {
        const code = local(d.code?.specifier);
        const to = code ?? local(d.type?.specifier);
        if (to) edges.push({ from, to, typeOnly: code === undefined });
      }
    }
    return edges;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The project's TypeScript files under `dirs` (recursively) plus `extra`. */
export async function projectFiles(
  root: string,
  dirs: readonly string[],
  extra: readonly string[],
): Promise<string[]> {
  const out = [...extra];
  const walk = async (rel: string): Promise<void> => {
    for await (const e of Deno.readDir(join(root, rel))) {
      const path = `${rel}/${e.name}`;
      if (e.isDirectory && e.name !== "fixtures") await walk(path);
      else if (e.isFile && e.name.endsWith(".ts")) out.push(path);
    }
  };
  for (const d of dirs) await walk(d);
  return out.sort();
}

/** One line per cycle, empty when there is none. */
export function describe(cycles: Cycles): string[] {
  return [
    ...cycles.folders.map((c) => `folder cycle: ${c.join(" ⇄ ")}`),
    ...cycles.files.map((c) => `runtime file cycle: ${c.join(" ⇄ ")}`),
  ];
}

if (import.meta.main) {
  const root = resolve(import.meta.dirname!, "..");
  const files = await projectFiles(
    root,
    ["lib", "cli", "tests", "bench", "examples", "_tools"],
    ["mod.ts", "cli.ts"],
  );
  const lines = describe(findCycles(await importGraph(root, files)));
  for (const line of lines) console.error(line);
  if (lines.length) Deno.exit(1);
  console.log(`no import cycles among ${files.length} files`);
}
