/**
 * The `trminterp` executable: `deno run cli.ts <command> ...`, the entry that
 * `deno compile` and runs from a URL use. The command line lives in `cli/`.
 *
 * @module
 */
import { main } from "./cli/main.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
