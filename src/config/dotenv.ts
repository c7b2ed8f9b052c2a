// `.env` in the working directory, read if present; the real environment wins.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'

export function loadDotEnv (cwd: string = process.cwd()): void {
  const file = resolve(cwd, '.env')
  // process.loadEnvFile never overrides a variable that is already set
  if (existsSync(file)) process.loadEnvFile(file)
}
