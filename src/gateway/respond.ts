// Writing RelayKey's own answers on the proxy port: JSON refusals and the small health bodies.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { errorBody, statusOf, type ErrorCode } from '../errors.js'

/**
 * HOT PATH (refusals under load): one string, one writeHead with a flat header array.
 * Returns the body's length in bytes (0 when the response had already started).
 */
export function sendError (res: ServerResponse, code: ErrorCode, message: string, requestId: string, extraHeaders?: string[]): number {
  if (res.headersSent) {
    res.destroy()
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
  closeIfDraining(res)
  res.writeHead(status, headers)
  res.end(body)
  return length
}

/**
 * A whole HTTP/1.1 refusal for a socket whose parser is done (Node gives no response object for
 * it, or no longer reads from it): the JSON error body, and the connection closes behind it.
 */
export function rawErrorResponse (status: number, reason: string, body: string, requestId: string, extraHeaders = ''): string {
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-relaykey-request-id: ${requestId}\r\n${extraHeaders}connection: close\r\n\r\n${body}`
}

/** the newest request a connection has brought: the one whose answer may end it */
const kLatest = Symbol('relaykey.latestRequest')
type ClientSocket = Socket & { server?: Server; [kLatest]?: IncomingMessage }

/** HOT PATH: once per request, on arrival */
export function noteLatestRequest (req: IncomingMessage): void {
  (req.socket as ClientSocket)[kLatest] = req
}

/**
 * While the worker drains (its server no longer listening), the answer to a connection's
 * newest request says `Connection: close`: a kept-alive client would otherwise send its next
 * request into a socket that is closed as soon as it goes idle, and get a reset it cannot
 * retry safely. Answers to requests pipelined before it keep the connection, or the requests
 * behind them, already received and forwarded, would go unanswered.
 * `socket` is the client's, kept from the start: undici clears `req.socket` once it has read
 * a request body.
 */
export function closeIfDraining (res: ServerResponse, socket: Socket | null = res.socket ?? res.req.socket): void {
  const client = socket as ClientSocket | null
  if (client?.server?.listening === false && client[kLatest] === res.req) res.shouldKeepAlive = false
}
