// How an exchange ends: RelayKey's own answers (refusals), the units given back, the report
// (audit event, access log, metrics, every slot and timer released), and the end of the answer
// once its audit event is in the local log.
import type { ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { errorBody, errorSummary, statusOf, type ErrorCode } from '../errors.js'
import { sendJson } from './respond.js'
import { clearDeadline, clearStall, Finish, giveBackSignedBody, kQueued, RETRY_SOON, type ExchangeState } from './exchange-state.js'

export function circuitOpen (x: ExchangeState, retryAfterMs: number, message: string): void {
  refuse(x, 'circuit_open', message, ['retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000)))])
}

/** the exchange ends without an upstream answer: units back, then the refusal */
export function failBeforeResponse (x: ExchangeState, code: ErrorCode, message: string, retryAfterMs = -1): void {
  x.settled = true
  refund(x)
  if (x.attempt === 0) x.paid?.release()
  if (retryAfterMs >= 0) return circuitOpen(x, retryAfterMs, message)
  refuse(x, code, message)
}

export function refuse (x: ExchangeState, code: ErrorCode, message: string, headers?: string[]): void {
  const facts = x.facts
  facts.status = statusOf(code)
  facts.outcome = code
  if (x.res.headersSent) {
    // mid-answer: the only honest signal left is a broken response
    x.res.destroy()
    facts.bytesOut = 0
  } else {
    const body = errorBody(code, message, x.requestId)
    facts.bytesOut = Buffer.byteLength(body)
    answerJson(x, facts.status, body, headers)
  }
  report(x)
}

/** RelayKey's own answer, sent once the request's audit event is in the log */
export function answerJson (x: ExchangeState, status: number, body: string, headers: string[] | undefined): void {
  // refused before its body was asked for: the client may never send it, so the connection
  // cannot carry another request after this answer
  if (x.expectsContinue) x.res.shouldKeepAlive = false
  x.finish = Finish.Json
  x.jsonStatus = status
  x.jsonBody = body
  x.jsonHeaders = headers
}

export function report (x: ExchangeState): void {
  if (x.reported) return
  x.reported = true
  giveBackSignedBody(x)
  if (x.keySlot !== null) x.deps.concurrency.leave(x.keySlot)
  if (x.customerSlot !== null) x.deps.concurrency.leave(x.customerSlot)
  x.socket[kQueued]?.delete(x)
  clearDeadline(x)
  clearStall(x)
  if (x.inGate) x.upstream!.guards.gate.leave()
  if (x.partnerSucceeding) {
    x.partnerSucceeding = false
    x.upstream!.breaker.succeeded(Date.now())
  }
  // an answer to end waits for the event to be in the log; a broken or abandoned one does not
  x.deps.reporter.report(x.facts, x.finish === Finish.None ? null : x)
}

/** the audit event is in the local log: the client may have the end of its answer now */
export function auditLogged (x: ExchangeState): void {
  try {
    endAnswer(x)
  } catch (err) {
    // an answer that cannot be ended must not stay open: the client sees the connection go
    x.deps.logger.error({ request_id: x.requestId, err: errorSummary(err) }, 'answer could not be ended')
    x.res.destroy()
  }
}

export function endAnswer (x: ExchangeState): void {
  const res = x.res
  const finish = x.finish
  x.finish = Finish.None
  if (finish === Finish.Raw) {
    // the request's own framing broke: Node's parser for this connection is done, so the
    // answer goes straight to the socket, which closes behind it
    if (!x.socket.destroyed) x.socket.end(x.rawAnswer)
    return
  }
  if (res.destroyed) return
  if (finish === Finish.Json) {
    sendJson(res, x.jsonStatus, x.jsonBody, x.requestId, x.jsonHeaders)
    return
  }
  const held = x.heldChunk
  x.heldChunk = null
  if (held === null) res.end()
  else res.end(held)
  // a client that paid but does not read is cut like any other stalled reader
  if (x.paid !== null && !res.writableFinished) {
    // cleared once the answer is out, so the timer does not hold the response for clientStallMs
    const cut = setTimeout(destroyIfUnfinished, x.deps.clientStallMs, res).unref()
    res.once('finish', () => clearTimeout(cut))
  }
}

/** the request is not charged: its cost leaves the audit (and so usage) even without a budget */
export function refund (x: ExchangeState): void {
  x.facts.cost = 0
  const reservation = x.reservation
  if (reservation === null) return
  x.reservation = null
  x.deps.admission.refund(reservation).catch(logRefundFailure.bind(x.deps.logger))
}

export function governanceFailed (x: ExchangeState, err: unknown): void {
  // nothing was forwarded, so nothing is charged: usage then agrees with the budget (a Redis
  // decision that timed out but ran after all keeps its units there; docs/limits-and-budgets.md)
  x.facts.cost = 0
  x.deps.logger.error({ request_id: x.requestId, err: errorSummary(err) }, 'control-plane store failed')
  refuse(x, 'governance_unavailable', 'a store needed for this decision did not answer', RETRY_SOON)
}

function destroyIfUnfinished (res: ServerResponse): void {
  if (!res.writableFinished) res.destroy()
}

function logRefundFailure (this: Logger, err: unknown): void {
  this.error({ err: errorSummary(err) }, 'budget refund failed; the units stay spent')
}
