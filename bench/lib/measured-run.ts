// A load run with CPU accounting around it: how many microseconds of CPU the target's processes,
// the upstream and this driver spent per response while it lasted.
import { runLoad, type LoadResult, type LoadSettings, type LoadTarget } from './load.js'
import { treeCpuMicros } from './process-cpu.js'

export interface CpuPerResponse {
  /** the proxy under test: primary and workers */
  target: number | null
  upstream: number | null
  /** autocannon, in this process */
  driver: number
}

export interface MeasuredRun {
  round: number
  result: LoadResult
  cpu: CpuPerResponse
}

export async function measuredRun (round: number, target: LoadTarget, settings: LoadSettings, upstreamPid: number | undefined): Promise<MeasuredRun> {
  const targetBefore = treeCpuMicros(target.pid)
  const upstreamBefore = treeCpuMicros(upstreamPid)
  const driverBefore = process.cpuUsage()
  const result = await runLoad(target, settings)
  const driver = process.cpuUsage(driverBefore)
  const targetAfter = treeCpuMicros(target.pid)
  const upstreamAfter = treeCpuMicros(upstreamPid)
  const per = (before: number | null, after: number | null): number | null =>
    before === null || after === null || result.responses === 0 ? null : (after - before) / result.responses
  return {
    round,
    result,
    cpu: {
      target: per(targetBefore, targetAfter),
      upstream: per(upstreamBefore, upstreamAfter),
      driver: result.responses === 0 ? 0 : (driver.user + driver.system) / result.responses,
    },
  }
}
