// The client's side of the flow: how the request body travels (streamed once, or read whole to
// be retried or signed, within the worker's signed-body memory), the response's backpressure
// (a client that stops reading is cut off after RELAYKEY_CLIENT_IDLE_TIMEOUT_MS), pipelined
// requests queued behind another answer, a body that breaks HTTP framing, and a client that
// leaves. Listeners are module-level functions that find the exchange on the request, response
// or socket: no closure per request.
import type { ServerResponse } from 'node:http'
import { errorBody } from '../errors.js'
import { isIdempotentMethod } from '../reliability/retry-rules.js'
import { rawErrorResponse } from './respond.js'
import { failBeforeResponse, refund, report } from './exchange-answers.js'
import { clearStall, Finish, kExchange, kQueued, releaseProbes, type ClientSocket, type ExchangeRequest, type ExchangeResponse, type ExchangeState } from './exchange-state.js'

/** decide how the body travels, then send the first attempt */
export function send (x: ExchangeState): void {
  const res = x.res
  if (res.destroyed || x.socket.destroyed) return clientClosed(x)
  x.sending = true
  if (x.bodyBroken) return refuseMalformedBody(x)
  res.on('close', onResponseClose)
  // Pipelined behind a response still going out: this one has no socket yet and gets no
  // 'close' if the client leaves, so the connection itself is watched.
  if (res.socket === null) watchQueued(x.socket, x)
  const upstream = x.upstream!
  const retry = upstream.retry
  upstream.guards.budget.recordRequest(x.facts.ts)
  const req = x.req
  const mayRetry = retry.maxAttempts > 1 && (x.idempotencyKey || isIdempotentMethod(req.method!))
  if (!x.hasBody) {
    x.replayable = mayRetry
    return x.attemptNow()
  }
  if (x.expectsContinue) {
    x.expectsContinue = false
    res.writeContinue()
  }
  const signed = upstream.signedBodyLimit >= 0
  // an access token the partner refuses is refreshed and the request sent again, so a small
  // body is kept for that too (signers that need no body: OAuth2)
  const keep = signed || ((mayRetry || x.credential!.signer !== null) && x.contentLength > 0 && x.contentLength <= retry.replayBufferBytes)
  if (keep) {
    // small enough to keep (or signed): read it all, then every attempt sends the same bytes
    x.replayable = mayRetry
    if (signed) x.bodyLimit = upstream.signedBodyLimit
    x.bodyChunks = []
    req[kExchange] = x
    req.on('data', onRequestData)
    req.on('end', onRequestEnd)
    return
  }
  // unknown or large: streamed once, so never retried
  x.body = req
  x.attemptNow()
}

export function bodyChunk (x: ExchangeState, chunk: Buffer): void {
  if (x.bodyChunks === null) return // refused for its size: the rest is read and dropped
  x.bodyBytes += chunk.length
  if (x.bodyLimit >= 0) {
    if (x.bodyBytes > x.bodyLimit) return signedBodyTooLarge(x)
    if (!x.deps.signedBodies.take(chunk.length)) return signedBodiesFull(x)
    x.signedBytesHeld += chunk.length
  }
  x.bodyChunks.push(chunk)
}

/** the worker holds as many signed bodies as it may: this one waits for a retry, uncharged */
export function signedBodiesFull (x: ExchangeState): void {
  x.bodyChunks = null
  x.res.shouldKeepAlive = false
  x.deps.logger.warn({ request_id: x.requestId, partner: x.partnerSlug, held_bytes: x.deps.signedBodies.held() }, 'signed request bodies in memory reached RELAYKEY_SIGNED_BODY_MEMORY_BYTES; request refused')
  failBeforeResponse(x, 'circuit_open', 'RelayKey holds as many request bodies for signing as it may; retry shortly', 1000)
}

/** a chunked body passed the signing bound while being read: 413, nothing sent, nothing charged */
export function signedBodyTooLarge (x: ExchangeState): void {
  x.bodyChunks = null
  x.res.shouldKeepAlive = false // the rest of the body is not read as a next request
  failBeforeResponse(x, 'payload_too_large', `partner ${x.partnerSlug} signs request bodies, which may be at most ${x.bodyLimit} bytes`)
}

export function bodyComplete (x: ExchangeState): void {
  if (x.bodyChunks === null) return
  const body = Buffer.concat(x.bodyChunks)
  x.bodyChunks = null
  x.body = body
  x.facts.bytesIn = body.length
  if (!x.settled) x.attemptNow()
}

/** response writable again: let undici read from the upstream socket */
export function resumeAnswer (x: ExchangeState): void {
  clearStall(x)
  x.resume?.()
}

