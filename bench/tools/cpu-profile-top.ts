// Summarises a V8 .cpuprofile (node --cpu-prof): the functions with the most self time, and
// with --total the most inclusive time, as a share of the busy (non-idle) time, each tagged
// with where it lives: relaykey (dist/src), undici, node (internals), deps, v8 (GC, program).
// --layers charges each busy sample to one subsystem (Redis client, audit, undici, node http, …)
// by the nearest frame that names it, so a syscall is billed to whoever made it; --from/--to
// keep only a time window (a steady-state run), and --timeline shows where those windows are.
//
//   node dist/bench/tools/cpu-profile-top.js PROFILE.cpuprofile [--top 15] [--only relaykey,undici,node] [--total]
//     [--layers] [--from S] [--to S] [--timeline]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

type Where = 'relaykey' | 'undici' | 'node' | 'deps' | 'v8' | 'idle'

interface Entry {
  name: string
  where: Where
  location: string
  micros: number
}

function whereOf (frame: CallFrame): Where {
  const url = frame.url
  if (frame.functionName === '(idle)') return 'idle'
  if (url === '') return frame.functionName.startsWith('(') ? 'v8' : 'node'
  if (url.startsWith('node:')) return 'node'
  // the only WebAssembly in a RelayKey worker is undici's llhttp parser
  if (url.startsWith('wasm://')) return 'undici'
  if (url.includes('/node_modules/undici/')) return 'undici'
  if (url.includes('/node_modules/')) return 'deps'
  if (url.includes('/dist/src/')) return 'relaykey'
  return 'deps'
}

