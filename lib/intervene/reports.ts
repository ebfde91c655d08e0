/**
 * Several interventions side by side in one run dir: `report.json` is the
 * default run, `interventions/NAME/report.json` a named one. This module
 * names their paths, lists the reports a run dir holds, and finds one whose
 * causal ranking a new run may reuse instead of recomputing it.
 *
 * @module
 */
import { OptionError } from "../errors.ts";
import { confinedFile } from "../io/paths.ts";
import { schemas } from "../schema/mod.ts";
import type { Report } from "./report.ts";

/** The most bytes of a report.json read when listing or reusing one. */
const MAX_REPORT_BYTES = 256 * 2 ** 20;

/**
 * Check a run name for `--name`: a plain folder name (letters, digits, `.`,
 * `_`, `-`, at most 64, not starting with `.` or `-`), so that
 * `interventions/NAME` stays one real folder inside the run dir.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRunName } from "./reports.ts";
 * assert.equal(checkRunName("clamp-f102.x2"), "clamp-f102.x2");
 * for (const bad of ["", "..", "a/b", ".hidden", "-x", "a b", "x".repeat(65)]) {
 *   assert.throws(() => checkRunName(bad), /name/);
 * }
 * ```
 */
export function checkRunName(name: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw new OptionError(
      "name",
      `{name} "${name}" is not a plain name; use letters, digits, ".", "_" and "-" (at most 64, not starting with "." or "-"), e.g. clamp-f102`,
    );
  }
  return name;
}

/**
 * Where a run's report goes, relative to the run dir: `report.json` for the
 * default run, `interventions/NAME/report.json` for a named one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportPath } from "./reports.ts";
 * assert.equal(reportPath(), "report.json");
 * assert.equal(reportPath("clamp"), "interventions/clamp/report.json");
 * ```
 */
export function reportPath(name?: string): string {
  return name === undefined
    ? "report.json"
    : `interventions/${checkRunName(name)}/report.json`;
}

/**
 * A named run's folder as a disposable: if this run creates it and fails,
 * disposal removes it again when it is empty (the output set has removed its
 * temps by then), so a failed run leaves no empty `interventions/NAME`.
 * Call `keep()` once the outputs are committed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { namedRunFolder } from "./reports.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   {
 *     await using folder = await namedRunFolder(dir, "a");
 *     await Deno.mkdir(`${dir}/interventions/a`, { recursive: true });
 *     // ... the run fails here: no keep()
 *     void folder;
 *   }
 *   await assert.rejects(Deno.stat(`${dir}/interventions`)); // made by the failed run: gone too
 *   {
 *     await using folder = await namedRunFolder(dir, "b");
 *     await Deno.mkdir(`${dir}/interventions/b`, { recursive: true });
 *     folder.keep();
 *   }
 *   assert.ok((await Deno.stat(`${dir}/interventions/b`)).isDirectory);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function namedRunFolder(
  runDir: string,
  name: string | undefined,
): Promise<AsyncDisposable & { keep(): void }> {
  const path = name === undefined
    ? null
    : `${runDir}/interventions/${checkRunName(name)}`;
  const exists = (p: string) => Deno.lstat(p).then(() => true, () => false);
  const parent = `${runDir}/interventions`;
  const parentExisted = path === null || await exists(parent);
  let keep = path === null || await exists(path);
  return {
    keep: () => void (keep = true),
    async [Symbol.asyncDispose]() {
      if (keep) return;
      // Not recursive: a folder that holds anything stays.
      await Deno.remove(path!).catch(() => {});
      if (!parentExisted) await Deno.remove(parent).catch(() => {});
    },
  };
}

/** A report found in a run dir. */
export interface FoundReport {
  /** Its path relative to the run dir. */
  path: string;
  /** Its content. */
  report: Report;
}

