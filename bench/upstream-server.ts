// The stand-in partner API for the throughput benchmarks: a plain node:http server answering
// every request with the same small JSON body (about 100 bytes) over keep-alive. It runs in its
// own process, started by bench/lib/upstream.ts, and reports its port over IPC.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { UPSTREAM_BODY } from './lib/upstream-body.js'

const BODY = Buffer.from(UPSTREAM_BODY)
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

function onRequest (req: IncomingMessage, res: ServerResponse): void {
  // HOT PATH: the answer never depends on the request; a body, if any, is read and dropped.
  req.resume()
  res.writeHead(200, HEADERS)
  res.end(BODY)
}

if (process.send === undefined) {
  console.error('upstream-server: start it through bench/lib/upstream.ts (it needs an IPC channel)')
  process.exit(2)
} else {
  // idle connections between runs must survive, so the proxies' pools never see a reset
  const server = createServer({ keepAliveTimeout: 120_000 }, onRequest)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number }
    process.send!({ type: 'ready', port })
  })
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    server.close(() => process.exit(0))
    server.closeAllConnections()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // the benchmark went away without stopping us
  process.on('disconnect', stop)
}
