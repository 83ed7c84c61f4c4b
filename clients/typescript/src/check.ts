// What the examples use to stop at the first answer the contract forbids.
import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseError } from "./errors.js";

/** An answer the contract does not allow. */
export class Failed extends Error {}

export function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Failed(what);
}

export function step(text: string): void {
  console.log(`ok  ${text}`);
}

/** Runs an example's steps: exit code 0 when all pass, 1 with a FAIL line otherwise. */
export async function runExample(usage: string, argc: number, body: (args: string[]) => Promise<void>): Promise<void> {
  const args = process.argv.slice(2);
  if (args.length !== argc) {
    console.error(`usage: ${usage}`);
    process.exitCode = 2;
    return;
  }
  try {
    await body(args);
    console.log("all steps passed");
  } catch (err) {
    if (err instanceof Failed) {
      console.error(`FAIL: ${err.message}`);
    } else if (err instanceof ConnectError) {
      const e = parseError(err);
      console.error(
        `FAIL: unexpected error ${Code[e.code]}: ${e.message} (reason ${e.reason}, fields ${JSON.stringify(e.fieldPaths)})`,
      );
    } else {
      console.error("FAIL:", err);
    }
    process.exitCode = 1;
  }
}

/** Calls `fn`, which must fail; returns its error. */
export async function expectError(what: string, fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Failed(`${what} succeeded`);
}

/** A short random id that keeps one run's emails and external ids apart from another's. */
export function runId(): string {
  return randomBytes(4).toString("hex");
}
