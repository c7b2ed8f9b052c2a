// One autocannon run against one target, reduced to the numbers the reports print, plus the
// verdict: a throughput number means nothing if any response was not a 2xx or any request failed.
import { createHistogram } from 'node:perf_hooks'
import autocannon from 'autocannon'

export interface LoadSettings {
  connections: number
  pipelining: number
  durationSeconds: number
  /** stop after this many responses instead of after durationSeconds (a warm-up that must touch every key) */
  amount?: number
}

export interface LoadTarget {
  /** short label used in tables ('bare', 'governed', …) */
  name: string
  /** full URL, path and query included */
  url: string
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  body?: string
  /** the process (tree) serving the target, for CPU accounting */
  pid?: number
  /**
   * called by autocannon before every request to adjust it (e.g. rotate X-RelayKey over many
   * keys; see header-rotation.ts); absent: the same prebuilt request every time
   */
  setupRequest?: (request: autocannon.Request, context: object) => autocannon.Request
}

export interface LoadResult {
  target: string
  /** mean of autocannon's per-second request counts */
  requestsPerSecond: number
  /** latency percentiles of the 2xx responses, to the µs */
  p50Ms: number
  p99Ms: number
  /** responses of any status */
  responses: number
  requests2xx: number
  non2xx: number
  /** connection errors, timeouts included */
  errors: number
  timeouts: number
  /** status code → count, to explain a non-2xx */
  statusCodes: Record<string, number>
}

export async function runLoad (target: LoadTarget, settings: LoadSettings): Promise<LoadResult> {
  // autocannon's own percentiles are whole milliseconds, and a sequential request (one
  // connection) takes a fraction of one: its p50 and p99 would read 0 or 1 for every target.
  // Its 'response' event carries the exact time, kept here in µs.
  const latencyMicros = createHistogram()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: target.url,
      method: target.method ?? 'GET',
      headers: target.headers,
      body: target.body,
      connections: settings.connections,
      pipelining: settings.pipelining,
      duration: settings.durationSeconds,
      ...(settings.amount === undefined ? {} : { amount: settings.amount }),
      ...(target.setupRequest === undefined ? {} : { requests: [{ setupRequest: target.setupRequest }] }),
    }, (err, done) => { if (err === null || err === undefined) resolve(done); else reject(err) })
    // HOT PATH for the driver, once per response; 2xx only, as autocannon's latencies
    instance.on('response', (_client, statusCode, _bytes, responseMs) => {
      if (statusCode >= 200 && statusCode < 300) latencyMicros.record(Math.max(1, Math.round(responseMs * 1000)))
    })
  })
  const statusCodes: Record<string, number> = {}
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stats.count ?? 0
  return {
    target: target.name,
    requestsPerSecond: result.requests.average,
    p50Ms: latencyMicros.count === 0 ? 0 : latencyMicros.percentile(50) / 1000,
    p99Ms: latencyMicros.count === 0 ? 0 : latencyMicros.percentile(99) / 1000,
    responses: result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx'],
    requests2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
  }
}

/** what makes a run unusable; empty when it is sound */
export function problemsOf (result: LoadResult): string[] {
  const problems: string[] = []
  if (result.requests2xx === 0) problems.push('no 2xx response at all')
  if (result.non2xx > 0) problems.push(`${result.non2xx} non-2xx responses (status counts ${JSON.stringify(result.statusCodes)})`)
  if (result.errors > 0) problems.push(`${result.errors} request errors (${result.timeouts} of them timeouts)`)
  return problems.map((p) => `${result.target}: ${p}`)
}
