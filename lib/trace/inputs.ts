/**
 * Puzzle inputs: a JSONL file of `{"id", "tokens", "label"}` records, or the
 * dataset folder layout written by TinyRecursiveModels' `build_*_dataset.py`.
 *
 * @module
 */
import { join } from "node:path";
import { InputError, OptionError } from "../errors.ts";
import { sha256File, sha256Hex } from "../io/atomic.ts";
import { readJsonl } from "../io/jsonl.ts";
import { NpyReader } from "../io/npy.ts";
import { checkRoot, confined, confinedFile } from "../io/paths.ts";
import { pathExists } from "../io/run_dir.ts";
import type { ModelManifest } from "../schema/mod.ts";

/** One puzzle in model token ids. */
export interface Puzzle {
  /** Stable example id. */
  id: string;
  /** Input tokens, length S. */
  tokens: number[];
  /** Target tokens, length S; `ignore` entries do not count. */
  label: number[];
  /** Puzzle identifier for the puzzle embedding (0 when unused). */
  puzzleIdentifier: number;
}

/** A loaded set of puzzles with provenance. */
export interface PuzzleSet {
  /** The path given. */
  path: string;
  /** Which layout it was read from. */
  format: "jsonl" | "dataset_dir";
  /** sha256 of the file, or of the sorted per-file hashes of a dataset folder. */
  sha256: string;
  /** Examples in the inputs. */
  total: number;
  /** The index in the inputs of each loaded puzzle, rising. */
  indices: number[];
  /** The loaded puzzles: `puzzles[i]` is example `indices[i]` of the inputs. */
  puzzles: Puzzle[];
}

/**
 * The longest example id, in UTF-8 bytes (ids are copied into every record).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPuzzles, MAX_ID_BYTES } from "./inputs.ts";
 * import { readManifest } from "../model/bundle.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const { manifest } = await readManifest(demo);
 * const line = (id: string) => JSON.stringify({ id, tokens: new Array(16).fill(1), label: new Array(16).fill(2) });
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/ok.jsonl`, line("é".repeat(MAX_ID_BYTES / 2)) + "\n"); // 2 bytes each
 *   assert.equal((await loadPuzzles(`${dir}/ok.jsonl`, manifest)).total, 1);
 *   await Deno.writeTextFile(`${dir}/long.jsonl`, line("x".repeat(MAX_ID_BYTES + 1)) + "\n");
 *   await assert.rejects(loadPuzzles(`${dir}/long.jsonl`, manifest), /"id" is longer than 256 bytes/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export const MAX_ID_BYTES = 256;

/**
 * Label value that marks a position to ignore (the official IGNORE_LABEL_ID).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IGNORE_LABEL, scorePrediction } from "./inputs.ts";
 * assert.equal(scorePrediction([1, 9], [1, IGNORE_LABEL]).acc, 1);
 * ```
 */
export const IGNORE_LABEL = -100;

/**
 * Token accuracy over the labelled positions, and whether all are right.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scorePrediction } from "./inputs.ts";
 * const s = scorePrediction([2, 3, 4], [2, 3, -100]);
 * assert(s.acc === 1 && s.exact);
 * ```
 */
export function scorePrediction(
  pred: ArrayLike<number>,
  label: readonly number[],
): { acc: number; exact: boolean } {
  let n = 0, ok = 0;
  for (let i = 0; i < label.length; i++) {
    if (label[i] === IGNORE_LABEL) continue;
    n++;
    if (pred[i] === label[i]) ok++;
  }
  return { acc: n ? ok / n : 1, exact: ok === n };
}

