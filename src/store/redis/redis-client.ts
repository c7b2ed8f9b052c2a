// REDIS_URL → an ioredis client: `redis://`/`rediss://` for one server, or
// `redis+cluster://host1:port,host2:port` for Redis Cluster.
import { Cluster, Redis } from 'ioredis'

export type RedisClient = Redis | Cluster

export function createRedisClient (url: string, options: { lazyConnect?: boolean } = {}): RedisClient {
  if (url.startsWith('redis+cluster://')) {
    const rest = url.slice('redis+cluster://'.length).replace(/\/.*$/, '')
    const auth = rest.includes('@') ? rest.slice(0, rest.lastIndexOf('@')) : ''
    const hosts = (auth === '' ? rest : rest.slice(auth.length + 1)).split(',').map((hostPort) => {
      const [host, port] = hostPort.split(':')
      return { host: host!, port: Number(port ?? 6379) }
    })
    const [username, password] = auth === '' ? [undefined, undefined] : auth.split(':')
    return new Cluster(hosts, {
      lazyConnect: options.lazyConnect ?? false,
      redisOptions: { username: username || undefined, password: password === undefined ? undefined : decodeURIComponent(password), maxRetriesPerRequest: 1 },
    })
  }
  return new Redis(url, { lazyConnect: options.lazyConnect ?? false, maxRetriesPerRequest: 1 })
}
