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
// process queues behind them for good. The watchdog closes a connection that has had output
// without any answer for `stallMs`; postgres.js then fails its queries with CONNECTION_CLOSED
// and opens a fresh connection for the next one.
import net from 'node:net'
import type { Logger } from 'pino'

/** the part of postgres.js's parsed options its `socket` hook receives that is used here */
interface SocketTarget {
  host: string[]
  port: number[]
  path?: string | false
}

/** what postgres.js's `socket` option takes */
export type PostgresSocketFactory = (target: SocketTarget) => net.Socket

export interface PostgresSocketOptions {
  /**
   * close a connection that has been waiting this long for any byte of an answer; null: never.
   * Not for COPY writers, whose server stays silent while it takes a long batch in.
   */
  stallMs: number | null
  /** told when the watchdog closes a connection (for the log) */
  onStall?: (stallMs: number) => void
}

/**
 * postgres.js's `socket` option (README, "Custom socket"). The socket is returned still
 * connecting, as postgres.js's own would be: writes wait in it until it connects, and a refused
 * or timed-out connection reaches postgres.js as the usual 'error' and 'close' (its
 * connect_timeout runs from here on), which is also what makes it try the next host — each call
 * takes the next one in turn.
 */
export function postgresSocket (options: PostgresSocketOptions): PostgresSocketFactory {
  let next = 0
  return (target) => {
    let socket: net.Socket
    if (typeof target.path === 'string' && target.path !== '') {
      socket = net.connect({ path: target.path })
    } else {
      const i = next++ % target.host.length
      socket = net.connect({ host: target.host[i], port: target.port[i] ?? target.port[0], noDelay: true })
    }
    if (options.stallMs !== null) watchForStalls(socket, options.stallMs, options.onStall)
    return socket
  }
}

/** the sockets of a client that serves queries (not COPY): RELAYKEY_PG_STALL_MS, stalls logged */
export function watchedPostgresSocket (stallMs: number | null, logger: Logger, client: string): PostgresSocketFactory {
  return postgresSocket({
    stallMs,
    onStall: (ms) => logger.warn({ client, stall_ms: ms }, 'PostgreSQL sent nothing back while a query waited: connection closed, the next query opens a fresh one'),
  })
}

/**
 * Polls the socket's byte counters, so it needs no listener on the socket: postgres.js removes
 * every listener when it wraps the socket in TLS, and the raw counters keep counting the
 * encrypted bytes. The connection is waiting while bytes have gone out since the last bytes came
 * in; an idle pooled connection has nothing unanswered, and more queries sent into a stalled one
 * do not restart the clock. The check runs four times per `stallMs`, so a stall is caught
 * between `stallMs` and 1.5 × `stallMs` after it started (the clock starts at the first
 * check that sees it waiting, up to a quarter late, never early). An answer that arrives in the same
 * tick as the next query is written counts for it too; that query is then watched from the
 * next write on.
 */
function watchForStalls (socket: net.Socket, stallMs: number, onStall: ((stallMs: number) => void) | undefined): void {
  let read = 0
  let writtenWhenLastRead = 0
  let waitingSince = -1
  const tick = setInterval(() => {
    if (socket.destroyed) {
      clearInterval(tick)
      return
    }
    if (socket.bytesRead !== read) {
      read = socket.bytesRead
      writtenWhenLastRead = socket.bytesWritten
      waitingSince = -1
      return
    }
    if (socket.bytesWritten <= writtenWhenLastRead) return
    const now = performance.now()
    // first seen waiting: the write went out within the last tick, so the clock may start up
    // to a tick late, never early
    if (waitingSince < 0) waitingSince = now
    if (now - waitingSince < stallMs) return
    clearInterval(tick)
    onStall?.(stallMs)
    // without an error: postgres.js then rejects every query sent on it (CONNECTION_CLOSED);
    // an 'error' first would strand a query routed here before the 'close'
    socket.destroy()
  }, Math.max(10, Math.floor(stallMs / 4)))
  tick.unref()
}
