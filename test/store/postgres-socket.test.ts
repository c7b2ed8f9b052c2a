// The stall watchdog on RelayKey's PostgreSQL connections, over real sockets: a connection that
// has sent something and heard nothing back for stallMs is closed, whatever else is written
// into it meanwhile and however long it sat idle before; an idle connection is never closed;
// and it works the same once the socket is wrapped in TLS (postgres.js removes every listener
// of the raw socket when it does that).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import tls from 'node:tls'
import { postgresSocket } from '../../src/store/postgres/postgres-socket.js'

const STALL_MS = 300
/** the watchdog looks four times per STALL_MS; allow for a loaded machine on top */
const LATEST_MS = STALL_MS * 1.5 + 400

type Answer = 'answers' | 'silent'

async function listen (server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/** a server that answers every chunk with one byte, or reads and never answers */
function plainServer (answer: Answer): Server {
  return createServer((s) => {
    s.on('error', () => {})
    s.on('data', () => { if (answer === 'answers') s.write('.') })
  })
}

function tlsServer (answer: Answer, key: Buffer, cert: Buffer): Server {
  return tls.createServer({ key, cert }, (s) => {
    s.on('error', () => {})
    s.on('data', () => { if (answer === 'answers') s.write('.') })
  })
}

function connect (port: number, stalls: number[]): Socket {
  const socket = postgresSocket({ stallMs: STALL_MS, onStall: (ms) => stalls.push(ms) })({ host: ['127.0.0.1'], port: [port] })
  socket.on('error', () => {})
  return socket
}

/** ms until `socket` closes, or null if it is still open after `withinMs` */
async function closesWithin (socket: tls.TLSSocket | Socket, withinMs: number): Promise<number | null> {
  const started = performance.now()
  if (socket.destroyed) return 0
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - started)))
  return await Promise.race([closed, sleep(withinMs, null)])
}

describe('the PostgreSQL connection stall watchdog', () => {
  let dir: string
  let key: Buffer
  let cert: Buffer
  const servers: Server[] = []
  const sockets: Array<Socket | tls.TLSSocket> = []

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'relaykey-tls-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    key = readFileSync(join(dir, 'key.pem'))
    cert = readFileSync(join(dir, 'cert.pem'))
  })

  after(async () => {
    for (const s of sockets) s.destroy()
    for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()))
    rmSync(dir, { recursive: true, force: true })
  })

  async function start (server: Server): Promise<number> {
    servers.push(server)
    return await listen(server)
  }

  it('leaves an idle connection alone, however long it idles', async () => {
    const stalls: number[] = []
    const socket = connect(await start(plainServer('answers')), stalls)
    sockets.push(socket)
    socket.write('q')
    await new Promise((resolve) => socket.once('data', resolve))
    assert.equal(await closesWithin(socket, STALL_MS * 4), null)
    assert.deepEqual(stalls, [])
  })

  it('closes a connection whose query got no answer, after an idle spell and despite more queries sent into it', async () => {
    const stalls: number[] = []
    const port = await start(plainServer('silent'))
    const socket = connect(port, stalls)
    sockets.push(socket)
    await sleep(STALL_MS * 2) // idle (connected, nothing sent) for longer than the bound first
    assert.equal(socket.destroyed, false)
    const sent = performance.now()
    socket.write('q')
    // a query every fifth of the bound, as postgres.js pipelines onto a busy connection
    const more = setInterval(() => { if (!socket.destroyed) socket.write('q') }, STALL_MS / 5)
    const closedAfter = await closesWithin(socket, LATEST_MS)
    clearInterval(more)
    assert.notEqual(closedAfter, null, 'still open')
    const sinceSent = performance.now() - sent
    assert.ok(sinceSent >= STALL_MS, `closed ${Math.round(sinceSent)} ms after the query, before the bound`)
    assert.deepEqual(stalls, [STALL_MS])
  })

  it('does the same inside TLS, where the raw socket has lost every listener', async () => {
    for (const answer of ['answers', 'silent'] as const) {
      const stalls: number[] = []
      const raw = connect(await start(tlsServer(answer, key, cert)), stalls)
      raw.removeAllListeners() // what postgres.js does before it wraps the socket
      const wrapped = tls.connect({ socket: raw, rejectUnauthorized: false })
      wrapped.on('error', () => {})
      sockets.push(wrapped)
      await new Promise((resolve) => wrapped.once('secureConnect', resolve))
      // TLS 1.3 servers send session tickets after the handshake; a query goes out later
      // (postgres.js's connect_timeout bounds the start-up itself)
      await sleep(STALL_MS)
      wrapped.write('q')
      if (answer === 'answers') {
        await new Promise((resolve) => wrapped.once('data', resolve))
        assert.equal(await closesWithin(wrapped, STALL_MS * 4), null, 'an answered TLS connection stays')
        assert.deepEqual(stalls, [])
      } else {
        assert.notEqual(await closesWithin(wrapped, LATEST_MS), null, 'a silent TLS connection is closed')
        assert.deepEqual(stalls, [STALL_MS])
      }
    }
  })
})
