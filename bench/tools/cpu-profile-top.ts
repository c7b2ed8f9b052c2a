// Summarises a V8 .cpuprofile (node --cpu-prof): the functions with the most self time, and
// with --total the most inclusive time, as a share of the busy (non-idle) time, each tagged
// with where it lives: relaykey (dist/src), undici, node (internals), deps, v8 (GC, program).
//
//   node dist/bench/tools/cpu-profile-top.js PROFILE.cpuprofile [--top 15] [--only relaykey,undici,node] [--total]
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

function summarise (profile: CpuProfile, inclusive: boolean): { entries: Entry[]; busyMicros: number; byWhere: Map<Where, number> } {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const keyOf = (frame: CallFrame): string => `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}\u0000${frame.columnNumber}`
  const entries = new Map<string, Entry>()
  const byWhere = new Map<Where, number>()
  let busyMicros = 0
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the gap before sample i; attribute the gap after it instead when known
    const micros = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0
    const leaf = byId.get(profile.samples[i]!)!
    const where = whereOf(leaf.callFrame)
    byWhere.set(where, (byWhere.get(where) ?? 0) + micros)
    if (where === 'idle') continue
    busyMicros += micros
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
  return { entries: [...entries.values()].sort((a, b) => b.micros - a.micros), busyMicros, byWhere }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '15' },
    only: { type: 'string' },
    total: { type: 'boolean', default: false },
  },
})
if (positionals.length !== 1) {
  console.error('usage: cpu-profile-top PROFILE.cpuprofile [--top 15] [--only relaykey,undici,node] [--total]')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as CpuProfile
const only = values.only === undefined ? null : new Set(values.only.split(','))
const top = Number(values.top)
const { entries, busyMicros, byWhere } = summarise(profile, values.total === true)
const pct = (micros: number): string => `${(100 * micros / busyMicros).toFixed(1).padStart(5)}%`

const wall = [...byWhere.values()].reduce((a, b) => a + b, 0)
console.log(`${positionals[0]}: ${(wall / 1e6).toFixed(1)} s sampled, ${(busyMicros / 1e6).toFixed(1)} s busy (${(100 * busyMicros / wall).toFixed(0)}%)`)
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
