// A throwaway redis-server for one test file, on a free loopback port and a temp dir of its own
// (never the shared server on 6379). It can be paused, stopped, killed and started again on the
// same port, coming back empty as a restarted cache does.
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.js'
import { redisCommand } from './redis-command.js'
import { makeTempDir, PortTakenError, spawnRedis, type RedisProcess } from './redis-process.js'

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  readonly url: string
  readonly port: number
  /** CLIENT PAUSE <ms> ALL: resolves once the pause is in force; every client's commands wait it out */
  pause (ms: number): Promise<void>
  /** SIGTERM and wait; also the cleanup for `after` hooks (removes the temp dir) */
  stop (): Promise<void>
  /** starts it again on the same port, if it is not running */
  start (): Promise<void>
  /** SIGKILL and wait, as a crash */
  kill (): Promise<void>
}

export interface RedisServerOptions {
  /** further redis-server arguments, e.g. ['--maxmemory', '1mb'] */
  args?: readonly string[]
}

export async function startRedisServer (options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = makeTempDir('relaykey-redis-')
  const args = options.args ?? []
  let proc: RedisProcess | null = null
  try {
    for (let attempt = 1; proc === null; attempt++) {
      const port = await freePort()
      try {
        proc = await spawnRedis({ port, dir: dir.path, args })
      } catch (err) {
        // freePort() closed its probe before redis bound: someone may have taken the port between
        if (!(err instanceof PortTakenError) || attempt === 5) throw err
      }
    }
  } catch (err) {
    dir.remove()
    throw err
  }
  const port = proc.port

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async pause (ms) {
      await redisCommand(port, ['CLIENT', 'PAUSE', String(ms), 'ALL'])
    },
    async stop () {
      await proc?.stop()
      proc = null
      dir.remove()
    },
    async start () {
      if (proc?.running() === true) return
      proc = null
      // The old listening socket can take a moment to be released by the kernel.
      for (let attempt = 1; proc === null; attempt++) {
        try {
          proc = await spawnRedis({ port, dir: dir.path, args })
        } catch (err) {
          if (!(err instanceof PortTakenError) || attempt === 20) throw err
          await sleep(100)
        }
      }
    },
    async kill () {
      await proc?.kill()
    },
  }
}
