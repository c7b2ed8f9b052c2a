// What the Redis server did while a load run lasted, read from its own counters (INFO): script
// calls and the time spent running them (commandstats), and the CPU the whole server used. The
// server may be shared, so the numbers include everyone's traffic. Script calls count every
// EVALSHA and EVAL, whatever the script: per response, they are how often a governed request
// needed the store (a decision each, or far fewer when workers admit from leases).
import type { Redis } from 'ioredis'

export interface RedisSample {
  /** EVALSHA + EVAL calls so far */
  scriptCalls: number
  /** µs Redis spent executing them (the Lua itself, not the network or parsing) */
  scriptMicros: number
  /** user + system CPU of the server process so far, µs */
  cpuMicros: number
}

export interface RedisUsage {
  scriptCalls: number
  /** mean µs per script call; null when there was none */
  microsPerCall: number | null
  cpuMicros: number
}

export async function sampleRedis (redis: Redis): Promise<RedisSample> {
  const [commands, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')])
  const calls = (name: string): { calls: number; usec: number } => {
    const line = new RegExp(`^cmdstat_${name}:calls=(\\d+),usec=(\\d+)`, 'm').exec(commands)
    return line === null ? { calls: 0, usec: 0 } : { calls: Number(line[1]), usec: Number(line[2]) }
  }
  const seconds = (field: string): number => Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0)
  const evalsha = calls('evalsha')
  const evalPlain = calls('eval')
  return {
    scriptCalls: evalsha.calls + evalPlain.calls,
    scriptMicros: evalsha.usec + evalPlain.usec,
    cpuMicros: Math.round((seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6),
  }
}

export function redisUsage (before: RedisSample, after: RedisSample): RedisUsage {
  const scriptCalls = after.scriptCalls - before.scriptCalls
  return {
    scriptCalls,
    microsPerCall: scriptCalls === 0 ? null : (after.scriptMicros - before.scriptMicros) / scriptCalls,
    cpuMicros: after.cpuMicros - before.cpuMicros,
  }
}
