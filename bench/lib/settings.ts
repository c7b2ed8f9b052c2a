// The knobs every throughput scenario shares, each from a flag or else an environment variable,
// validated once here with a message naming the setting.
import { parseArgs } from 'node:util'

export interface BenchSettings {
  /** RELAYKEY_WORKERS for RelayKey and the worker count of the bare proxy */
  workers: number
  /** seconds of each measured run */
  durationSeconds: number
  /** seconds of the discarded warm-up run before each target's first measured run */
  warmupSeconds: number
  /** how many measured runs per target, the targets' order rotating each round */
  rounds: number
  /** the driver's concurrent connections, each with one request in flight (1: sequential requests) */
  connections: number
  /** when set, RelayKey and the bare proxy run with --cpu-prof and write their profiles under it */
  cpuProfDir: string | null
  /** driver and upstream on CPU 0, the proxies on the other CPUs */
  pin: boolean
  /** proxy-throughput: RelayKey with PostgreSQL and Redis instead of SQLite (bench:limits always is) */
  distributed: boolean
  /** false: RelayKey runs with RELAYKEY_LEASES=off, one store decision per limited request */
  leases: boolean
  /** bench:limits: the governed targets to run (bare always runs); null: all of them */
  targets: string[] | null
}

const INTEGERS = {
  workers: { env: 'BENCH_WORKERS', fallback: 1, min: 1, max: 64 },
  duration: { env: 'BENCH_DURATION', fallback: 10, min: 1, max: 3600 },
  warmup: { env: 'BENCH_WARMUP', fallback: 3, min: 0, max: 600 },
  rounds: { env: 'BENCH_ROUNDS', fallback: 1, min: 1, max: 100 },
  connections: { env: 'BENCH_CONNECTIONS', fallback: 50, min: 1, max: 10_000 },
} as const

export const SETTINGS_USAGE = `options (flag, or the environment variable):
  --workers N        BENCH_WORKERS         proxy workers for RelayKey and the bare proxy (default 1)
  --duration S       BENCH_DURATION        seconds per measured run (default 10)
  --warmup S         BENCH_WARMUP          seconds of discarded warm-up per target (default 3)
  --rounds N         BENCH_ROUNDS          measured runs per target, in rotating order (default 1)
  --connections N    BENCH_CONNECTIONS     driver connections, one request in flight on each (default 50);
                                           1 measures sequential requests: latency with no queue in front
  --cpu-prof-dir D   BENCH_CPU_PROF_DIR    node --cpu-prof RelayKey and the bare proxy into D/relaykey, D/bare
  --pin              BENCH_PIN=1           driver + upstream on CPU 0, the proxies on the rest (Linux, taskset)
  --distributed      BENCH_DISTRIBUTED=1   proxy-throughput: RelayKey on the local PostgreSQL and Redis, audit by COPY
                                           (bench:limits always runs that way)
  --no-leases        BENCH_LEASES=off      bench:limits: RelayKey with RELAYKEY_LEASES=off (a store decision per request),
                                           to compare with a run that has them
  --targets A,B      BENCH_TARGETS         bench:limits: only these governed targets (bare always runs), e.g. redis-zipf-10k`

export function loadSettings (argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): BenchSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      'cpu-prof-dir': { type: 'string' },
      pin: { type: 'boolean' },
      distributed: { type: 'boolean' },
      'no-leases': { type: 'boolean' },
      targets: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help === true) {
    console.log(SETTINGS_USAGE)
    process.exit(0)
  }
  const dir = values['cpu-prof-dir'] ?? env.BENCH_CPU_PROF_DIR
  const targets = (values.targets ?? env.BENCH_TARGETS ?? '').split(',').map((t) => t.trim()).filter((t) => t !== '')
  return {
    workers: integer('workers', values.workers, env),
    durationSeconds: integer('duration', values.duration, env),
    warmupSeconds: integer('warmup', values.warmup, env),
    rounds: integer('rounds', values.rounds, env),
    connections: integer('connections', values.connections, env),
    cpuProfDir: dir === undefined || dir === '' ? null : dir,
    pin: values.pin === true || env.BENCH_PIN === '1' || env.BENCH_PIN === 'true',
    distributed: values.distributed === true || env.BENCH_DISTRIBUTED === '1' || env.BENCH_DISTRIBUTED === 'true',
    leases: values['no-leases'] !== true && env.BENCH_LEASES !== 'off',
    targets: targets.length === 0 ? null : targets,
  }
}

function integer (name: keyof typeof INTEGERS, flag: string | undefined, env: NodeJS.ProcessEnv): number {
  const spec = INTEGERS[name]
  const raw = flag ?? env[spec.env]
  if (raw === undefined || raw.trim() === '') return spec.fallback
  const value = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || value < spec.min || value > spec.max) {
    throw new Error(`--${name} / ${spec.env}: must be a whole number from ${spec.min} to ${spec.max}, got '${raw}'`)
  }
  return value
}