/**
 * Load puzzles from a JSONL file or an official dataset folder and check them
 * against the bundle: length S, token ids inside the vocabulary, label shape.
 * `select(total)` picks the examples to load (rising indices; default all):
 * a dataset folder is read by offset, only those rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPuzzles } from "./inputs.ts";
 * import { readManifest } from "../model/bundle.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const { manifest } = await readManifest(demo);
 * const set = await loadPuzzles(`${demo}/test.jsonl`, manifest);
 * assert.equal(set.total, 464);
 * assert.equal(set.puzzles[0].tokens.length, 16);
 * const two = await loadPuzzles(`${demo}/test.jsonl`, manifest, () => [3, 9]);
 * assert.deepEqual(two.puzzles.map((p) => p.id), [set.puzzles[3].id, set.puzzles[9].id]);
 * ```
 */
export async function loadPuzzles(
  path: string,
  m: ModelManifest,
  select: (total: number) => number[] = (n) =>
    Array.from({ length: n }, (_, i) => i),
): Promise<PuzzleSet> {
  const kind = await checkRoot(path, "inputs");
  if (kind === "missing") {
    throw new OptionError(
      "inputs",
      `{inputs} not found: ${path}; pass a puzzles .jsonl file or a dataset folder`,
    );
  }
  if (kind === "directory") {
    const set = await loadDatasetDir(path, select);
    for (const p of set.puzzles) checkPuzzle(p, path, m);
    return set;
  }
  // A JSONL file is read whole anyway: every puzzle is checked.
  const all = await loadJsonl(path);
  if (all.length === 0) {
    throw new OptionError(
      "inputs",
      `${path} holds no puzzles; pass non-empty {inputs}`,
    );
  }
  for (const p of all) checkPuzzle(p, path, m);
  const indices = choose(select, all.length);
  return {
    path,
    format: "jsonl",
    sha256: await sha256File(path),
    total: all.length,
    indices,
    puzzles: indices.map((i) => all[i]),
  };
}

function checkPuzzle(p: Puzzle, path: string, m: ModelManifest): void {
  const where = `${path}: puzzle "${p.id}"`;
  if (p.tokens.length !== m.seq_len) {
    throw new OptionError(
      "model",
      `${where} has ${p.tokens.length} tokens, but model ${m.name} takes seq_len ${m.seq_len}; fix the puzzle or pass the matching {model}`,
    );
  }
  if (p.label.length !== p.tokens.length) {
    throw new InputError(
      `${where} has a label of length ${p.label.length} for ${p.tokens.length} tokens; labels must match the input shape`,
    );
  }
  for (
    const [name, arr] of [["tokens", p.tokens], ["label", p.label]] as const
  ) {
    for (const v of arr) {
      const ok = Number.isInteger(v) &&
        ((v >= 0 && v < m.vocab_size) ||
          (name === "label" && v === IGNORE_LABEL));
      if (!ok) {
        throw new InputError(
          `${where}: ${name} value ${v} is outside the vocabulary 0..${
            m.vocab_size - 1
          } of model ${m.name}`,
        );
      }
    }
  }
  if (
    !(Number.isInteger(p.puzzleIdentifier) && p.puzzleIdentifier >= 0 &&
      p.puzzleIdentifier < m.num_puzzle_identifiers)
  ) {
    throw new InputError(
      `${where}: puzzle_identifier ${p.puzzleIdentifier} is not an integer in 0..${
        m.num_puzzle_identifiers - 1
      }`,
    );
  }
}

/** The selection `select(total)` makes, checked. */
function choose(
  select: (total: number) => number[],
  total: number,
): number[] {
  const chosen = select(total);
  chosen.forEach((i, k) => {
    if (
      !Number.isInteger(i) || i < 0 || i >= total || (k && i <= chosen[k - 1])
    ) {
      throw new RangeError(
        `selection ${i} at ${k} is not rising within 0..${total - 1}`,
      );
    }
  });
  return chosen;
}

// A puzzle line holds S tokens and S labels: 1 MiB is ample, and a longer
// line is refused before it is parsed.
const MAX_PUZZLE_LINE = 2 ** 20;

