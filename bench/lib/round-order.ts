// The order targets run in, round by round. Each round starts one target later than the one
// before, so no target always runs right after another (and inherits its heat, its idle time
// or a neighbour's load that grows through a round): over as many rounds as targets, each
// target runs once in every position.
export function roundOrder<T> (targets: readonly T[], round: number): T[] {
  const shift = (round - 1) % targets.length
  return [...targets.slice(shift), ...targets.slice(0, shift)]
}
