/**
 * Puzzle inputs: a JSONL file of `{"id", "tokens", "label"}` records, or the
 * dataset folder layout written by TinyRecursiveModels' `build_*_dataset.py`.
 *
 * @module
 */
import { join } from "node:path";
import { InputError } from "../errors.ts";
import { sha256File, sha256Hex } from "../io/atomic.ts";
import { readJsonl } from "../io/jsonl.ts";
import { decodeNpy } from "../io/npy.ts";
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
  /** The puzzles, in file order. */
  puzzles: Puzzle[];
}

/** Label value that marks a position to ignore (the official IGNORE_LABEL_ID). */
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
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPuzzles } from "./inputs.ts";
 * import { readManifest } from "../model/bundle.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const { manifest } = await readManifest(demo);
 * const set = await loadPuzzles(`${demo}/test.jsonl`, manifest);
 * assert.equal(set.puzzles.length, 464);
 * assert.equal(set.puzzles[0].tokens.length, 16);
 * ```
 */
export async function loadPuzzles(
  path: string,
  m: ModelManifest,
): Promise<PuzzleSet> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `inputs not found: ${path}; pass --inputs with a puzzles .jsonl file or a dataset folder`,
      );
    }
    throw e;
  }
  const set = stat.isDirectory
    ? await loadDatasetDir(path)
    : await loadJsonl(path);
  if (set.puzzles.length === 0) {
    throw new InputError(`${path} holds no puzzles; pass a non-empty --inputs`);
  }
  const seen = new Set<string>();
  for (const p of set.puzzles) {
    const where = `${path}: puzzle "${p.id}"`;
    if (seen.has(p.id)) {
      throw new InputError(
        `${where} appears twice; example ids must be unique`,
      );
    }
    seen.add(p.id);
    if (p.tokens.length !== m.seq_len) {
      throw new InputError(
        `${where} has ${p.tokens.length} tokens, but model ${m.name} takes seq_len ${m.seq_len}; fix the puzzle or pass the matching --model`,
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
      !(p.puzzleIdentifier >= 0 &&
        p.puzzleIdentifier < m.num_puzzle_identifiers)
    ) {
      throw new InputError(
        `${where}: puzzle_identifier ${p.puzzleIdentifier} is outside 0..${
          m.num_puzzle_identifiers - 1
        }`,
      );
    }
  }
  return set;
}

async function loadJsonl(path: string): Promise<PuzzleSet> {
  const puzzles: Puzzle[] = [];
  for await (const { line, value } of readJsonl(path)) {
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
    const pid = r.puzzle_identifier ?? 0;
    if (typeof pid !== "number") {
      throw new InputError(`${where}: "puzzle_identifier" must be an integer`);
    }
    puzzles.push({
      id: String(id),
      tokens: arr("tokens"),
      label: arr("label"),
      puzzleIdentifier: pid,
    });
  }
  return { path, format: "jsonl", sha256: await sha256File(path), puzzles };
}

async function readNpyInts(
  path: string,
): Promise<{ shape: number[]; values: number[] }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `dataset folder is missing ${path}; expected the layout of TinyRecursiveModels' build_*_dataset.py`,
      );
    }
    throw e;
  }
  const arr = decodeNpy(bytes, path);
  const values = Array.from(arr.data as ArrayLike<number | bigint>, Number);
  if (!values.every(Number.isInteger)) {
    throw new InputError(`${path} must hold integers, got dtype ${arr.dtype}`);
  }
  return { shape: [...arr.shape], values };
}

async function loadDatasetDir(path: string): Promise<PuzzleSet> {
  // Accept the split folder itself or its parent (then the "test" split).
  let dir = path;
  try {
    await Deno.stat(join(dir, "all__inputs.npy"));
  } catch {
    dir = join(path, "test");
  }
  const files = [
    "all__inputs.npy",
    "all__labels.npy",
    "all__puzzle_identifiers.npy",
    "dataset.json",
  ];
  let ignoreLabel: number | null = null;
  try {
    const meta = JSON.parse(await Deno.readTextFile(join(dir, "dataset.json")));
    if (typeof meta.ignore_label_id === "number") {
      ignoreLabel = meta.ignore_label_id;
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `${path} is neither a .jsonl file nor a dataset folder (no dataset.json in ${dir})`,
      );
    }
    throw new InputError(`${join(dir, "dataset.json")} is not valid JSON`);
  }
  const inputs = await readNpyInts(join(dir, "all__inputs.npy"));
  const labels = await readNpyInts(join(dir, "all__labels.npy"));
  const ids = await readNpyInts(join(dir, "all__puzzle_identifiers.npy"));
  if (inputs.shape.length !== 2) {
    throw new InputError(
      `${dir}/all__inputs.npy must be [N, S], got [${inputs.shape}]`,
    );
  }
  const [N, S] = inputs.shape;
  if (labels.shape.join() !== inputs.shape.join()) {
    throw new InputError(
      `${dir}/all__labels.npy has shape [${labels.shape}] but all__inputs.npy has [${inputs.shape}]; labels must match the input shape`,
    );
  }
  // Official datasets store one identifier per puzzle and map examples to
  // puzzles through all__puzzle_indices.npy; with one example per puzzle the
  // identifiers line up directly.
  let exampleToPuzzle: number[] | null = null;
  if (ids.values.length !== N) {
    const indices = await readNpyInts(join(dir, "all__puzzle_indices.npy"));
    files.push("all__puzzle_indices.npy");
    exampleToPuzzle = new Array(N);
    for (let p = 0; p + 1 < indices.values.length; p++) {
      for (let e = indices.values[p]; e < indices.values[p + 1] && e < N; e++) {
        exampleToPuzzle[e] = p;
      }
    }
  }
  const puzzles: Puzzle[] = [];
  for (let i = 0; i < N; i++) {
    const label = labels.values.slice(i * S, (i + 1) * S).map((v) =>
      v === ignoreLabel ? IGNORE_LABEL : v
    );
    puzzles.push({
      id: String(i),
      tokens: inputs.values.slice(i * S, (i + 1) * S),
      label,
      puzzleIdentifier: ids.values[exampleToPuzzle ? exampleToPuzzle[i] : i] ??
        0,
    });
  }
  const hashes = await Promise.all(
    files.sort().map(async (f) => `${f}:${await sha256File(join(dir, f))}`),
  );
  return {
    path,
    format: "dataset_dir",
    sha256: sha256Hex(hashes.join("\n")),
    puzzles,
  };
}
