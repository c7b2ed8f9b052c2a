// A TCP connection for postgres.js with Nagle's algorithm off. postgres.js leaves Node's default
// (Nagle on), so a short message written while earlier bytes await their ACK — CopyDone after a
// COPY's data, the query that follows — sits until the server's delayed ACK, 40 ms on Linux. On
// a sink writing a batch per round trip that was most of the time spent (~8k events/s at 500 a
// batch with Nagle, ~45k without).
import net from 'node:net'

/** the part of postgres.js's parsed options its `socket` hook receives that is used here */
interface SocketTarget {
  host: string[]
  port: number[]
  path?: string | false
}

/**
 * postgres.js's `socket` option (README, "Custom socket"). The socket is returned still
 * connecting, as postgres.js's own would be: writes wait in it until it connects, and a refused
 * or timed-out connection reaches postgres.js as the usual 'error' and 'close' (its
 * connect_timeout runs from here on), which is also what makes it try the next host — each call
 * takes the next one in turn.
 */
export function noDelaySocket (): (target: SocketTarget) => net.Socket {
  let next = 0
  return (target) => {
    if (typeof target.path === 'string' && target.path !== '') return net.connect({ path: target.path })
    const i = next++ % target.host.length
    return net.connect({ host: target.host[i], port: target.port[i] ?? target.port[0], noDelay: true })
  }
}