async function loadJsonl(path: string): Promise<Puzzle[]> {
  const puzzles: Puzzle[] = [];
  const seen = new Set<string>();
  for await (
    const { line, value } of readJsonl(path, { maxLineChars: MAX_PUZZLE_LINE })
  ) {
    const where = `${path}:${line}`;
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      throw new InputError(
        `${where}: expected an object {"id", "tokens", "label"}`,
      );
    }
    const r = value as Record<string, unknown>;
    const arr = (k: string): number[] => {
      const v = r[k];
      if (!Array.isArray(v) || !v.every((x) => typeof x === "number")) {
        throw new InputError(`${where}: "${k}" must be an array of integers`);
      }
      return v as number[];
    };
    const id = r.id ?? String(puzzles.length);
    if (typeof id !== "string" && typeof id !== "number") {
      throw new InputError(`${where}: "id" must be a string`);
    }
    const ids = String(id);
    if (new TextEncoder().encode(ids).length > MAX_ID_BYTES) {
      throw new InputError(
        `${where}: "id" is longer than ${MAX_ID_BYTES} bytes; ids are copied into every record, so shorten it`,
      );
    }
    if (seen.has(ids)) {
      throw new InputError(
        `${path}: puzzle "${ids}" appears twice; example ids must be unique`,
      );
    }
    seen.add(ids);
    const pid = r.puzzle_identifier ?? 0;
    if (typeof pid !== "number" || !Number.isInteger(pid)) {
      throw new InputError(`${where}: "puzzle_identifier" must be an integer`);
    }
    puzzles.push({
      id: ids,
      tokens: arr("tokens"),
      label: arr("label"),
      puzzleIdentifier: pid,
    });
  }
  return puzzles;
}

/** An integer .npy array of a dataset folder, opened for reading by rows. */
async function openNpyInts(
  root: string,
  name: string,
): Promise<NpyReader> {
  const { path } = await confinedFile(root, name, {
    missing: (p) =>
      `dataset folder is missing ${p}; expected the layout of TinyRecursiveModels' build_*_dataset.py`,
  });
  const r = await NpyReader.open(path);
  if (r.dtype === "float32" || r.dtype === "float64") {
    r.close();
    throw new InputError(`${path} must hold integers, got dtype ${r.dtype}`);
  }
  return r;
}

/** Rows `indices` (rising) of `r` as numbers, read in runs of consecutive rows. */
async function readRowsAt(
  r: NpyReader,
  indices: readonly number[],
): Promise<number[][]> {
  const out: number[][] = [];
  for (let k = 0; k < indices.length;) {
    let j = k + 1;
    while (
      j < indices.length && j - k < 4096 && indices[j] === indices[j - 1] + 1
    ) j++;
    const data = await r.readRows(indices[k], j - k);
    const values = Array.from(data as ArrayLike<number | bigint>, Number);
    for (let i = 0; i < j - k; i++) {
      out.push(values.slice(i * r.rowSize, (i + 1) * r.rowSize));
    }
    k = j;
  }
  return out;
}

