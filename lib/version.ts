/**
 * The tool version, recorded in every payload's provenance.
 *
 * @module
 */

/**
 * trminterp's version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VERSION } from "./version.ts";
 * assert(/^\d+\.\d+\.\d+/.test(VERSION));
 * ```
 */
export const VERSION = "0.1.0";
