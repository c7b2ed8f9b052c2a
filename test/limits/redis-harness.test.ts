// The Redis harnesses the limits tests stand on: a throwaway redis-server that can be paused,
// stopped and restarted, a real three-master Redis Cluster that RelayKey's own client can use,
// and neither outliving the test process that started it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { createRedisClient, type RedisClient } from '../../src/store/redis/redis-client.js'
import { parseInfo, redisCommand, type RespValue } from '../helpers/redis-command.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

const SERVER_MODULE = new URL('../helpers/redis-server.js', import.meta.url).href

async function pidOf (port: number): Promise<number> {
  return Number(parseInfo(String(await redisCommand(port, ['INFO', 'server']))).get('process_id'))
}

/** gone, or a zombie waiting for a reaper */
function processGone (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    return true
  }
}

async function eventually (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${timeoutMs} ms`)
    await sleep(25)
  }
}

/** how a connection to `port` ends: 'ECONNREFUSED' once nothing listens there */
async function connectOutcome (port: number): Promise<string> {
  try {
    return `answered ${String(await redisCommand(port, ['PING'], { timeoutMs: 1000 }))}`
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
}

/**
 * Starts a redis-server from a separate Node process and reads its port, pid and dir; then ends
 * that process the way `how` says: an uncaught exception, or SIGKILL.
 */
async function serverOfDoomedProcess (how: 'throw' | 'sigkill'): Promise<{ port: number; pid: number; dir: string }> {
  // the child crashes when told to, so the server is inspected while it surely runs
  const code = `
    import { startRedisServer } from ${JSON.stringify(SERVER_MODULE)}
    const server = await startRedisServer()
    process.stdout.write(server.port + '\\n')
    process.stdin.once('data', () => { throw new Error('test crashed') })
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'ignore'] })
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('\n')) resolve(Number(out.trim()))
    })
    child.once('exit', (code) => { if (!out.includes('\n')) reject(new Error(`child exited with ${code} before starting redis`)) })
  })
  const pid = await pidOf(port)
  const [, dir] = await redisCommand(port, ['CONFIG', 'GET', 'dir']) as [string, string]
  if (how === 'sigkill') child.kill('SIGKILL')
  else child.stdin.end('crash\n')
  return { port, pid, dir }
}

