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
 * import { VERSION } from "./version.ts";
 * console.assert(/^\d+\.\d+\.\d+/.test(VERSION));
 * ```
 */
export const VERSION = "0.1.0";
