// REDIS_URL → an ioredis client: `redis://`/`rediss://` for one server, or
// `redis+cluster://host1:port,host2:port` for Redis Cluster.
import { Cluster, Redis } from 'ioredis'

export type RedisClient = Redis | Cluster

export interface RedisClientOptions {
  lazyConnect?: boolean
  /**
   * Data-plane clients: a command that has no answer within this many ms fails (the caller
   * answers 503 or fails open), and nothing queues while disconnected.
   */
  commandTimeoutMs?: number
}

export function createRedisClient (url: string, options: RedisClientOptions = {}): RedisClient {
  const dataPlane = options.commandTimeoutMs !== undefined
  const common = {
    lazyConnect: options.lazyConnect ?? false,
    maxRetriesPerRequest: dataPlane ? 0 : 1,
    ...(dataPlane ? { commandTimeout: options.commandTimeoutMs, enableOfflineQueue: false } : {}),
  }
  if (url.startsWith('redis+cluster://')) {
    const rest = url.slice('redis+cluster://'.length).replace(/\/.*$/, '')
    const auth = rest.includes('@') ? rest.slice(0, rest.lastIndexOf('@')) : ''
    const hosts = (auth === '' ? rest : rest.slice(auth.length + 1)).split(',').map((hostPort) => {
      const [host, port] = hostPort.split(':')
      return { host: host!, port: Number(port ?? 6379) }
    })
    const [username, password] = auth === '' ? [undefined, undefined] : auth.split(':')
    return new Cluster(hosts, {
      lazyConnect: common.lazyConnect,
      enableAutoPipelining: true,
      enableOfflineQueue: !dataPlane,
      redisOptions: { ...common, username: username || undefined, password: password === undefined ? undefined : decodeURIComponent(password) },
    })
  }
  return new Redis(url, { ...common, enableAutoPipelining: true })
}
