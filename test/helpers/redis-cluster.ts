// A real three-master Redis Cluster on loopback for one test file: three redis-server nodes,
// joined by `redis-cli --cluster create`, ready once every node reports cluster_state:ok.
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { after, before } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseInfo, redisCommand } from './redis-command.js'
import { makeTempDir, PortTakenError, spawnRedis, type RedisProcess } from './redis-process.js'

export interface RedisClusterNode {
  host: string
  port: number
}

export interface RedisCluster {
  /** redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3, for createRedisClient() */
  readonly url: string
  readonly nodes: readonly RedisClusterNode[]
  /** ms from the call until the cluster was ready */
  readonly startupMs: number
  /** stops every node and removes the temp dir */
  stop (): Promise<void>
}

export interface RedisClusterOptions {
  /** give up after this long, across all attempts */
  timeoutMs?: number
}

const MASTERS = 3
const BUS_OFFSET = 10_000
// Client ports 16000–22767 put the bus ports (+10000) at 26000–32767: both below Linux's default
// ephemeral range (32768–60999), so no outgoing connection of a concurrent test can grab them.
const PORT_LOW = 16_000
const PORT_HIGH = 22_768
const ATTEMPTS = 3

export async function startRedisCluster (options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const started = Date.now()
  const deadline = started + (options.timeoutMs ?? 30_000)
  let lastError: unknown = null
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const dir = makeTempDir('relaykey-redis-cluster-')
    const procs: RedisProcess[] = []
    const stop = async (): Promise<void> => {
      await Promise.all(procs.map((p) => p.stop()))
      dir.remove()
    }
    try {
      const taken = new Set<number>()
      // allSettled: nodes that did start must be in `procs` for stop(), even when another failed
      const results = await Promise.allSettled(Array.from({ length: MASTERS }, () => startNode(dir.path, taken, deadline)))
      for (const r of results) if (r.status === 'fulfilled') procs.push(r.value)
      for (const r of results) if (r.status === 'rejected') throw r.reason
      const addresses = procs.map((p) => `127.0.0.1:${p.port}`)
      await createCluster(procs, deadline)
      await waitForClusterOk(procs, deadline)
      return {
        url: `redis+cluster://${addresses.join(',')}`,
        nodes: procs.map((p) => ({ host: '127.0.0.1', port: p.port })),
        startupMs: Date.now() - started,
        stop,
      }
    } catch (err) {
      lastError = err
      await stop()
      if (Date.now() > deadline) break
    }
  }
  throw new Error(`Redis Cluster did not start after ${ATTEMPTS} attempts`, { cause: lastError })
}

/** one empty cluster-enabled node; a port taken before redis bound it is swapped for another */
async function startNode (dir: string, taken: Set<number>, deadline: number): Promise<RedisProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = await clusterPort(taken)
    try {
      return await spawnRedis({
        port,
        dir,
        timeoutMs: Math.max(1000, deadline - Date.now()),
        args: [
          '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
          '--cluster-node-timeout', '2000',
        ],
      })
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt === 10) throw err
    }
  }
}

/** a random port whose bus port is free too, distinct from the other nodes' */
async function clusterPort (taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW))
    if (taken.has(port)) continue
    if (await canListen(port) && await canListen(port + BUS_OFFSET)) {
      taken.add(port)
      return port
    }
  }
  throw new Error(`no free port pair (P, P+${BUS_OFFSET}) found in ${PORT_LOW}–${PORT_HIGH}`)
}

function canListen (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/**
 * `redis-cli --cluster create`, sped up. It MEETs every node with the first only and leaves the
 * rest to gossip, then checks for agreement once a second: ready in 2 s, 3 s, now and then 5 s.
 * Once its MEET phase has begun (slots and config epochs are set by then), every node meets
 * every other directly, so it agrees at its first check. Masters still turn writable (state ok)
 * only 2 s after their start, which makes ~2 s the floor.
 */
async function createCluster (procs: readonly RedisProcess[], deadline: number): Promise<void> {
  const args = ['--cluster', 'create', ...procs.map((p) => `127.0.0.1:${p.port}`), '--cluster-replicas', '0', '--cluster-yes']
  let done = false
  const created = new Promise<void>((resolve, reject) => {
    execFile('redis-cli', args, { timeout: Math.max(1000, deadline - Date.now()) }, (err, stdout, stderr) => {
      done = true
      if (err === null) resolve()
      else reject(new Error(`redis-cli --cluster create failed: ${err.message}\n${stdout}${stderr}`))
    })
  })
  await Promise.all([created, introduceAll(procs, () => done)])
}

async function introduceAll (procs: readonly RedisProcess[], done: () => boolean): Promise<void> {
  while (!done()) {
    const known = await Promise.all(procs.map((p) => clusterInfo(p.port).then((i) => Number(i.get('cluster_known_nodes') ?? 1))))
    if (known.some((n) => n > 1)) break
    await sleep(10)
  }
  if (done()) return
  await Promise.all(procs.flatMap((from) => procs.filter((to) => to !== from).map((to) =>
    redisCommand(from.port, ['CLUSTER', 'MEET', '127.0.0.1', String(to.port)]).catch(() => null))))
}

async function clusterInfo (port: number): Promise<Map<string, string>> {
  try {
    return parseInfo(String(await redisCommand(port, ['CLUSTER', 'INFO'], { timeoutMs: 1000 })))
  } catch {
    return new Map()
  }
}

async function waitForClusterOk (procs: readonly RedisProcess[], deadline: number): Promise<void> {
  let states: string[] = []
  while (Date.now() < deadline) {
    states = await Promise.all(procs.map(async (p) => {
      if (!p.running()) throw new Error(`cluster node ${p.port} exited:\n${p.log()}`)
      return (await clusterInfo(p.port)).get('cluster_state') ?? 'no answer'
    }))
    if (states.every((s) => s === 'ok')) return
    await sleep(25)
  }
  throw new Error(`cluster not ok in time: ${procs.map((p, i) => `${p.port}=${states[i]}`).join(' ')}`)
}

/** deletes every key under `prefix:` on every master; SCAN is per node in a cluster */
export async function deleteClusterPrefix (cluster: RedisCluster, prefix: string): Promise<void> {
  for (const { port } of cluster.nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await redisCommand(port, ['SCAN', cursor, 'MATCH', `${prefix}:*`, 'COUNT', '1000']) as [string, string[]]
      for (const key of keys) await redisCommand(port, ['DEL', key])
      cursor = next
    } while (cursor !== '0')
  }
}

/**
 * One cluster for the tests of the current file or describe block: started before them (it can
 * take a while), stopped after. Returns a getter, since the cluster exists only once they run.
 */
export function useRedisCluster (): () => RedisCluster {
  let cluster: RedisCluster | undefined
  before(async () => {
    cluster = await startRedisCluster()
  }, { timeout: 60_000 })
  after(async () => {
    await cluster?.stop()
  })
  return () => cluster!
}
