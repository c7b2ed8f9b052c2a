// Prints a scenario's runs twice: an aligned table for the terminal and a markdown table ready
// to paste into docs/benchmarks.md, each followed by the ratios the scenario asks for: the
// median of the per-round ratios (what a target is judged on) and the ratio of the means, and
// beside them the ratios of the mean p50 and p99 latencies.
import { cpus, loadavg } from 'node:os'
import type { MeasuredRun } from './measured-run.js'

export interface Comparison {
  /** e.g. 'governed' */
  subject: string
  /** e.g. 'bare' */
  baseline: string
  /** the subject's req/s over the baseline's is expected to reach this; null: reported only */
  target: number | null
}

export interface ReportInput {
  title: string
  /** one line of settings, e.g. 'workers 1, connections 50, …' */
  settings: string
  /** load average when the scenario began, to judge how noisy the machine was */
  loadAtStart: number[]
  targets: string[]
  runs: MeasuredRun[]
  comparisons: Comparison[]
}

interface Row {
  target: string
  round: string
  rps: number
  p50: number
  p99: number
  non2xx: number
  errors: number
  /** CPU µs per response: proxy under test, upstream, driver */
  cpuTarget: number | null
  cpuUpstream: number | null
  cpuDriver: number
}

export function machineLine (): string {
  const all = cpus()
  const model = all[0]?.model.trim() ?? 'unknown CPU'
  // cpus(), not availableParallelism(): --pin narrows this process's affinity to one CPU
  return `${all.length} × ${model}, Node ${process.version}, ${process.platform}/${process.arch}`
}

