// A private PostgreSQL 15 for tests that stop, crash and restart the database: its own data dir
// and a free loopback port, so the shared server on 5432 is never touched. Runs as the
// `postgres` user (initdb refuses root) and is removed when the test process exits.
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { runMigrations } from '../../src/store/postgres/migrate.js'
import { freePort } from './ports.js'

export interface ThrowawayPostgres {
  readonly port: number
  /** superuser URL of the `postgres` database */
  readonly url: string
  /** `fast` disconnects clients and shuts down cleanly; `immediate` is a crash */
  stop (mode?: 'fast' | 'immediate'): Promise<void>
  /** starts again on the same port and data dir */
  start (): Promise<void>
  running (): Promise<boolean>
  /** stops it and deletes its files */
  destroy (): Promise<void>
  log (): string
}

export interface ThrowawayPostgresOptions {
  /** apply RelayKey's migrations/ (default true) */
  migrate?: boolean
}

const live = new Set<{ dataDir: string; root: string }>()
let hooked = false

export async function startThrowawayPostgres (options: ThrowawayPostgresOptions = {}): Promise<ThrowawayPostgres> {
  const bin = binDir()
  const root = mkdtempSync(join(tmpdir(), 'relaykey-pg-'))
  const dataDir = join(root, 'data')
  const logFile = join(root, 'postgres.log')
  const { uid, gid } = postgresUser()
  chownSync(root, uid, gid)
  const entry = { dataDir, root }
  live.add(entry)
  hookExit(bin)

  // -N: no fsync during initdb, and fsync=off below: a crash of the server (immediate stop) keeps
  // committed data in the page cache; only a crash of the machine would lose it
  await asPostgres(bin, 'initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-N', '-E', 'UTF8', '--locale=C'], root)
  let port = 0
  const ctl = (args: string[]): Promise<void> => asPostgres(bin, 'pg_ctl', args, root)
  const start = (): Promise<void> => ctl([
    '-D', dataDir, '-l', logFile, '-w', '-t', '30', '-o',
    `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`,
    'start',
  ])
  // another process may take the free port between freePort() and the bind: try a few
  for (let attempt = 0; ; attempt++) {
    port = await freePort()
    try {
      await start()
      break
    } catch (err) {
      if (attempt === 4) throw new Error(`${(err as Error).message}\n${readLog(logFile)}`)
    }
  }
  const running = async (): Promise<boolean> => {
    try {
      await asPostgres(bin, 'pg_ctl', ['status', '-D', dataDir], root)
      return true
    } catch {
      return false
    }
  }
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  if (options.migrate ?? true) await runMigrations(url)
  return {
    port,
    url,
    async stop (mode = 'fast') {
      if (await running()) await ctl(['-D', dataDir, '-m', mode, '-w', 'stop'])
    },
    async start () {
      if (!await running()) await start()
    },
    running,
    async destroy () {
      stopQuietly(bin, dataDir)
      rmSync(root, { recursive: true, force: true })
      live.delete(entry)
    },
    log: () => readLog(logFile),
  }
}

function binDir (): string {
  // the Debian package knows where its binaries are; fall back to the usual place
  const listed = spawnSync('dpkg', ['-L', 'postgresql-15'], { encoding: 'utf8' })
  const initdb = (listed.stdout ?? '').split('\n').find((line) => line.endsWith('/bin/initdb'))
  const dir = initdb !== undefined ? initdb.slice(0, -'/initdb'.length) : '/usr/lib/postgresql/15/bin'
  if (!existsSync(join(dir, 'initdb'))) throw new Error(`PostgreSQL 15 binaries not found (looked in ${dir}); install postgresql-15`)
  return dir
}

function postgresUser (): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  return { uid: id('-u'), gid: id('-g') }
}

const execFileAsync = promisify(execFile)

// asynchronous: tests stop and start the server while the code under test keeps running
async function asPostgres (bin: string, tool: string, args: string[], cwd: string): Promise<void> {
  try {
    await execFileAsync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { cwd, encoding: 'utf8' })
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string }
    throw new Error(`${tool} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}

function stopQuietly (bin: string, dataDir: string): void {
  spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', dataDir, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore' })
}

function readLog (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

// pg_ctl daemonizes the server, so it outlives a test process that forgets destroy(); the exit
// hook catches a normal end, a failed assertion and an uncaught exception.
function hookExit (bin: string): void {
  if (hooked) return
  hooked = true
  process.once('exit', () => {
    for (const { dataDir, root } of live) {
      stopQuietly(bin, dataDir)
      rmSync(root, { recursive: true, force: true })
    }
  })
}
