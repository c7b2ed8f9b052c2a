// A TCP proxy for tests that puts faults between a client and a server (PostgreSQL, Redis):
// pass through, add latency to every chunk in both directions, black-hole (accept and never
// forward; a connection that lost data to it stays silent for good), or reset every open
// connection.
//
//   client ──► [ listen 127.0.0.1:port ] ──► per direction: a FIFO of { chunk, due } ──► target
//
// Each direction's chunks leave in arrival order, each no earlier than `latency` after it
// arrived; lowering the latency never lets a later chunk overtake an earlier one.
import { createServer, connect, type Server, type Socket } from 'node:net'

export type FaultMode = 'pass' | 'blackhole'

interface Pending {
  chunk: Buffer
  due: number
}

/**
 * A connection's fate: once the black hole has swallowed a chunk of it, it carries nothing
 * more in either direction, even after pass() — as when a firewall or NAT has lost the flow's
 * state. A stream with a hole in it could only deliver garbage, which TCP never does.
 */
class Flow {
  severed = false
}

/** one direction of one connection */
class DelayedPipe {
  readonly #to: Socket
  readonly #proxy: TcpFaultProxy
  readonly #flow: Flow
  readonly #queue: Pending[]
  #timer: NodeJS.Timeout | null

  constructor (to: Socket, proxy: TcpFaultProxy, flow: Flow) {
    this.#to = to
    this.#proxy = proxy
    this.#flow = flow
    this.#queue = []
    this.#timer = null
  }

  push (chunk: Buffer): void {
    if (this.#proxy.mode === 'blackhole') this.#flow.severed = true
    if (this.#flow.severed) return
    this.#queue.push({ chunk, due: Date.now() + this.#proxy.latencyMs })
    this.#drain()
  }

  stop (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#queue.length = 0
  }

  #drain (): void {
    if (this.#timer !== null) return
    const now = Date.now()
    while (this.#queue.length > 0 && this.#queue[0]!.due <= now) {
      const { chunk } = this.#queue.shift()!
      if (!this.#to.destroyed) this.#to.write(chunk)
    }
    if (this.#queue.length > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = null
        this.#drain()
      }, this.#queue[0]!.due - now)
    }
  }
}

export class TcpFaultProxy {
  readonly #server: Server
  readonly #target: { host: string; port: number }
  readonly #sockets: Set<Socket>
  mode: FaultMode
  latencyMs: number
  #port: number

  private constructor (target: { host: string; port: number }) {
    this.#target = target
    this.#sockets = new Set()
    this.mode = 'pass'
    this.latencyMs = 0
    this.#port = 0
    this.#server = createServer((client) => this.#accept(client))
  }

  static async start (target: { host?: string; port: number }): Promise<TcpFaultProxy> {
    const proxy = new TcpFaultProxy({ host: target.host ?? '127.0.0.1', port: target.port })
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve))
    proxy.#port = (proxy.#server.address() as { port: number }).port
    return proxy
  }

  get port (): number {
    return this.#port
  }

  /** open client and target sockets */
  get connections (): number {
    return this.#sockets.size
  }

  pass (): void {
    this.mode = 'pass'
    this.latencyMs = 0
  }

  /** every chunk from now on, in both directions, waits this long */
  setLatency (ms: number): void {
    this.mode = 'pass'
    this.latencyMs = ms
  }

  /**
   * new connections are accepted and never connected onward; open ones stop carrying data, and
   * one that loses a chunk to it stays silent after pass() (new connections then work again)
   */
  blackhole (): void {
    this.mode = 'blackhole'
  }

  /** ends every open connection with a TCP RST, as a crashed peer or a middlebox would */
  resetAll (): void {
    for (const socket of this.#sockets) socket.resetAndDestroy()
    this.#sockets.clear()
  }

  async close (): Promise<void> {
    this.resetAll()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #track (socket: Socket): void {
    this.#sockets.add(socket)
    socket.on('close', () => this.#sockets.delete(socket))
    // a reset from the other side is the point of some tests, not an error
    socket.on('error', () => {})
  }

  #accept (client: Socket): void {
    this.#track(client)
    if (this.mode === 'blackhole') {
      client.resume()
      return
    }
    const upstream = connect(this.#target.port, this.#target.host)
    this.#track(upstream)
    const flow = new Flow()
    const toUpstream = new DelayedPipe(upstream, this, flow)
    const toClient = new DelayedPipe(client, this, flow)
    client.on('data', (chunk: Buffer) => toUpstream.push(chunk))
    upstream.on('data', (chunk: Buffer) => toClient.push(chunk))
    const teardown = (): void => {
      toUpstream.stop()
      toClient.stop()
      client.destroy()
      upstream.destroy()
    }
    client.on('close', teardown)
    upstream.on('close', teardown)
  }
}
