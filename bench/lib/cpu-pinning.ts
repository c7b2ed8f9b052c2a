// Optional CPU pinning (--pin): the driver and the upstream share CPU 0, the proxy under test
// gets the other CPUs to itself. On a small shared machine this keeps the scheduler from
// charging one process's waiting to another, which makes profiles readable; the unpinned run
// is still the default because it is what an operator's machine looks like.
import { execFileSync } from 'node:child_process'
import { availableParallelism } from 'node:os'

export interface Pinning {
  /** for this process (autocannon) and the upstream */
  driver: string
  /** for the proxies under test */
  proxy: string
}

/** pins this process and says where the services go; throws when pinning cannot work here */
export function pinDriver (): Pinning {
  const cpus = availableParallelism()
  if (process.platform !== 'linux' || cpus < 2) throw new Error('--pin needs Linux and at least 2 CPUs')
  const pinning = { driver: '0', proxy: cpus === 2 ? '1' : `1-${cpus - 1}` }
  try {
    execFileSync('taskset', ['-a', '-cp', pinning.driver, String(process.pid)], { stdio: 'ignore' })
  } catch (err) {
    throw new Error(`--pin: taskset failed (${err instanceof Error ? err.message : String(err)}); is util-linux installed?`)
  }
  return pinning
}
