// One embedded node per data directory: two processes on one SQLite file would each keep their
// own key cache, invalidations and leases, so a key revoked through one kept working through the
// other (for up to the cache TTL). The primary holds `relaykey.lock` (its pid) for its life; a
// second start refuses, naming the holder. A lock left by a process that is gone (kill -9) is
// taken over.
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError'
}

export const LOCK_FILE = 'relaykey.lock'

/** takes the lock or throws DataDirLockedError; returns the release */
export function lockDataDir (dataDir: string, pid = process.pid): () => void {
  const lock = join(dataDir, LOCK_FILE)
  const mine = join(dataDir, `${LOCK_FILE}.${pid}`)
  writeFileSync(mine, `${pid}\n`, { mode: 0o600 })
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        // a hard link appears whole or not at all: two starters never both get it
        linkSync(mine, lock)
        return () => release(lock, pid)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const holder = holderOf(lock)
      if (holder !== null && holder !== pid && isAlive(holder)) {
        throw new DataDirLockedError(`${dataDir} is in use by another RelayKey process (pid ${holder}); one embedded node per data directory (stop it, or give this one its own RELAYKEY_DATA_DIR)`)
      }
      // its holder is gone: the lock is stale
      try { unlinkSync(lock) } catch {}
    }
    throw new DataDirLockedError(`${dataDir}: could not take ${LOCK_FILE} (another process is starting on it)`)
  } finally {
    try { unlinkSync(mine) } catch {}
  }
}

function holderOf (lock: string): number | null {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function release (lock: string, pid: number): void {
  if (holderOf(lock) === pid) {
    try { unlinkSync(lock) } catch {}
  }
}
