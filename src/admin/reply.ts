// The contract between the admin server and its route handlers: a handler is an async
// function of one call, and its outcome, including an expected refusal such as not_found, is
// a value the server turns into a response. Only invalid input (ValidationError) and store
// conflicts (ConflictError) travel as exceptions, because they surface from deep inside.
import type { ErrorCode } from '../errors.js'
import type { AdminCaller } from './bearer-auth.js'

export interface AdminCall {
  /** decoded path parameters in pattern order */
  params: string[]
  query: URLSearchParams
  /** the parsed JSON body; undefined when the request had none */
  body: unknown
  /** the admin token the call came with (its name goes into the change log) */
  caller: AdminCaller
  /** the X-RelayKey-Request-Id the caller gets back */
  requestId: string
}

export type AdminReply =
  | { kind: 'json'; status: number; body: unknown }
  | { kind: 'text'; status: number; body: string; contentType: string }
  | { kind: 'empty'; status: number }
  | { kind: 'error'; code: ErrorCode; message: string }

export type AdminHandler = (call: AdminCall) => Promise<AdminReply>

export function ok (body: unknown): AdminReply {
  return { kind: 'json', status: 200, body }
}

export function created (body: unknown): AdminReply {
  return { kind: 'json', status: 201, body }
}

export function noContent (): AdminReply {
  return { kind: 'empty', status: 204 }
}

export function refuse (code: ErrorCode, message: string): AdminReply {
  return { kind: 'error', code, message }
}

export function notFound (what: string, ref: string): AdminReply {
  // The reference comes from the URL; cut it so a huge path does not come back in the body.
  const shown = ref.length > 128 ? `${ref.slice(0, 125)}...` : ref
  return { kind: 'error', code: 'not_found', message: `${what} '${shown}' not found` }
}
