// One spelling of the command wherever it is printed, and one clear line
// for the values that node's parseArgs and Deno's permission checks used to
// word for themselves.
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, ROOT } from "./helpers.ts";

// The permissions `deno task trminterp` runs with.
const TASK = ["--allow-read", "--allow-write", "--allow-ffi"];

Deno.test("cli: --features -3, a flag with no value and --run-dir /proc/x each give one clear line, exit 2", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const cases: [string[], RegExp][] = [
      [
        [
          "intervene",
          "--run-dir",
          tmp,
          "--policy",
          "ablate_features",
          "--features",
          "-3",
        ],
        /^trminterp: error: --features must be an integer >= 0, got "-3"$/,
      ],
      [
        [
          "intervene",
          "--run-dir",
          tmp,
          "--steps",
          "--policy",
          "ablate_features",
        ],
        /^trminterp: error: intervene: --steps needs a value, but the next argument is a flag; give it one, e\.g\. --steps=VALUE \(see `deno task trminterp intervene --help`\)$/,
      ],
      [
        ["trace", "--run-dir", "/proc/x"],
        /^trminterp: error: trace: --run-dir \/proc\/x is under \/proc, which Deno opens only with --allow-all \(trminterp never needs it\); choose a run dir in an ordinary folder, e\.g\. runs\/demo$/,
      ],
      [
        ["sae", "fit", "--run-dir", "/dev/shm/trminterp-x"],
        /is under \/dev, which Deno opens only with --allow-all/,
      ],
    ];
    for (const [args, want] of cases) {
      const p = await cli(args, TASK);
      assert.equal(p.code, 2, `${args.join(" ")}: ${p.stderr}`);
      assert.equal(p.stderr.trim().split("\n").length, 1, p.stderr);
      assert.match(p.stderr.trim(), want);
    }
    // A negative value is a value: clamping to -1.5 gets past the flags (and
    // stops at the empty run dir).
    const p = await cli([
      "intervene",
      "--run-dir",
      tmp,
      "--policy",
      "clamp_features",
      "--features",
      "1",
      "--value",
      "-1.5",
    ], TASK);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /no trace\.jsonl in /);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cli: every printed command is spelt `deno task trminterp`, as the README's Usage spells it", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const printed: string[] = [];
    for (
      const args of [
        ["--help"],
        ["trace", "--help"],
        ["sae", "fit", "--help"],
        ["intervene", "--help"],
        ["trace"],
        ["sae", "--oops"],
        ["trace", "--run-dir", tmp, "--nope"],
        ["sae", "fit", "--run-dir", join(tmp, "none")],
        [
          "intervene",
          "--run-dir",
          join(tmp, "none"),
          "--policy",
          "ablate_features",
        ],
      ]
    ) {
      const p = await cli(args, TASK);
      printed.push(p.stdout, p.stderr);
    }
    const text = printed.join("\n");
    const spellings = [
      ...text.matchAll(/(\S+ \S+ )?trminterp (trace|sae|intervene|<command>)/g),
    ]
      .map((m) => m[0].replace(/ (trace|sae|intervene|<command>)$/, ""));
    assert.ok(spellings.length >= 8, `found ${spellings.length}`);
    for (const s of spellings) {
      assert.match(s, /(^|[` ])deno task trminterp$/, s);
    }
    const readme = await Deno.readTextFile(join(ROOT, "README.md"));
    const usage =
      readme.split("## Usage")[1].split("```sh\n")[1].split("```")[0];
    for (const line of usage.trim().split("\n")) {
      assert.match(line, /^deno task trminterp /, line);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
