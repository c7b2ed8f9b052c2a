// The baseline every governed scenario is compared with: a pass-through that does the least a
// correct HTTP proxy must do. Same process model as RelayKey (a node:cluster of BENCH_WORKERS
// workers on one port, with the same node flags) and the same undici Pool settings and
// dispatch API, but no routing, no key, no policy, no credential and no request id: it drops
// hop-by-hop headers and Host, and streams both ways. "Governed / bare" is then what governance costs, not what proxying costs.
//
// Started by bench/lib/bare-proxy.ts with BENCH_UPSTREAM_URL and BENCH_WORKERS; the primary
// reports the shared port over IPC once every worker listens.
import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Pool, type Dispatcher } from 'undici'
import { workerExecArgv } from '../src/process/worker-node-flags.js'

/** RFC 9110 §7.6.1 plus the legacy names; a Connection header's own tokens are not honoured */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
])

const kForward = Symbol('bench.forward')
type ForwardResponse = ServerResponse & { [kForward]?: Forward }

/**
 * HOT PATH: the undici dispatch handler for one request (legacy raw-header API, as RelayKey's
 * ProxyExchange uses). Listeners are module-level functions that find the handler on the
 * response, so the baseline allocates no closures per request either: a baseline with
 * avoidable overhead would flatter the governed path.
 */
class Forward implements Dispatcher.DispatchHandler {
  readonly #res: ForwardResponse
  #abort: ((err?: Error) => void) | null = null
  #resume: (() => void) | null = null
  #done = false

  constructor (res: ServerResponse) {
    this.#res = res
    this.#res[kForward] = this
    res.on('close', onResponseClose)
  }

  onConnect (abort: (err?: Error) => void): void {
    this.#abort = abort
  }

  onHeaders (statusCode: number, raw: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true
    this.#resume = resume
    const headers: string[] = []
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1')
      if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push(name, raw[i + 1]!.toString('latin1'))
    }
    this.#res.writeHead(statusCode, headers)
    return true
  }

  onData (chunk: Buffer): boolean {
    if (this.#res.write(chunk)) return true
    this.#res.once('drain', onResponseDrain)
    return false
  }

  onComplete (): void {
    this.#done = true
    this.#res.end()
  }

  onError (err: Error): void {
    if (this.#done) return
    this.#done = true
    const res = this.#res
    if (res.headersSent || res.destroyed) {
      res.destroy()
      return
    }
    const body = JSON.stringify({ error: err.message })
    res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }

  resume (): void {
    this.#resume?.()
  }

  /** the response finished, or the client left before the upstream did */
  clientClosed (): void {
    if (this.#done) return
    this.#done = true
    this.#abort?.()
  }
}

function onResponseDrain (this: ForwardResponse): void {
  this[kForward]?.resume()
}

function onResponseClose (this: ForwardResponse): void {
  this[kForward]?.clientClosed()
}

function forwardRequest (pool: Pool, req: IncomingMessage, res: ServerResponse): void {
  const raw = req.rawHeaders
  const headers: string[] = []
  let hasBody = false
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase()
    if (lower === 'host' || HOP_BY_HOP.has(lower)) {
      if (lower === 'transfer-encoding') hasBody = true
      continue
    }
    if (lower === 'content-length' && raw[i + 1] !== '0') hasBody = true
    headers.push(raw[i]!, raw[i + 1]!)
  }
  pool.dispatch({
    method: req.method as Dispatcher.HttpMethod,
    path: req.url!,
    headers,
    body: hasBody ? req : null,
  }, new Forward(res))
}

function runWorker (upstream: string): void {
  // the settings src/http/upstream-pools.ts uses, so both sides hold the same connections
  const pool = new Pool(upstream, {
    connections: 256,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
  })
  // the same server timeouts as src/gateway/gateway-server.ts
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 300_000, keepAliveTimeout: 65_000 }, (req, res) => {
    forwardRequest(pool, req, res)
  })
  const stop = (): void => {
    server.close()
    server.closeAllConnections()
    pool.destroy().finally(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  // Ctrl-C reaches the whole process group; the primary stops us in order
  process.on('SIGINT', () => {})
  process.on('disconnect', stop)
  server.listen(0, '127.0.0.1')
}

async function runPrimary (workerCount: number): Promise<void> {
  // RelayKey's workers' node flags: a difference in how V8 runs would be measured as governance
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv) })
  const workers: Worker[] = []
  for (let i = 0; i < workerCount; i++) workers.push(cluster.fork())
  const addresses = await Promise.all(workers.map(async (w) => (await once(w, 'listening'))[0] as { port: number }))
  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    const exits = workers.filter((w) => w.process.exitCode === null).map((w) => once(w, 'exit'))
    for (const w of workers) w.process.kill('SIGTERM')
    await Promise.all(exits)
    process.exit(0)
  }
  for (const w of workers) {
    w.on('exit', (code, signal) => {
      if (stopping) return
      console.error(`bare-proxy: worker ${w.process.pid} died (code ${code}, signal ${signal})`)
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => void stop())
  process.on('SIGINT', () => void stop())
  process.on('disconnect', () => void stop())
  process.send!({ type: 'ready', port: addresses[0]!.port })
}

const upstream = process.env.BENCH_UPSTREAM_URL
const workerCount = Number(process.env.BENCH_WORKERS ?? '1')
if (upstream === undefined || !Number.isInteger(workerCount) || workerCount < 1) {
  console.error('bare-proxy: needs BENCH_UPSTREAM_URL and BENCH_WORKERS (a whole number ≥ 1)')
  process.exit(2)
} else if (cluster.isPrimary) {
  if (process.send === undefined) {
    console.error('bare-proxy: start it through bench/lib/bare-proxy.ts (it needs an IPC channel)')
    process.exit(2)
  }
  await runPrimary(workerCount)
} else {
  runWorker(upstream)
}
