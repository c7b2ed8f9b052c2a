// A TCP connection for postgres.js with Nagle's algorithm off. postgres.js leaves Node's default
// (Nagle on), so a short message written while earlier bytes await their ACK — CopyDone after a
// COPY's data, the query that follows — sits until the server's delayed ACK, 40 ms on Linux. On
// a sink writing a batch per round trip that was most of the time spent (~8k events/s at 500 a
// batch with Nagle, ~45k without).
import net from 'node:net'
import { once } from 'node:events'

/** the part of postgres.js's parsed options its `socket` hook receives that is used here */
interface SocketTarget {
  host: string[]
  port: number[]
  path?: string | false
  connect_timeout?: number
}

/**
 * postgres.js's `socket` option (README, "Custom socket"): connects, then hands over the socket;
 * postgres.js does TLS and the startup on top. Several hosts are tried in turn, one per call, as
 * postgres.js itself does on reconnect.
 */
export function noDelaySocket (): (target: SocketTarget) => Promise<net.Socket> {
  let next = 0
  return async (target) => {
    const i = next++ % target.host.length
    const socket = typeof target.path === 'string' && target.path !== ''
      ? net.connect({ path: target.path })
      : net.connect({ host: target.host[i], port: target.port[i] ?? target.port[0], noDelay: true })
    // postgres.js starts its own connect timer only once it has the socket
    const timeoutMs = (target.connect_timeout ?? 30) * 1000
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`connect timeout after ${timeoutMs} ms`)))
    try {
      await once(socket, 'connect')
    } catch (err) {
      socket.destroy()
      throw err
    }
    socket.setTimeout(0)
    return socket
  }
}
