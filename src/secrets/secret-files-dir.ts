// RELAYKEY_SECRET_FILES_DIR: the one directory the `file` secret provider may read. Without it
// the provider reads nothing: a file reference is a path an admin-token holder chooses, and
// "any file the process can read" includes the data dir's master key and admin token, /proc and
// /sys. The check is made twice: on the path as written when a credential is saved (a clear 400),
// and on the real path, symlinks resolved, each time the secret is read (what actually guards).
import { constants, realpathSync } from 'node:fs'
import { open, readlink, realpath } from 'node:fs/promises'
import { isAbsolute, relative, resolve, sep } from 'node:path'

/** why RELAYKEY_SECRET_FILES_DIR cannot be used as given, or null when it can */
export function secretFilesDirProblem (dir: string, dataDir: string): string | null {
  if (!isAbsolute(dir)) return 'must be an absolute path'
  // compared as they really are: a symlink must not hide the data dir inside the directory
  const d = realOrAsIs(resolve(dir))
  dataDir = realOrAsIs(dataDir)
  if (d === sep) return 'must not be the root directory'
  for (const system of ['/proc', '/sys', '/dev']) {
    if (isWithin(d, system) || d === system) return `must not be under ${system}`
  }
  if (d === dataDir || isWithin(d, dataDir) || isWithin(dataDir, d)) return 'must not hold or be inside RELAYKEY_DATA_DIR (its master key and admin token are files there)'
  return null
}

/** a reference as an admin saves it: under the directory, as written */
export function secretFileRefProblem (ref: string, dir: string | null): string | null {
  if (dir === null) return 'the file secret provider is off: set RELAYKEY_SECRET_FILES_DIR to the directory secret files live in'
  if (!isWithin(resolve(ref), dir)) return `must be a file under RELAYKEY_SECRET_FILES_DIR (${dir})`
  return null
}

/**
 * The contents of `ref` when the file it really is lies under the directory's real path, else
 * null. The check is made on the open descriptor (/proc/self/fd), so a path component swapped
 * for a symlink between a check and the read cannot redirect it.
 */
export async function readSecretFile (ref: string, dir: string): Promise<string | null> {
  const [file, root] = await Promise.all([realpath(ref), realpath(dir)])
  if (!isWithin(file, root)) return null
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => file)
    if (!isWithin(opened, root)) return null
    return await handle.readFile('utf8')
  } finally {
    await handle.close()
  }
}

function realOrAsIs (path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}

function isWithin (path: string, dir: string): boolean {
  const rel = relative(dir, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)
}