function locationOf (frame: CallFrame): string {
  if (frame.url === '') return '(native)'
  const url = frame.url.replace(/^file:\/\//, '')
  const short = url.includes('/node_modules/')
    ? url.slice(url.lastIndexOf('/node_modules/') + '/node_modules/'.length)
    : url.includes('/dist/') ? url.slice(url.indexOf('/dist/') + 1) : url
  return `${short}:${frame.lineNumber + 1}`
}

/**
 * The subsystem a frame belongs to, or null for frames that say nothing about who is working
 * (node internals such as net, streams, timers, and native code) so the caller looks further up.
 */
function layerOf (frame: CallFrame): string | null {
  const url = frame.url
  if (frame.functionName === '(garbage collector)') return 'v8: garbage collector'
  if (frame.functionName === '(program)') return 'v8: program (compiler, runtime)'
  if (/\/node_modules\/(ioredis|redis-parser|standard-as-callback|denque|cluster-key-slot)\//.test(url) ||
    url.includes('/dist/src/store/redis/') || url.includes('/dist/src/limits/')) return 'redis: ioredis + admission'
  if (url.includes('/dist/src/audit/')) return 'audit'
  if (url.includes('/node_modules/postgres/')) return 'postgres driver'
  if (url.includes('/node_modules/undici/') || url.startsWith('wasm://')) return 'undici (upstream client)'
  if (url.startsWith('node:_http_') || url === 'node:http') return 'node http server'
  if (url.includes('/dist/src/telemetry/') || /\/node_modules\/(prom-client|pino[^/]*)\//.test(url)) return 'telemetry'
  if (url.includes('/dist/src/')) return 'relaykey gateway'
  if (url.includes('/node_modules/')) return 'other dependencies'
  return null
}

interface Window {
  /** seconds since the profile started */
  from: number
  to: number
}

function summarise (profile: CpuProfile, inclusive: boolean, window: Window): {
  entries: Entry[]
  busyMicros: number
  byWhere: Map<Where, number>
  byLayer: Map<string, number>
  /** busy share per whole second since the start */
  timeline: number[]
} {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const keyOf = (frame: CallFrame): string => `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}\u0000${frame.columnNumber}`
  const entries = new Map<string, Entry>()
  const byWhere = new Map<Where, number>()
  const byLayer = new Map<string, number>()
  const timeline: Array<{ busy: number; all: number }> = []
  let busyMicros = 0
  let at = 0
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    // timeDeltas[i] is the gap before sample i; attribute the gap after it instead when known
    const micros = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0
    const leaf = byId.get(profile.samples[i]!)!
    const where = whereOf(leaf.callFrame)
    const second = Math.floor(at / 1e6)
    timeline[second] ??= { busy: 0, all: 0 }
    timeline[second].all += micros
    if (where !== 'idle') timeline[second].busy += micros
    if (at / 1e6 < window.from || at / 1e6 >= window.to) continue
    byWhere.set(where, (byWhere.get(where) ?? 0) + micros)
    if (where === 'idle') continue
    busyMicros += micros
    let layer: string | null = null
    for (let id: number | undefined = leaf.id; id !== undefined && layer === null; id = parent.get(id)) layer = layerOf(byId.get(id)!.callFrame)
    layer ??= 'other node (event loop, net, timers)'
    byLayer.set(layer, (byLayer.get(layer) ?? 0) + micros)
    const seen = new Set<string>()
    for (let id: number | undefined = leaf.id; id !== undefined; id = inclusive ? parent.get(id) : undefined) {
      const frame = byId.get(id)!.callFrame
      if (frame.functionName === '(root)') break
      const key = keyOf(frame)
      if (seen.has(key)) continue // recursion counts once per sample
      seen.add(key)
      let entry = entries.get(key)
      if (entry === undefined) {
        entry = { name: frame.functionName === '' ? '(anonymous)' : frame.functionName, where: whereOf(frame), location: locationOf(frame), micros: 0 }
        entries.set(key, entry)
      }
      entry.micros += micros
    }
  }
  return {
    entries: [...entries.values()].sort((a, b) => b.micros - a.micros),
    busyMicros,
    byWhere,
    byLayer,
    timeline: Array.from(timeline, (t) => (t === undefined || t.all === 0 ? 0 : t.busy / t.all)),
  }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '15' },
    only: { type: 'string' },
    total: { type: 'boolean', default: false },
    layers: { type: 'boolean', default: false },
    from: { type: 'string', default: '0' },
    to: { type: 'string', default: 'Infinity' },
    timeline: { type: 'boolean', default: false },
  },
})
const window = { from: Number(values.from), to: Number(values.to) }
if (positionals.length !== 1 || Number.isNaN(window.from) || Number.isNaN(window.to)) {
  console.error('usage: cpu-profile-top PROFILE.cpuprofile [--top 15] [--only relaykey,undici,node] [--total] [--layers] [--from S] [--to S] [--timeline]')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as CpuProfile
const only = values.only === undefined ? null : new Set(values.only.split(','))
const top = Number(values.top)
const { entries, busyMicros, byWhere, byLayer, timeline } = summarise(profile, values.total === true, window)
const pct = (micros: number): string => `${(100 * micros / busyMicros).toFixed(1).padStart(5)}%`

const wall = [...byWhere.values()].reduce((a, b) => a + b, 0)
if (values.timeline === true) {
  console.log('busy share per second since the start (pick --from/--to from it):')
  console.log(timeline.map((share, second) => `${second}:${Math.round(100 * share)}%`).join(' ') + '\n')
}
const span = window.from === 0 && window.to === Infinity ? '' : ` between ${window.from} s and ${window.to} s`
console.log(`${positionals[0]}${span}: ${(wall / 1e6).toFixed(1)} s sampled, ${(busyMicros / 1e6).toFixed(1)} s busy (${(100 * busyMicros / wall).toFixed(0)}%)`)
console.log('self time by where (share of busy): ' + (['relaykey', 'undici', 'node', 'deps', 'v8'] as Where[])
  .map((w) => `${w} ${pct(byWhere.get(w) ?? 0).trim()}`).join(', '))
console.log(`\ntop ${top} by ${values.total === true ? 'total (inclusive)' : 'self'} time${only === null ? '' : ` in ${[...only].join(', ')}`}:`)
console.log('| # | function | where | location | % of busy |')
console.log('|---:|---|---|---|---:|')
let n = 0
for (const entry of entries) {
  if (only !== null && !only.has(entry.where)) continue
  if (++n > top) break
  console.log(`| ${n} | \`${entry.name}\` | ${entry.where} | ${entry.location} | ${pct(entry.micros).trim()} |`)
}

if (values.layers === true) {
  console.log('\nbusy time by layer (each sample charged to the nearest frame, leaf upward, that names one):')
  console.log('| layer | % of busy |')
  console.log('|---|---:|')
  for (const [layer, micros] of [...byLayer].sort((a, b) => b[1] - a[1])) console.log(`| ${layer} | ${pct(micros).trim()} |`)
}
