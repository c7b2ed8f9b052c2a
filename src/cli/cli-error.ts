// Exit codes a script can rely on (docs/cli.md).
export const EXIT = {
  ok: 0,
  /** the command failed: the node refused it, could not be reached, or a check found a problem */
  failed: 1,
  /** a bad command line, an unknown command or flag, no admin token */
  usage: 2,
  /** `config diff`: the file and the node differ */
  changes: 3,
  /** what was asked for does not exist */
  notFound: 4,
} as const

export class CliError extends Error {
  override readonly name = 'CliError'
  readonly exitCode: number
  constructor (message: string, exitCode: number) {
    super(message)
    this.exitCode = exitCode
  }
}