export function printReport (input: ReportInput): void {
  const rows = rowsOf(input)
  const mean = (target: string): Row => rows.find((r) => r.target === target && r.round === 'mean')!
  const ratios = input.comparisons.map((c) => {
    const subject = mean(c.subject)
    const baseline = mean(c.baseline)
    const perRound = roundRatios(input.runs, c)
    return {
      ...c,
      rps: subject.rps / baseline.rps,
      cpu: subject.cpuTarget === null || baseline.cpuTarget === null ? null : subject.cpuTarget / baseline.cpuTarget,
      perRound,
      median: median(perRound),
      subjectRow: subject,
      baselineRow: baseline,
    }
  })
  const load = (values: number[]): string => values.map((v) => v.toFixed(2)).join(' ')
  const shown = input.runs.length > input.targets.length ? rows : rows.filter((r) => r.round !== 'mean')

  console.log(`\n${input.title} — ${new Date().toISOString()}`)
  console.log(`machine: ${machineLine()}; load average ${load(input.loadAtStart)} at start, ${load(loadavg())} at end`)
  console.log(`settings: ${input.settings}\n`)
  const header = ['target', 'round', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'proxy CPU µs/req', 'upstream µs/req', 'driver µs/req']
  const cells = shown.map((r) => [
    r.target, r.round, r.rps.toFixed(0), fmtMs(r.p50), fmtMs(r.p99), String(r.non2xx), String(r.errors),
    fmtCpu(r.cpuTarget), fmtCpu(r.cpuUpstream), fmtCpu(r.cpuDriver),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: string[]): string => c.map((v, i) => (i < 2 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ')
  console.log(line(header))
  for (const c of cells) console.log(line(c))
  console.log('')
  for (const r of ratios) {
    // judged on the median of the rounds' own ratios: each round's runs are minutes apart at
    // most, so a neighbour's load that comes and goes moves one round, not the verdict
    const verdict = r.target === null ? 'no target' : `target ≥ ${r.target.toFixed(2)}: ${r.median >= r.target ? 'met' : 'NOT met'}`
    const cpu = r.cpu === null ? '' : `; proxy CPU per request ${r.subject} / ${r.baseline}: ${r.cpu.toFixed(2)}×`
    const rounds = r.perRound.length > 1 ? `, rounds ${r.perRound.map((x) => x.toFixed(2)).join(' ')}` : ''
    console.log(`${r.subject} / ${r.baseline} req/s: median of rounds ${r.median.toFixed(3)}${rounds}; of the means ${r.rps.toFixed(3)} ` +
      `(${verdict})${cpu}`)
    // what a request waits, beside what the proxy can take: with one connection (no queue in
    // front of the proxy) this is the governed path's own latency over bare's
    const subject = r.subjectRow
    const baseline = r.baselineRow
    console.log(`  latency ${r.subject} / ${r.baseline} (means): p50 ${fmtMs(subject.p50)} / ${fmtMs(baseline.p50)} ms (${fmtTimes(subject.p50, baseline.p50)}), ` +
      `p99 ${fmtMs(subject.p99)} / ${fmtMs(baseline.p99)} ms (${fmtTimes(subject.p99, baseline.p99)})`)
  }

  console.log('\nmarkdown:\n')
  console.log('| target | round | req/s | p50 (ms) | p99 (ms) | non-2xx | errors | proxy CPU (µs/req) |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const c of cells) console.log(`| ${c.slice(0, 8).join(' | ')} |`)
  for (const r of ratios) {
    console.log(`| **${r.subject} / ${r.baseline}** | median of rounds | **${r.median.toFixed(3)}** | ` +
      `${fmtTimes(r.subjectRow.p50, r.baselineRow.p50)} | ${fmtTimes(r.subjectRow.p99, r.baselineRow.p99)} | | | ${r.cpu === null ? '' : `${r.cpu.toFixed(2)}×`} |`)
  }
  console.log('')
}

/** subject req/s over baseline req/s within each round that ran both */
function roundRatios (runs: MeasuredRun[], c: Comparison): number[] {
  const ratios: number[] = []
  for (const run of runs) {
    if (run.result.target !== c.subject) continue
    const baseline = runs.find((r) => r.round === run.round && r.result.target === c.baseline)
    if (baseline !== undefined) ratios.push(run.result.requestsPerSecond / baseline.result.requestsPerSecond)
  }
  return ratios
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** one row per run, then one 'mean' row per target (sums for the failure counts) */
function rowsOf (input: ReportInput): Row[] {
  const rows: Row[] = input.runs.map((run) => rowOf(String(run.round), [run]))
  for (const target of input.targets) rows.push(rowOf('mean', input.runs.filter((r) => r.result.target === target)))
  return rows
}

function rowOf (round: string, runs: MeasuredRun[]): Row {
  const mean = (pick: (r: MeasuredRun) => number): number => runs.reduce((s, r) => s + pick(r), 0) / runs.length
  const sum = (pick: (r: MeasuredRun) => number): number => runs.reduce((s, r) => s + pick(r), 0)
  const meanOrNull = (pick: (r: MeasuredRun) => number | null): number | null =>
    runs.some((r) => pick(r) === null) ? null : mean((r) => pick(r)!)
  return {
    target: runs[0]!.result.target,
    round,
    rps: mean((r) => r.result.requestsPerSecond),
    p50: mean((r) => r.result.p50Ms),
    p99: mean((r) => r.result.p99Ms),
    non2xx: sum((r) => r.result.non2xx),
    errors: sum((r) => r.result.errors),
    cpuTarget: meanOrNull((r) => r.cpu.target),
    cpuUpstream: meanOrNull((r) => r.cpu.upstream),
    cpuDriver: mean((r) => r.cpu.driver),
  }
}

/** three significant digits, as the latency histogram keeps: 0.312, 3.41, 12.3, 153 */
function fmtMs (ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toPrecision(3)
}

function fmtTimes (subject: number, baseline: number): string {
  return baseline === 0 ? 'n/a' : `${(subject / baseline).toFixed(2)}×`
}

function fmtCpu (micros: number | null): string {
  return micros === null ? 'n/a' : micros.toFixed(1)
}