async function loadDatasetDir(
  path: string,
  select: (total: number) => number[],
): Promise<PuzzleSet> {
  // Accept the split folder itself or its parent (then the "test" split).
  const base = await pathExists(await confined(path, "all__inputs.npy"))
    ? ""
    : "test/";
  const dir = base ? join(path, "test") : path;
  const files = [
    "all__inputs.npy",
    "all__labels.npy",
    "all__puzzle_identifiers.npy",
    "dataset.json",
  ];
  let ignoreLabel: number | null = null;
  const { path: metaPath } = await confinedFile(path, `${base}dataset.json`, {
    maxBytes: 2 ** 20,
    missing: () =>
      `${path} is neither a .jsonl file nor a dataset folder (no dataset.json in ${dir})`,
  });
  try {
    const meta = JSON.parse(await Deno.readTextFile(metaPath));
    if (typeof meta?.ignore_label_id === "number") {
      ignoreLabel = meta.ignore_label_id;
    }
  } catch {
    throw new InputError(`${metaPath} is not valid JSON`);
  }
  const inputs = await openNpyInts(path, `${base}all__inputs.npy`);
  const labels = await openNpyInts(path, `${base}all__labels.npy`);
  const ids = await openNpyInts(path, `${base}all__puzzle_identifiers.npy`);
  let indexFile: NpyReader | null = null;
  try {
    if (inputs.shape.length !== 2) {
      throw new InputError(
        `${dir}/all__inputs.npy must be [N, S], got [${inputs.shape}]`,
      );
    }
    const [N] = inputs.shape;
    if (N === 0) {
      throw new OptionError(
        "inputs",
        `${path} holds no puzzles; pass non-empty {inputs}`,
      );
    }
    if (labels.shape.join() !== inputs.shape.join()) {
      throw new InputError(
        `${dir}/all__labels.npy has shape [${labels.shape}] but all__inputs.npy has [${inputs.shape}]; labels must match the input shape`,
      );
    }
    if (ids.shape.length !== 1) {
      throw new InputError(
        `${dir}/all__puzzle_identifiers.npy must be 1-D, got [${ids.shape}]`,
      );
    }
    // Official datasets store one identifier per puzzle and map examples to
    // puzzles through all__puzzle_indices.npy; with one example per puzzle
    // the identifiers line up directly.
    let puzzleOf: (i: number) => number = (i) => i;
    if (ids.rows !== N) {
      indexFile = await openNpyInts(path, `${base}all__puzzle_indices.npy`);
      files.push("all__puzzle_indices.npy");
      const starts = Array.from(
        (await indexFile.readRows(0, indexFile.rows)) as ArrayLike<
          number | bigint
        >,
        Number,
      );
      checkPuzzleIndices(starts, N, ids.rows, `${dir}/all__puzzle_indices.npy`);
      puzzleOf = (i) => upperBound(starts, i) - 1;
    }
    const indices = choose(select, N);
    const tokenRows = await readRowsAt(inputs, indices);
    const labelRows = await readRowsAt(labels, indices);
    const pids = await readRowsAt(ids, indices.map(puzzleOf));
    const puzzles = indices.map((i, k) => ({
      id: String(i),
      tokens: tokenRows[k],
      label: labelRows[k].map((v) => v === ignoreLabel ? IGNORE_LABEL : v),
      puzzleIdentifier: pids[k][0],
    }));
    const hashes = await Promise.all(
      files.sort().map(async (f) =>
        `${f}:${await sha256File((await confinedFile(path, base + f)).path)}`
      ),
    );
    return {
      path,
      format: "dataset_dir",
      sha256: sha256Hex(hashes.join("\n")),
      total: N,
      indices,
      puzzles,
    };
  } finally {
    for (const r of [inputs, labels, ids, indexFile]) r?.close();
  }
}

/**
 * Check all__puzzle_indices.npy: puzzle p holds examples
 * `starts[p]..starts[p+1]`, so the starts rise from 0 to N with one more
 * entry than there are puzzles; a gap or an overlap would give examples the
 * wrong puzzle.
 */
function checkPuzzleIndices(
  starts: number[],
  N: number,
  puzzles: number,
  path: string,
): void {
  const bad = (what: string) =>
    new InputError(
      `${path}: ${what}; it must rise from 0 to N=${N} with one entry per puzzle plus one (${
        puzzles + 1
      })`,
    );
  if (starts.length !== puzzles + 1) {
    throw bad(`${starts.length} entries for ${puzzles} puzzle identifiers`);
  }
  if (starts[0] !== 0) throw bad(`it starts at ${starts[0]}`);
  if (starts[starts.length - 1] !== N) {
    throw bad(
      `it ends at ${
        starts[starts.length - 1]
      }, leaving examples without a puzzle`,
    );
  }
  for (let p = 1; p < starts.length; p++) {
    if (!(starts[p] >= starts[p - 1])) {
      throw bad(`entry ${p} (${starts[p]}) falls below entry ${p - 1}`);
    }
  }
}

/** The first index whose value exceeds `x` in rising `a`. */
function upperBound(a: readonly number[], x: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
