// Writing RelayKey's own answers on the proxy port: JSON refusals and the small health bodies.
import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { errorBody, statusOf, type ErrorCode } from '../errors.js'

/**
 * HOT PATH (refusals under load): one string, one writeHead with a flat header array.
 * Returns the body's length in bytes (0 when the response had already started).
 */
export function sendError (res: ServerResponse, code: ErrorCode, message: string, requestId: string, extraHeaders?: string[]): number {
  if (res.headersSent) {
    breakConnection(res)
    return 0
  }
  return sendJson(res, statusOf(code), errorBody(code, message, requestId), requestId, extraHeaders)
}

/** a JSON body with RelayKey's own headers (and `extraHeaders`); returns its length in bytes */
export function sendJson (res: ServerResponse, status: number, body: string, requestId: string, extraHeaders?: string[]): number {
  const length = Buffer.byteLength(body)
  const headers = [
    'content-type', 'application/json',
    'content-length', String(length),
    'cache-control', 'no-store',
    'x-relaykey-request-id', requestId,
  ]
  if (extraHeaders !== undefined) {
    for (let i = 0; i < extraHeaders.length; i++) headers.push(extraHeaders[i]!)
  }
  res.writeHead(status, headers)
  res.end(body)
  return length
}

/**
 * Ends the client's connection under a response that cannot be finished honestly. A pipelined
 * response still queued behind an earlier one has no socket yet, and res.destroy() would wait
 * for one that a client no longer reading never frees: the connection's socket goes instead.
 * `socket` is the client's, kept from the start: undici clears `req.socket` once it has read
 * a request body.
 */
export function breakConnection (res: ServerResponse, socket: Socket | null = res.req.socket): void {
  if (res.socket !== null || socket === null) res.destroy()
  else socket.destroy()
}

/**
 * While the worker drains (its server no longer listening), every response says
 * `Connection: close`: a kept-alive client would otherwise send its next request into a
 * socket that is closed as soon as it goes idle, and get a reset it cannot retry safely.
 */
export function closeIfDraining (res: ServerResponse, socket: Socket | null = res.req.socket): void {
  if ((socket as (Socket & { server?: Server }) | null)?.server?.listening === false) res.shouldKeepAlive = false
}