/**
 * The valid reports of a run dir, the default one first, then the named ones
 * by name. A file that is a link, not a regular file, too large or not a
 * valid report.json is left out (and never followed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listReports } from "./reports.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/interventions/b`, { recursive: true });
 *   await Deno.writeTextFile(`${dir}/interventions/b/report.json`, "{}"); // not a report
 *   assert.deepEqual(await listReports(dir), []);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function listReports(runDir: string): Promise<FoundReport[]> {
  const names: string[] = ["report.json"];
  try {
    const named: string[] = [];
    for await (const e of Deno.readDir(`${runDir}/interventions`)) {
      if (e.isDirectory && !e.isSymlink) named.push(e.name);
    }
    named.sort();
    for (const n of named) names.push(`interventions/${n}/report.json`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const out: FoundReport[] = [];
  for (const path of names) {
    const report = await readReport(runDir, path);
    if (report) out.push({ path, report });
  }
  return out;
}

async function readReport(
  runDir: string,
  path: string,
): Promise<Report | null> {
  try {
    const file = await confinedFile(runDir, path, {
      maxBytes: MAX_REPORT_BYTES,
    });
    const parsed = schemas.Report.safeParse(
      JSON.parse(await Deno.readTextFile(file.path)),
    );
    return parsed.success ? parsed.data as Report : null;
  } catch {
    // Missing, a link, not a regular file, too large, not JSON: not a report
    // this run may read.
    return null;
  }
}

/** What a causal ranking depends on; two runs that agree on all of it rank alike. */
export interface RankingKey {
  /** The trace's digest. */
  traceDigest: string;
  /** sae.pt's sha256. */
  saeSha: string;
  /** model.json's sha256. */
  modelSha: string;
  /** The backend that ran. */
  backend: string;
  /** The seed. */
  seed: number;
  /** The concrete selector of the ablated steps. */
  steps: string;
  /** The ablated positions. */
  positions: readonly number[];
  /** `features` or `most_active`. */
  source: string;
  /** The candidate features, in order. */
  candidates: readonly number[];
  /** Examples in the subsample. */
  examples: number;
  /** The ranking metric. */
  rankBy: string;
  /** The random reference features, as drawn. */
  random: readonly number[];
  /** Features scanned in the tomography (before capping at the ranking's length). */
  rank: number;
  /** Mass-matched control draws per cumulative point. */
  controlDraws: number;
}

/** Whether `r` holds a ranking computed under `key`. */
function sameRanking(r: Report, key: RankingKey): boolean {
  const p = r.provenance, c = r.causal;
  return p.trace_digest === key.traceDigest && p.sae_pt_sha256 === key.saeSha &&
    p.model_sha256 === key.modelSha && p.backend === key.backend &&
    p.seed === key.seed && c.steps.selector === key.steps &&
    JSON.stringify(r.policy.positions) === JSON.stringify(key.positions) &&
    c.candidates.source === key.source &&
    JSON.stringify(c.candidates.features) ===
      JSON.stringify(key.candidates) &&
    c.subsample.examples === key.examples && c.subsample.seed === key.seed &&
    c.rank_by === key.rankBy &&
    JSON.stringify(c.random_features.features) ===
      JSON.stringify(key.random) &&
    r.tomography.features.length === Math.min(key.rank, c.ranking.length) &&
    c.cumulative.points.every((pt) =>
      pt.control.draws.length === key.controlDraws
    );
}

/**
 * The first report of the run dir (the default one, then the named ones)
 * whose causal ranking was computed from the same trace, SAE, model,
 * backend, seed, steps, positions, candidates, subsample, metric, random
 * reference, control draws and tomography size as `key`: its causal section and tomography are then
 * exactly what this run would compute.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findRanking } from "./reports.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const key = { traceDigest: "0".repeat(64), saeSha: "0".repeat(64), modelSha: "0".repeat(64), backend: "wasm", seed: 0,
 *     steps: "s0.h0.H", positions: [0], source: "most_active", candidates: [1], examples: 4, rankBy: "token",
 *     random: [2, 5], rank: 1, controlDraws: 8 };
 *   assert.equal(await findRanking(dir, key), null); // no report yet
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function findRanking(
  runDir: string,
  key: RankingKey,
): Promise<FoundReport | null> {
  for (const found of await listReports(runDir)) {
    if (sameRanking(found.report, key)) return found;
  }
  return null;
}
