// The node flags proxy workers run with, on top of the primary's own.
//
// --no-memory-reducer: after a worker has been idle for a while (about 20 s or more), V8's
// memory reducer runs its memory-shrinking collections, and from then on the worker creates
// process.nextTick's tick objects through V8's runtime slow path for good: nextTick grew from
// about 1 % to 4–5 % of a worker's busy time under the same load (`npm run bench -- --pin
// --cpu-prof-dir D`, the target that waited longest; the same run with this flag: 0.8 %).
// A proxy sees exactly that pattern — quiet night, busy morning. The price: an idle worker
// keeps the heap its last busy spell grew to instead of handing it back early; ordinary
// collections still shrink it.
export const WORKER_NODE_FLAGS: readonly string[] = ['--no-memory-reducer']

/** the execArgv for cluster workers: the primary's own (profiling, inspect…) plus ours */
export function workerExecArgv (primaryExecArgv: readonly string[]): string[] {
  const argv = [...primaryExecArgv]
  for (const flag of WORKER_NODE_FLAGS) if (!argv.includes(flag)) argv.push(flag)
  return argv
}
