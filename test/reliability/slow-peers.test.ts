// Slow or stalled peers on either side never pin a RelayKey connection: a client that stalls
// (headers, body, or reading the response) is cut by the client timeouts, an upstream that
// stalls mid-body is cut by the partner's request_ms, and a stream that keeps flowing (SSE) is
// passed through as it is sent, never cut and never buffered.
//
// Two partners on one mock: `acme` with request_ms 500 (the upstream-side cases) and `patient`
// with request_ms 10 s, so that in the client-side cases only a client timeout can end things.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client } from 'undici'
import { startRelayKey, setUpGovernedPartner, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { closedWithin, openRawConnection, parseHead, type RawConnection } from '../helpers/raw-connection.js'

const HEADERS_TIMEOUT_MS = 500
const REQUEST_TIMEOUT_MS = 1500
const IDLE_TIMEOUT_MS = 1500
const ACME_REQUEST_MS = 500

const SSE_EVENTS = 10
const SSE_SPACING_MS = 150
const BIG_BYTES = 50 * 1024 * 1024

interface AuditEvent { path: string; status: number; outcome: string; bytes_in: number; bytes_out: number; cost: number }

describe('slow peers', { timeout: 120_000 }, () => {
  let rk: RelayKeyProcess
  let partner: MockPartner
  let acme: GovernedSetup
  let patient: GovernedSetup
  /** when the partner wrote each SSE event (Date.now()) */
  const sseSentAt: number[] = []
  /** when the partner wrote the 100 bytes of /half-body */
  let halfBodySentAt = 0
  /** the partner-side response of each upstream request, by path */
  const upstream = new Map<string, ServerResponse>()

  before(async () => {
    partner = await startMockPartner()
    // seen on arrival, before the mock waits for the request body
    partner.server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      upstream.set(req.url!, res)
      if (req.url === '/early-answer') earlyAnswer(res)
    })
    partner.handle(answer)
    rk = await startRelayKey({
      env: {
        RELAYKEY_CLIENT_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        RELAYKEY_CLIENT_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        RELAYKEY_CLIENT_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
      },
    })
    acme = await setUpGovernedPartner(rk, { slug: 'acme', baseUrl: partner.url })
    patient = await setUpGovernedPartner(rk, { slug: 'patient', baseUrl: partner.url })
    for (const [slug, requestMs] of [['acme', ACME_REQUEST_MS], ['patient', 10_000]] as const) {
      const res = await rk.admin('PATCH', `/admin/partners/${slug}`, { timeouts: { request_ms: requestMs } })
      assert.equal(res.status, 200, JSON.stringify(res.body))
      assert.equal(res.body.timeouts.request_ms, requestMs)
    }
    await sleep(300) // the workers drop their cached partner settings
  })

  after(async () => {
    await rk?.stop()
    await partner?.close()
  })

  function answer (req: IncomingMessage, res: ServerResponse): void {
    switch (req.url) {
      case '/early-answer':
        return // answered on arrival, see earlyAnswer
      case '/half-body':
        // promises 1000 bytes, sends 100, then nothing: only RelayKey's body timeout ends it
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000' })
        res.write(Buffer.alloc(100, 0x61))
        halfBodySentAt = Date.now()
        return
      case '/sse': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        let i = 0
        const send = (): void => {
          if (res.destroyed) return
          sseSentAt.push(Date.now())
          res.write(`id: ${i}\ndata: event ${i}\n\n`)
          if (++i === SSE_EVENTS) res.end()
          else setTimeout(send, SSE_SPACING_MS)
        }
        send()
        return
      }
      case '/big': {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_BYTES) })
        const chunk = Buffer.alloc(64 * 1024, 0x62)
        let sent = 0
        const pump = (): void => {
          while (sent < BIG_BYTES && !res.destroyed) {
            sent += chunk.length
            if (!res.write(chunk)) return void res.once('drain', pump)
          }
          if (sent >= BIG_BYTES) res.end()
        }
        pump()
        return
      }
      default: {
        const body = JSON.stringify({ ok: true, url: req.url })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      }
    }
  }

  /** answers before the request body has arrived, a line every 100 ms for about 3 s */
  function earlyAnswer (res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/plain' })
    let line = 0
    const next = (): void => {
      if (res.destroyed) return
      if (++line > 30) return void res.end()
      res.write(`line ${line}\n`)
      setTimeout(next, 100)
    }
    next()
  }

  /** resolves with ms since the call when the partner's response to `path` closes unfinished */
  function upstreamAbandoned (path: string, ms: number): Promise<number | null> {
    const started = Date.now()
    return new Promise((resolve) => {
      const deadline = setTimeout(resolve, ms, null)
      const check = (): void => {
        const res = upstream.get(path)
        if (res === undefined) {
          if (Date.now() - started < ms) setTimeout(check, 20)
          return
        }
        const done = (): void => {
          clearTimeout(deadline)
          resolve(res.writableFinished ? null : Date.now() - started)
        }
        if (res.closed) done()
        else res.once('close', done)
      }
      check()
    })
  }

  /** the audit event for `path`, polled until it is written (audit batches every 100 ms) */
  async function auditEvent (keyId: string, path: string): Promise<AuditEvent> {
    for (let i = 0; i < 50; i++) {
      const page = await rk.admin('GET', `/admin/audit?key_id=${keyId}&limit=200`)
      assert.equal(page.status, 200)
      const event = (page.body.events as AuditEvent[]).find((e) => e.path === path)
      if (event !== undefined) return event
      await sleep(100)
    }
    assert.fail(`no audit event for ${path} within 5 s`)
  }

  async function served (setup: GovernedSetup, slug: string): Promise<void> {
    const client = new Client(rk.proxyUrl)
    try {
      const res = await client.request({ method: 'GET', path: `/proxy/${slug}/ok`, headers: { 'x-relaykey': setup.key } })
      assert.equal(res.statusCode, 200)
      assert.deepEqual(await res.body.json(), { ok: true, url: '/ok' })
    } finally {
      await client.close()
    }
  }

  /**
   * POSTs to `path` announcing 1000 bytes and sends one every 100 ms (never idle, done in 100 s);
   * asserts the request timeout cuts it within 4 s
   */
  async function trickleBodyUntilCut (path: string): Promise<RawConnection> {
    const conn = await openRawConnection(Number(new URL(rk.proxyUrl).port))
    conn.socket.write(`POST /proxy/patient${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relaykey: ${patient.key}\r\n` +
      'Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n')
    const trickle = setInterval(() => { if (!conn.socket.destroyed) conn.socket.write('x') }, 100)
    try {
      const closedAt = await closedWithin(conn, 4000)
      assert.notEqual(closedAt, null, `a client trickling its body was still connected after 4 s (request timeout ${REQUEST_TIMEOUT_MS} ms)`)
    } finally {
      clearInterval(trickle)
      conn.destroy()
    }
    return conn
  }

  /** a timed-out client may get a 408 before the close (docs/reliability.md); any other answer is wrong */
  function assertCutOff (conn: RawConnection, what: string): void {
    const bytes = conn.received()
    if (bytes.length === 0) return
    const head = parseHead(bytes)
    assert.equal(head?.status, 408, `${what}: expected 408 or a bare close, got ${JSON.stringify(bytes.subarray(0, 120).toString('latin1'))}`)
  }

  it('a client that sends half its headers and stalls is cut off; others are served meanwhile', { timeout: 15_000 }, async () => {
    const conn = await openRawConnection(Number(new URL(rk.proxyUrl).port))
    conn.socket.write(`GET /proxy/patient/ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Rel`)
    for (let i = 0; i < 5; i++) await served(patient, 'patient')
    const closedAt = await closedWithin(conn, 3000)
    conn.destroy()
    assert.notEqual(closedAt, null, 'a client stalled mid-headers was still connected after 3 s')
    await served(patient, 'patient')
    assertCutOff(conn, 'stalled headers')
  })

  it('a client that trickles its headers byte by byte is cut by the headers timeout', { timeout: 15_000 }, async () => {
    // never idle (a byte every 100 ms), so only RELAYKEY_CLIENT_HEADERS_TIMEOUT_MS can end it;
    // the whole head would take about 7 s to arrive
    const head = `GET /proxy/patient/ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relaykey: ${patient.key}\r\nX-Pad: ${'p'.repeat(10)}\r\n\r\n`
    const conn = await openRawConnection(Number(new URL(rk.proxyUrl).port))
    let sent = 0
    const trickle = setInterval(() => {
      if (sent < head.length && !conn.socket.destroyed) conn.socket.write(head[sent++]!)
    }, 100)
    try {
      const closedAt = await closedWithin(conn, 3000)
      assert.notEqual(closedAt, null,
        `a client trickling its headers was still connected after 3 s (${sent} of ${head.length} bytes sent; headers timeout ${HEADERS_TIMEOUT_MS} ms)`)
    } finally {
      clearInterval(trickle)
      conn.destroy()
    }
    assertCutOff(conn, 'trickled headers')
  })

  it('a client that stalls mid-body (streamed upload) is cut off and the upstream request is abandoned and audited', { timeout: 15_000 }, async () => {
    // POST is not replayable, so the body streams to the partner as it arrives
    const path = '/upload-streamed'
    const abandoned = upstreamAbandoned(path, 6000)
    const conn = await openRawConnection(Number(new URL(rk.proxyUrl).port))
    conn.socket.write(`POST /proxy/patient${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relaykey: ${patient.key}\r\n` +
      'Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789')
    await served(patient, 'patient')
    const closedAt = await closedWithin(conn, 4000)
    conn.destroy()
    assert.notEqual(closedAt, null, 'a client stalled mid-body was still connected after 4 s')
    assert.notEqual(await abandoned, null, 'the upstream request was left open after the client was cut off')
    const event = await auditEvent(patient.keyId, path)
    assert.equal(event.status, 499, JSON.stringify(event))
    assert.equal(event.outcome, 'client_closed')
    await served(patient, 'patient')
    assertCutOff(conn, 'stalled body')
  })

  it('a client that stalls mid-body (buffered for retry) is cut off and audited, and nothing reaches the partner', { timeout: 15_000 }, async () => {
    // PUT is idempotent and 1000 bytes fit the retry buffer: RelayKey reads it all before sending
    const path = '/upload-buffered'
    const conn = await openRawConnection(Number(new URL(rk.proxyUrl).port))
    conn.socket.write(`PUT /proxy/patient${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relaykey: ${patient.key}\r\n` +
      'Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789')
    const closedAt = await closedWithin(conn, 4000)
    conn.destroy()
    assert.notEqual(closedAt, null, 'a client stalled mid-body was still connected after 4 s')
    const event = await auditEvent(patient.keyId, path)
    assert.equal(event.status, 499, JSON.stringify(event))
    assert.equal(event.outcome, 'client_closed')
    assert.equal(upstream.has(path), false, 'half a body was forwarded to the partner')
    // nothing reached the partner: nothing is charged
    assert.equal(event.cost, 0)
    assertCutOff(conn, 'stalled buffered body')
  })

  it('a client that trickles its body is cut by the request timeout and the upstream request is abandoned', { timeout: 15_000 }, async () => {
    // a byte every 100 ms: never idle, and the 1000 bytes would take 100 s
    const path = '/upload-trickled'
    const abandoned = upstreamAbandoned(path, 6000)
    const conn = await trickleBodyUntilCut(path)
    assert.notEqual(await abandoned, null, 'the upstream request was left open after the client was cut off')
    assertCutOff(conn, 'trickled body')
  })

  it('a client still uploading when the partner\'s answer has begun is cut with a broken response, never a second one spliced in', { timeout: 15_000 }, async () => {
    // the partner answers at once and streams, without reading the upload; the client trickles
    // its body past the request timeout, which fires in the middle of the answer's body
    const path = '/early-answer'
    const abandoned = upstreamAbandoned(path, 6000)
    const conn = await trickleBodyUntilCut(path)
    assert.notEqual(await abandoned, null, 'the upstream request was left open after the client was cut off')
    const received = conn.received().toString('latin1')
    assert.equal(parseHead(conn.received())?.status, 200)
    assert.match(received, /line 1\n/, 'the start of the partner\'s answer reached the client')
    assert.doesNotMatch(received, /0\r\n\r\n$/, 'the answer was cut, so it must not look complete')
    // once a response has started, the only honest signal is the close (what Node does itself)
    assert.equal(received.split('HTTP/1.1 ').length - 1, 1,
      `a second response was written into the body of the first: ${JSON.stringify(received.slice(received.lastIndexOf('HTTP/1.1 '), received.lastIndexOf('HTTP/1.1 ') + 60))}`)
  })

  it('an upstream that stalls mid-body is cut by request_ms and the client sees a broken response', { timeout: 15_000 }, async (t) => {
    const abandoned = upstreamAbandoned('/half-body', 5000)
    const conn = await openRawConnection(Number(new URL(rk.proxyUrl).port))
    conn.socket.write(`GET /proxy/acme/half-body HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relaykey: ${acme.key}\r\n\r\n`)
    // the clock starts when the partial body has reached the client
    for (let i = 0; i < 100 && (parseHead(conn.received())?.body.length ?? 0) < 100; i++) await sleep(20)
    const head = parseHead(conn.received())
    assert.equal(head?.status, 200)
    assert.equal(head.headers['content-length'], '1000')
    assert.equal(head.body.length, 100)
    // request_ms (500) is the longest silence allowed between body chunks. undici checks body
    // timeouts on a 499 ms tick, so it fires between about 0.5 and 1 s after the last chunk.
    const closedAt = await closedWithin(conn, 5000)
    const cutAfter = Date.now() - halfBodySentAt
    conn.destroy()
    assert.notEqual(closedAt, null, 'the client was still waiting 5 s after the upstream stalled')
    t.diagnostic(`cut ${cutAfter} ms after the upstream stalled`)
    assert.ok(cutAfter < 2500, `cut ${cutAfter} ms after the upstream stalled, with request_ms ${ACME_REQUEST_MS}`)
    assert.equal(parseHead(conn.received())!.body.length, 100, 'fewer bytes than Content-Length, then the close')
    assert.notEqual(await abandoned, null, 'the stalled upstream connection was left open')
    const event = await auditEvent(acme.keyId, '/half-body')
    assert.equal(event.status, 200)
    assert.equal(event.bytes_out, 100)
  })

  it('SSE passes through event by event, never buffered, never cut between events', { timeout: 15_000 }, async () => {
    sseSentAt.length = 0
    const client = new Client(rk.proxyUrl)
    try {
      const res = await client.request({ method: 'GET', path: '/proxy/acme/sse', headers: { 'x-relaykey': acme.key, accept: 'text/event-stream' } })
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['content-type'], 'text/event-stream')
      const events: string[] = []
      const receivedAt: number[] = []
      let buffered = ''
      for await (const chunk of res.body) {
        buffered += (chunk as Buffer).toString('utf8')
        for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
          events.push(buffered.slice(0, end))
          receivedAt.push(Date.now())
          buffered = buffered.slice(end + 2)
        }
      }
      // the stream ended normally (no error thrown above), with every event, in order
      assert.equal(buffered, '')
      assert.deepEqual(events, Array.from({ length: SSE_EVENTS }, (_, i) => `id: ${i}\ndata: event ${i}`))
      assert.equal(sseSentAt.length, SSE_EVENTS)
      // lasting longer than request_ms (and the client request timeout) is fine while it flows
      assert.ok(sseSentAt[SSE_EVENTS - 1]! - sseSentAt[0]! >= (SSE_EVENTS - 1) * SSE_SPACING_MS - 50)
      // not buffered: the first event is in hand long before the last one is sent...
      assert.ok(receivedAt[0]! < sseSentAt[SSE_EVENTS - 1]! - 600,
        `first event received ${receivedAt[0]! - sseSentAt[0]!} ms after it was sent; the last was sent ${sseSentAt[SSE_EVENTS - 1]! - sseSentAt[0]!} ms after the first`)
      // ...and every event arrives before the partner is three events further on
      for (let i = 0; i + 3 < SSE_EVENTS; i++) {
        assert.ok(receivedAt[i]! <= sseSentAt[i + 3]!, `event ${i} arrived ${receivedAt[i]! - sseSentAt[i]!} ms after it was sent`)
      }
    } finally {
      await client.close()
    }
    const event = await auditEvent(acme.keyId, '/sse')
    assert.equal(event.status, 200)
    assert.equal(event.outcome, 'forwarded')
  })

  it('a client that stops reading a large response is cut by the idle timeout; others are served meanwhile', { timeout: 15_000 }, async (t) => {
    const abandoned = upstreamAbandoned('/big', 8000)
    const conn = await openRawConnection(Number(new URL(rk.proxyUrl).port))
    // the reader stops as soon as it has the head; socket buffers fill, then nothing moves
    const stopReading = (): void => {
      if (parseHead(conn.received()) === null) return
      conn.socket.pause()
      conn.socket.off('data', stopReading)
    }
    conn.socket.on('data', stopReading)
    conn.socket.write(`GET /proxy/patient/big HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Relaykey: ${patient.key}\r\n\r\n`)
    for (let i = 0; i < 100 && parseHead(conn.received()) === null; i++) await sleep(20)
    const head = parseHead(conn.received())
    assert.equal(head?.status, 200)
    assert.equal(head.headers['content-length'], String(BIG_BYTES))
    for (let i = 0; i < 3; i++) await served(patient, 'patient')
    // RelayKey gives up on the stalled reader and lets go of the upstream (partner's request_ms
    // is 10 s and undici's body timeout does not run while paused: this is the idle timeout)
    const abandonedAfter = await abandoned
    assert.notEqual(abandonedAfter, null, 'the stalled reader still held its upstream response after 8 s')
    t.diagnostic(`upstream abandoned ${abandonedAfter} ms after the request; ${head.body.length} body bytes read before the reader stopped`)
    await served(patient, 'patient')
    // reading again, the client gets what was already in flight, then the close: the body is short
    conn.socket.resume()
    const closedAt = await closedWithin(conn, 5000)
    conn.destroy()
    assert.notEqual(closedAt, null, 'the stalled reader\'s connection did not end')
    const bodyBytes = parseHead(conn.received())!.body.length
    assert.ok(bodyBytes < BIG_BYTES, `the client received all ${bodyBytes} bytes: it was never cut off`)
    const event = await auditEvent(patient.keyId, '/big')
    assert.equal(event.status, 200)
    assert.ok(event.bytes_out < BIG_BYTES)
  })
})
