// Everything a scenario started, stopped in reverse order exactly once: after a normal run,
// after a failure, and on Ctrl-C, so no upstream or proxy outlives the benchmark.

type Step = () => Promise<void> | void

/** a process whose output explains a failure */
interface Watched {
  name: string
  output (): string
}

/** how much of each service's output a failure report shows */
const FAILURE_OUTPUT_TAIL = 4_000

export class ServiceGroup {
  readonly #steps: Array<{ name: string; step: Step }> = []
  readonly #problems: string[] = []
  readonly #watched: Watched[] = []
  #closed: Promise<string[]> | null = null

  /** `step` runs at close, before every step added earlier */
  defer (name: string, step: Step): void {
    if (this.#closed !== null) throw new Error(`${name}: added after the group was closed`)
    this.#steps.push({ name, step })
  }

  /** remember a service whose output to show if the scenario fails */
  watch (service: Watched): void {
    this.#watched.push(service)
  }

  /** the tail of every watched service's output, for a failure report */
  outputs (): string {
    return this.#watched
      .filter((s) => s.output().trim() !== '')
      .map((s) => `--- ${s.name} output (tail) ---\n${s.output().slice(-FAILURE_OUTPUT_TAIL).trimEnd()}`)
      .join('\n')
  }

  /** runs every step; resolves with what went wrong (an empty list: all stopped cleanly) */
  close (): Promise<string[]> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close (): Promise<string[]> {
    for (let i = this.#steps.length - 1; i >= 0; i--) {
      const { name, step } = this.#steps[i]!
      try {
        await step()
      } catch (err) {
        this.#problems.push(`${name}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    return this.#problems
  }
}

/**
 * Runs `scenario` with a fresh group, closes the group whatever happens (including SIGINT and
 * SIGTERM) and sets the exit code: 0 only when the scenario passed and everything stopped cleanly.
 */
export async function runScenario (scenario: (group: ServiceGroup) => Promise<void>): Promise<void> {
  const group = new ServiceGroup()
  const onSignal = (signal: NodeJS.Signals): void => {
    console.error(`\n${signal}: stopping services`)
    void group.close().then(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let failed = false
  try {
    await scenario(group)
  } catch (err) {
    failed = true
    console.error(`\nFAILED: ${err instanceof Error ? err.message : String(err)}`)
  }
  const problems = await group.close()
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  for (const problem of problems) console.error(`shutdown: ${problem}`)
  if (failed || problems.length > 0) {
    const outputs = group.outputs()
    if (outputs !== '') console.error(outputs)
  }
  process.exitCode = failed || problems.length > 0 ? 1 : 0
}
