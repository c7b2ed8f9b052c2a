// Redis Cluster's connection string, which names several seed hosts and so is no WHATWG URL.
const CLUSTER_SCHEME = 'redis+cluster://'

export interface ClusterUrl {
  /** the seed nodes; the client discovers the rest of the cluster from any of them */
  hosts: Array<{ host: string; port: number }>
  username: string | undefined
  password: string | undefined
}

/**
 * `redis+cluster://[user:password@]host1:port,host2:port[/…]`: several hosts, which WHATWG URL
 * parsing refuses, so it is taken apart here (and checked at start-up by the config).
 * Throws an Error saying what is wrong.
 */
export function parseClusterUrl (url: string): ClusterUrl {
  if (!isClusterUrl(url)) throw new Error(`must start with ${CLUSTER_SCHEME}`)
  const rest = url.slice(CLUSTER_SCHEME.length)
  // the credentials may hold any character, '/' included: split them off first, and never
  // quote them in an error
  const at = rest.lastIndexOf('@')
  const auth = at === -1 ? '' : rest.slice(0, at)
  const hostList = rest.slice(at + 1).replace(/[/?].*$/, '')
  const hosts = hostList.split(',').map((hostPort) => {
    const colon = hostPort.lastIndexOf(':')
    let host = colon === -1 ? hostPort : hostPort.slice(0, colon)
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1) // IPv6 literal
    const port = colon === -1 ? '6379' : hostPort.slice(colon + 1)
    if (!/^[A-Za-z0-9._:-]+$/.test(host)) throw new Error(`names a host that is not one: '${hostPort}'`)
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new Error(`names a port that is not one: '${hostPort}'`)
    return { host, port: Number(port) }
  })
  const colon = auth.indexOf(':')
  const username = colon === -1 ? auth : auth.slice(0, colon)
  const password = colon === -1 ? undefined : decodeURIComponent(auth.slice(colon + 1))
  return { hosts, username: username === '' ? undefined : decodeURIComponent(username), password }
}

/** the scheme in any letter case, as URL parsing reads it */
export function isClusterUrl (url: string): boolean {
  return url.length >= CLUSTER_SCHEME.length && url.slice(0, CLUSTER_SCHEME.length).toLowerCase() === CLUSTER_SCHEME
}
