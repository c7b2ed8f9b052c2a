// GET /metrics on the admin port carries prom-client's default process and Node.js metrics:
// the workers' merged into one series each (memory summed, event-loop lag averaged, ...), and
// the primary's own under relaykey_primary_, so no family is exported twice. A real cluster of
// two workers, its memory checked against /proc.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startRelayKey } from '../helpers/relaykey-process.js'
import { assertPromtoolAccepts } from '../helpers/promtool.js'
import { childPids, rssBytes } from '../helpers/process-tree.js'

/** the sample lines of `name` (its own, not those of a longer name sharing the prefix) */
function samples (text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(name + ' ') || line.startsWith(name + '{'))
}

function onlyValue (text: string, name: string): number {
  const lines = samples(text, name)
  assert.equal(lines.length, 1, `${name}: one series, not one per process:\n${lines.join('\n')}`)
  return Number(lines[0]!.slice(lines[0]!.lastIndexOf(' ') + 1))
}

const MiB = 1024 * 1024

describe('/metrics process and Node.js metrics', () => {
  it('merges the workers\' into one series each and adds the primary\'s under its own prefix', async (t) => {
    const rk = await startRelayKey({ workers: 2 })
    try {
      const workers = childPids(rk.child.pid!)
      assert.equal(workers.length, 2, 'two workers')
      const rssBefore = workers.map(rssBytes)
      const res = await request(`${rk.adminUrl}/metrics`, { headers: { authorization: `Bearer ${rk.adminToken}` } })
      assert.equal(res.statusCode, 200)
      const text = await res.body.text()
      const rssAfter = workers.map(rssBytes)

      // every family once: the primary's do not repeat the workers' names
      const families = text.split('\n').filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ')[2]!)
      assert.deepEqual(families.filter((name, i) => families.indexOf(name) !== i), [], 'no family exported twice')
      for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_heap_bytes', 'process_open_fds',
        'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes',
        'relaykey_primary_process_resident_memory_bytes', 'relaykey_primary_process_cpu_seconds_total', 'relaykey_primary_nodejs_eventloop_lag_seconds',
        'relaykey_primary_process_start_time_seconds']) {
        const value = onlyValue(text, name)
        assert.ok(Number.isFinite(value) && value >= 0, `${name} ${value}`)
      }
      assert.ok(families.includes('nodejs_gc_duration_seconds'), 'GC durations')
      assert.ok(families.includes('relaykey_primary_nodejs_gc_duration_seconds'), 'the primary\'s GC durations')
      // prom-client merges the version with 'first' and leaves the workers' start times out
      assert.match(samples(text, 'nodejs_version_info').join('\n'), new RegExp(`^nodejs_version_info\\{version="${process.version.replaceAll('.', '\\.')}",[^\n]*\\} 1$`))
      assert.deepEqual(samples(text, 'process_start_time_seconds'), [])

      // resident memory is the workers' sum: more than either worker has, about what /proc says
      // both have together (each can move by a little between the reads), and not the primary's too
      const rss = onlyValue(text, 'process_resident_memory_bytes')
      const low = Math.min(rssBefore[0]!, rssAfter[0]!) + Math.min(rssBefore[1]!, rssAfter[1]!)
      const high = Math.max(rssBefore[0]!, rssAfter[0]!) + Math.max(rssBefore[1]!, rssAfter[1]!)
      assert.ok(low > 0, 'the workers\' RSS read from /proc')
      assert.ok(rss > Math.max(...rssBefore, ...rssAfter), `${rss} is more than one worker's RSS (${rssBefore} / ${rssAfter})`)
      assert.ok(rss >= low * 0.8 && rss <= high * 1.2, `${rss / MiB} MiB is the workers' sum, ${low / MiB}–${high / MiB} MiB`)
      const primaryRss = onlyValue(text, 'relaykey_primary_process_resident_memory_bytes')
      const primaryProc = rssBytes(rk.child.pid!)
      assert.ok(primaryRss >= primaryProc * 0.8 && primaryRss <= primaryProc * 1.2, `primary ${primaryRss / MiB} MiB, /proc says ${primaryProc / MiB} MiB`)

      // promtool's lint refuses a gauge named like a counter (prom-client's nodejs_active_*_total)
      for (const line of text.split('\n')) assert.ok(!/^# TYPE \S+_total gauge$/.test(line), line)
      assertPromtoolAccepts(t, text)
    } finally {
      await rk.stop()
    }
  })
})
