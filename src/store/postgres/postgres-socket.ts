// The TCP connections RelayKey's postgres.js clients use: Nagle's algorithm off, and optionally
// a stall watchdog.
//
// Nagle: postgres.js leaves Node's default (Nagle on), so a short message written while earlier
// bytes await their ACK — CopyDone after a COPY's data, the query that follows — sits until the
// server's delayed ACK, 40 ms on Linux. On a sink writing a batch per round trip that was most
// of the time spent (~8k events/s at 500 a batch with Nagle, ~45k without).
//
// Stalls: postgres.js has no query timeout. A connection whose server stops answering without
// closing anything (a black-holed route, a hung host) keeps its query waiting for as long as
// TCP lets it, and with it the pool slot: a handful of such stalls and every later query of the
// process queues behind them for good. The watchdog closes a connection that has written
// something and heard nothing back for `stallMs`; postgres.js then fails the query (a
// connection error) and opens a fresh connection for the next one.
import net from 'node:net'

/** the part of postgres.js's parsed options its `socket` hook receives that is used here */
interface SocketTarget {
  host: string[]
  port: number[]
  path?: string | false
}

export interface PostgresSocketOptions {
  /**
   * close a connection that has been waiting this long for any byte of an answer; null: never.
   * Not for COPY writers, whose server stays silent while it takes a long batch in.
   */
  stallMs: number | null
}

export class ConnectionStalledError extends Error {
  override readonly name = 'ConnectionStalledError'
  readonly code = 'CONNECTION_STALLED'
}

/**
 * postgres.js's `socket` option (README, "Custom socket"). The socket is returned still
 * connecting, as postgres.js's own would be: writes wait in it until it connects, and a refused
 * or timed-out connection reaches postgres.js as the usual 'error' and 'close' (its
 * connect_timeout runs from here on), which is also what makes it try the next host — each call
 * takes the next one in turn.
 */
export function postgresSocket (options: PostgresSocketOptions): (target: SocketTarget) => net.Socket {
  let next = 0
  return (target) => {
    let socket: net.Socket
    if (typeof target.path === 'string' && target.path !== '') {
      socket = net.connect({ path: target.path })
    } else {
      const i = next++ % target.host.length
      socket = net.connect({ host: target.host[i], port: target.port[i] ?? target.port[0], noDelay: true })
    }
    if (options.stallMs !== null) watchForStalls(socket, options.stallMs)
    return socket
  }
}

/**
 * Node's socket timeout fires after `stallMs` without traffic either way. An idle pooled
 * connection is quiet too, so it only counts as stalled when bytes went out after the last
 * byte came in: a query (or the start-up) is waiting for an answer.
 */
function watchForStalls (socket: net.Socket, stallMs: number): void {
  let writtenAtLastAnswer = 0
  socket.on('data', () => { writtenAtLastAnswer = socket.bytesWritten })
  socket.setTimeout(stallMs, () => {
    if (socket.bytesWritten > writtenAtLastAnswer) {
      socket.destroy(new ConnectionStalledError(`PostgreSQL sent nothing for ${stallMs} ms while a query waited; connection closed`))
    }
  })
}
