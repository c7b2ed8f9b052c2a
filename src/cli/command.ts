// One CLI command: its words, its help, and what it runs. Each command lives in its own file
// and is listed in commands.ts; cli.ts finds the longest matching words.
export interface Command {
  /** e.g. ['keys', 'create'] */
  words: string[]
  /** one line for the overview */
  summary: string
  /** the command's --help text: usage, options, examples */
  help: string
  /** exit code; throws CliError for failures with their own code */
  run (args: string[]): Promise<number>
}
