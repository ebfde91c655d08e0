/**
 * Folder pins: the identity (device and inode) of a run dir and of every
 * folder on its path, taken when a command opens it and checked again just
 * before each create, rename and remove inside it. Deno checks the path a
 * program names, not where it leads, and has no `openat`: a run dir swapped
 * for a symbolic link while a command runs would otherwise send the writes
 * wherever the link points, outside the grant.
 *
 * The check and the operation are two system calls made one after the other
 * (both synchronous, with nothing between them), so a swap that lands in
 * that gap still wins; `bench/race_window.ts` measures the gap.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { InputError } from "../errors.ts";

interface Identity {
  path: string;
  dev: number;
  ino: number | null;
  link: boolean;
}

interface Pin {
  path: string;
  ids: Identity[];
  holders: number;
}

const pins = new Map<string, Pin>();

/** Every prefix of an absolute path, root first: /a/b → /, /a, /a/b. */
function prefixes(abs: string): string[] {
  const out = ["/"];
  let at = "";
  for (const part of abs.split("/").filter(Boolean)) {
    at += `/${part}`;
    out.push(at);
  }
  return out;
}

function identity(path: string): Identity {
  const st = Deno.lstatSync(path);
  return { path, dev: st.dev, ino: st.ino, link: st.isSymlink };
}

/**
 * Pin the folder `dir` (which must exist): until the returned function is
 * called, {@linkcode checkPinned} refuses any path under it once `dir` or a
 * folder above it is no longer the same folder. Pins nest and count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkPinned, pinFolder } from "./pins.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/run`);
 *   const unpin = pinFolder(`${dir}/run`);
 *   checkPinned(`${dir}/run/trace.jsonl`); // unchanged: fine
 *   await Deno.rename(`${dir}/run`, `${dir}/moved`);
 *   await Deno.symlink(`${dir}/moved`, `${dir}/run`);
 *   assert.throws(() => checkPinned(`${dir}/run/trace.jsonl`), /was moved or replaced/);
 *   unpin();
 *   checkPinned(`${dir}/run/trace.jsonl`); // no longer pinned
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function pinFolder(dir: string): () => void {
  const abs = resolve(dir);
  let pin = pins.get(abs);
  if (pin) pin.holders++;
  else {
    // Folders above the grant may not be readable (a scoped --allow-read):
    // those are left out. The pinned folder's own identity, reached through
    // them, still changes when any of them is swapped.
    const ids: Identity[] = [];
    for (const p of prefixes(abs).slice(0, -1)) {
      try {
        ids.push(identity(p));
      } catch {
        // not ours to read
      }
    }
    ids.push(identity(abs));
    pin = { path: abs, ids, holders: 1 };
    pins.set(abs, pin);
  }
  const held = pin;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--held.holders === 0 && pins.get(abs) === held) pins.delete(abs);
  };
}

/**
 * Refuse, with one line, to create, rename or remove `path` when a pinned
 * folder above it (or a folder above that one) has been moved or replaced
 * since it was pinned, or when a folder between the pin and `path` is a
 * symbolic link. Paths under no pin pass. Synchronous, so that the caller's
 * next system call follows it at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkPinned, pinFolder } from "./pins.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const unpin = pinFolder(dir);
 *   await Deno.symlink("/tmp", `${dir}/out`);
 *   assert.throws(() => checkPinned(`${dir}/out/x.json`), /symbolic link/);
 *   checkPinned(`${dir}/x.json`);
 *   unpin();
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function checkPinned(path: string): void {
  if (pins.size === 0) return;
  const abs = resolve(path);
  const parent = dirname(abs);
  let deepest: Pin | null = null;
  for (const pin of pins.values()) {
    if (parent === pin.path || parent.startsWith(`${pin.path}/`)) {
      if (!deepest || pin.path.length > deepest.path.length) deepest = pin;
    }
  }
  if (!deepest) return;
  for (const want of deepest.ids) {
    let got: Identity | null = null;
    try {
      got = identity(want.path);
    } catch {
      // gone: refused below
    }
    if (
      !got || got.dev !== want.dev || got.ino !== want.ino ||
      got.link !== want.link
    ) {
      throw moved(deepest.path, want.path);
    }
  }
  // Folders between the pin and the path (interventions/<name>, say).
  const below = prefixes(parent).slice(prefixes(deepest.path).length);
  for (const p of below) {
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(p);
    } catch {
      return; // not created yet: the operation itself will fail
    }
    if (st.isSymlink) {
      throw new InputError(
        `${p} is a symbolic link; trminterp does not follow links inside ${deepest.path}: remove it and re-run`,
      );
    }
  }
}

function moved(pinned: string, changed: string): InputError {
  return new InputError(
    `${pinned} was moved or replaced while trminterp was using it (${changed} is no longer the folder it was); nothing more was written: keep the folder in place while the command runs, then re-run`,
  );
}
