import assert from "node:assert/strict";
import { join } from "node:path";
import { StepError } from "../errors.ts";
import { openRunDir } from "./run_dir.ts";

Deno.test("a missing run dir is a StepError: the library names runTrace, the CLI words a command line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = join(dir, "nope");
    const err = await openRunDir(missing, { create: false }).then(
      () => assert.fail("opened a missing run dir"),
      (e) => e,
    );
    assert.ok(err instanceof StepError);
    assert.equal(
      err.message,
      `run dir ${missing} does not exist; run runTrace({ runDir: ${
        JSON.stringify(missing)
      } }) first`,
    );
    assert.deepEqual({ step: err.step, options: err.options }, {
      step: "trace",
      options: { runDir: missing },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