describe('throwaway redis-server', () => {
  let server: RedisServer
  let client: Redis

  before(async () => {
    server = await startRedisServer()
    client = createRedisClient(server.url) as Redis
  })

  after(async () => {
    client?.disconnect()
    await server?.stop()
  })

  it('answers on a loopback port of its own, not the shared 6379', async () => {
    assert.notEqual(server.port, 6379)
    assert.equal(server.url, `redis://127.0.0.1:${server.port}`)
    assert.equal(await redisCommand(server.port, ['PING']), 'PONG')
    await client.set('harness:hello', 'world')
    assert.equal(await client.get('harness:hello'), 'world')
    const config = await redisCommand(server.port, ['CONFIG', 'GET', 'save']) as RespValue[]
    assert.deepEqual(config, ['save', ''])
  })

  it('pause(ms) makes a command wait for about the pause', async () => {
    await client.ping()
    await server.pause(400)
    const started = performance.now()
    assert.equal(await client.get('harness:hello'), 'world')
    const waited = performance.now() - started
    assert.ok(waited >= 350, `waited ${waited.toFixed(0)} ms`)
    assert.ok(waited < 2400, `waited ${waited.toFixed(0)} ms`)
  })

  it('stop() refuses connections; start() comes back on the same port, empty', async () => {
    await redisCommand(server.port, ['SET', 'harness:restart', '1'])
    const pid = await pidOf(server.port)
    await server.stop()
    assert.ok(processGone(pid), `redis ${pid} still running`)
    assert.equal(await connectOutcome(server.port), 'ECONNREFUSED')
    await server.start()
    assert.equal(await redisCommand(server.port, ['PING']), 'PONG')
    assert.notEqual(await pidOf(server.port), pid)
    assert.equal(await redisCommand(server.port, ['GET', 'harness:restart']), null)
  })

  it('kill() ends it at once; start() brings it back', async () => {
    const pid = await pidOf(server.port)
    await server.kill()
    assert.ok(processGone(pid), `redis ${pid} still running`)
    assert.equal(await connectOutcome(server.port), 'ECONNREFUSED')
    await server.start()
    assert.equal(await redisCommand(server.port, ['PING']), 'PONG')
    // the library client reconnects by itself
    await eventually('the client reconnected', async () => (await client.ping().catch(() => '')) === 'PONG')
  })

  it('does not outlive a test process that crashes with an uncaught exception', async () => {
    const { port, pid, dir } = await serverOfDoomedProcess('throw')
    await eventually(`redis ${pid} ended`, () => processGone(pid))
    // a zombie leader can still hold the listening socket while its other threads exit
    await eventually(`port ${port} refused connections`, async () => await connectOutcome(port) === 'ECONNREFUSED')
    // the exit hook removed its temp dir too
    await eventually(`${dir} removed`, () => !existsSync(dir))
  })

  it('does not outlive a test process that is SIGKILLed', async (t) => {
    // setpriv (util-linux, on every Debian machine) is what ties the server's life to ours
    assert.equal(spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true']).status, 0, 'setpriv --pdeathsig must be available')
    const { port, pid, dir } = await serverOfDoomedProcess('sigkill')
    // no hook runs in a SIGKILLed process: its temp dir stays, so remove it here
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    await eventually(`redis ${pid} ended`, () => processGone(pid))
    // a zombie leader can still hold the listening socket while its other threads exit
    await eventually(`port ${port} refused connections`, async () => await connectOutcome(port) === 'ECONNREFUSED')
  })
})

describe('three-master redis cluster', () => {
  let cluster: RedisCluster
  let client: RedisClient

  before(async () => {
    cluster = await startRedisCluster()
    client = createRedisClient(cluster.url)
  }, { timeout: 60_000 })

  after(async () => {
    client?.disconnect()
    await cluster?.stop()
  })

  /** slot → owning port, from CLUSTER SLOTS */
  async function slotOwners (): Promise<Array<{ start: number; end: number; port: number }>> {
    const slots = await redisCommand(cluster.nodes[0]!.port, ['CLUSTER', 'SLOTS']) as RespValue[][]
    return slots.map((s) => ({ start: s[0] as number, end: s[1] as number, port: (s[2] as RespValue[])[1] as number }))
  }

  /** one key per master, each in a slot that master owns */
  async function keyPerMaster (prefix: string): Promise<Map<number, string>> {
    const owners = await slotOwners()
    const keys = new Map<number, string>()
    for (let i = 0; keys.size < cluster.nodes.length; i++) {
      const key = `${prefix}:${i}`
      const slot = await redisCommand(cluster.nodes[0]!.port, ['CLUSTER', 'KEYSLOT', key]) as number
      const owner = owners.find((o) => o.start <= slot && slot <= o.end)!.port
      if (!keys.has(owner)) keys.set(owner, key)
    }
    return keys
  }

  it('starts quickly and every node reports cluster_state:ok', async (t) => {
    t.diagnostic(`cluster ready in ${cluster.startupMs} ms`)
    assert.equal(cluster.nodes.length, 3)
    assert.equal(cluster.url, `redis+cluster://${cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`)
    for (const node of cluster.nodes) {
      assert.equal(node.host, '127.0.0.1')
      const info = parseInfo(String(await redisCommand(node.port, ['CLUSTER', 'INFO'])))
      assert.equal(info.get('cluster_state'), 'ok')
      assert.equal(info.get('cluster_known_nodes'), '3')
      assert.equal(info.get('cluster_size'), '3')
      assert.equal(info.get('cluster_slots_assigned'), '16384')
    }
  })

  it('has three masters that together own all 16384 slots', async () => {
    const lines = String(await redisCommand(cluster.nodes[1]!.port, ['CLUSTER', 'NODES'])).trim().split('\n')
    assert.equal(lines.filter((l) => l.split(' ')[2]!.includes('master')).length, 3)
    const owners = await slotOwners()
    const ranges = owners.map((o) => [o.start, o.end]).sort((a, b) => a[0]! - b[0]!)
    let next = 0
    for (const [start, end] of ranges) {
      assert.equal(start, next, 'slot ranges leave no gap')
      next = end! + 1
    }
    assert.equal(next, 16384)
    assert.deepEqual(new Set(owners.map((o) => o.port)), new Set(cluster.nodes.map((n) => n.port)))
  })

  it('createRedisClient(cluster.url) sets and gets keys that live on different masters', async () => {
    const keys = await keyPerMaster('harness:spread')
    for (const [port, key] of keys) {
      await client.set(key, `on-${port}`)
      assert.equal(await client.get(key), `on-${port}`)
      // the value really is on the master that owns the slot; the others redirect
      assert.equal(await redisCommand(port, ['GET', key]), `on-${port}`)
      const other = cluster.nodes.find((n) => n.port !== port)!
      await assert.rejects(redisCommand(other.port, ['GET', key]), /MOVED/)
    }
  })

  it('runs a script on hash-tagged keys, and the cluster refuses one across slots', async () => {
    const script = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return redis.call('MGET', KEYS[1], KEYS[2])"
    for (const tag of ['o:alpha', 'o:beta', 'p:gamma']) {
      const reply = await client.eval(script, 2, `harness:{${tag}}:a`, `harness:{${tag}}:b`, tag)
      assert.deepEqual(reply, [tag, tag])
    }
    const [[port, a], [, b]] = [...await keyPerMaster('harness:cross')]
    // ioredis (auto-pipelining) refuses it before sending; the server would too
    await assert.rejects(client.eval(script, 2, a!, b!, 'x'), /CROSSSLOT|same slot/)
    await assert.rejects(redisCommand(port!, ['EVAL', script, '2', a!, b!, 'x']), /CROSSSLOT/)
  })
})