/** the client has not read for clientStallMs: its connection goes, and 'close' ends the exchange */
export function stalled (x: ExchangeState): void {
  if (x.res.socket === null) {
    // queued behind an earlier answer on the connection: that one is what the client is (or
    // is not) reading, and its own timer judges it; this one waits its turn
    x.stallTimer = setTimeout(stalled, x.deps.clientStallMs, x)
    return
  }
  x.stallTimer = null
  x.deps.logger.info({ request_id: x.requestId }, 'client stopped reading the response; connection closed')
  x.res.destroy()
}

/**
 * The client's body broke HTTP framing (an invalid chunk size, a bare LF, an oversized chunk
 * extension) before any answer began: 400 bad_request with this request's id, the attempt
 * aborted, nothing charged, and the event audited as 400. False when it is too late for that.
 */
export function bodyMalformed (x: ExchangeState): boolean {
  if (x.settled || x.reported || x.res.headersSent) return false
  if (!x.sending) {
    // still deciding (a key load, the limits, a payment claim): those end in a refusal, or in
    // send, which answers this 400 instead of reading the body. The parser is done with this
    // connection either way, so it closes after the answer
    x.bodyBroken = true
    x.res.shouldKeepAlive = false
    return true
  }
  refuseMalformedBody(x)
  return true
}

/** the 400 for a body that broke framing: the attempt aborted, nothing charged, audited as 400 */
export function refuseMalformedBody (x: ExchangeState): void {
  x.settled = true
  if (x.retryTimer !== null) clearTimeout(x.retryTimer)
  x.abort?.(new Error('the client sent a malformed body'))
  releaseProbes(x)
  if (x.attempt === 0) x.paid?.release()
  x.paid?.drop()
  refund(x)
  const facts = x.facts
  facts.status = 400
  facts.outcome = 'bad_request'
  const body = errorBody('bad_request', 'the request body is not valid HTTP/1.1 framing (chunked encoding)', x.requestId)
  facts.bytesOut = Buffer.byteLength(body)
  x.finish = Finish.Raw
  x.rawAnswer = rawErrorResponse(400, 'Bad Request', body, x.requestId)
  report(x)
}

/** the client went away (or the response finished) */
export function clientClosed (x: ExchangeState): void {
  // reported: its answer is written or waiting for the audit log; nothing left to undo
  if (x.settled || x.reported) return
  // x402: the partner has the request and a verified payment stands for it, so the answer is
  // still awaited and the payment settled (nobody reads the answer); onHeaders, onError or
  // the settlement end the exchange
  if (x.paid !== null && x.reached && x.retryTimer === null && !x.res.headersSent) return
  clientLeftDuringAttempt(x)
}

/**
 * The client is gone before its answer's end. Charged once an attempt may have reached the
 * partner, whose work it then was (docs/limits-and-budgets.md); refunded otherwise.
 */
export function clientLeftDuringAttempt (x: ExchangeState): void {
  x.settled = true
  if (x.retryTimer !== null) clearTimeout(x.retryTimer)
  x.abort?.()
  releaseProbes(x)
  if (x.attempt === 0) x.paid?.release()
  const facts = x.facts
  if (!x.res.headersSent) {
    if (!x.reached) refund(x)
    facts.status = 499
    facts.outcome = 'client_closed'
  } else {
    facts.outcome = 'forwarded'
  }
  report(x)
}

export function onResponseDrain (this: ExchangeResponse): void {
  // not now: a pipelined response is flushed, and drains, when the one before it ends, inside
  // that exchange's undici callback; undici cannot resume another parser from there
  process.nextTick(resumeExchange, this)
}

function resumeExchange (res: ExchangeResponse): void {
  const exchange = res[kExchange]
  if (exchange !== undefined) resumeAnswer(exchange)
}

/** the exchange answering `res`, told its client's body broke framing; false if there is none */
export function answerMalformedBody (res: ServerResponse): boolean {
  const exchange = (res as ExchangeResponse)[kExchange]
  return exchange === undefined ? false : bodyMalformed(exchange)
}

function onResponseClose (this: ExchangeResponse): void {
  const exchange = this[kExchange]
  if (exchange !== undefined) clientClosed(exchange)
}

function watchQueued (socket: ClientSocket, exchange: ExchangeState): void {
  let queued = socket[kQueued]
  if (queued === undefined) {
    queued = socket[kQueued] = new Set()
    socket.once('close', onQueuedSocketClose)
  }
  queued.add(exchange)
}

function onQueuedSocketClose (this: ClientSocket): void {
  const queued = this[kQueued]
  if (queued === undefined) return
  for (const exchange of [...queued]) clientClosed(exchange)
}

function onRequestData (this: ExchangeRequest, chunk: Buffer): void {
  bodyChunk(this[kExchange]!, chunk)
}

function onRequestEnd (this: ExchangeRequest): void {
  bodyComplete(this[kExchange]!)
}
