// Reads the details Kith attaches to a failed call: a google.rpc.ErrorInfo
// (domain "kith", reason the name of a kith.v1.ErrorReason value) and, when
// request fields are at fault, a google.rpc.BadRequest naming each field by
// its path. Works the same over gRPC, gRPC-Web and Connect.
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

export const DOMAIN = "kith";

export interface KithError {
  code: Code;
  /** The status message, without connect's "[code]" prefix. */
  message: string;
  /** ErrorInfo.reason, such as "ERROR_REASON_INVALID_FIELD"; undefined without an ErrorInfo. */
  reason?: string;
  domain?: string;
  metadata: Record<string, string>;
  /** Each BadRequest field violation, in the server's order. */
  violations: { field: string; description: string }[];
  /** The paths of the offending fields (`violations[i].field`). */
  fieldPaths: string[];
  /** RetryInfo.retry_delay in seconds, when the server sent one. */
  retryDelaySeconds?: number;
}

/** Decodes any error a Connect client threw (anything else becomes Code.Unknown). */
export function parseError(err: unknown): KithError {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  const violations = e
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations)
    .map((v) => ({ field: v.field, description: v.description }));
  const retry = e.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return {
    code: e.code,
    message: e.rawMessage,
    reason: info?.reason,
    domain: info?.domain,
    metadata: info ? { ...info.metadata } : {},
    violations,
    fieldPaths: violations.map((v) => v.field),
    retryDelaySeconds:
      retry === undefined ? undefined : Number(retry.seconds) + retry.nanos / 1e9,
  };
}
