// Embedded mode: secrets the operator did not give are generated once and kept under the
// data dir with mode 0600, so restarts keep working keys and the same admin token.
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import type { Config } from './config.js'

export interface EmbeddedSecretFiles {
  adminTokenFile: string
}

export function ensureEmbeddedSecrets (config: Config): EmbeddedSecretFiles {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  const adminTokenFile = join(config.dataDir, 'admin-token')
  if (config.adminToken === null) config.adminToken = readOrCreate(adminTokenFile, () => randomBytes(32).toString('base64url'))
  if (config.hmacSecret === null) {
    config.hmacSecret = Buffer.from(readOrCreate(join(config.dataDir, 'hmac-secret'), () => randomBytes(48).toString('base64url')), 'utf8')
  }
  if (config.masterKey === null) {
    config.masterKey = Buffer.from(readOrCreate(join(config.dataDir, 'master-key'), () => randomBytes(32).toString('hex')), 'hex')
  }
  return { adminTokenFile }
}

function readOrCreate (file: string, generate: () => string): string {
  try {
    return readFileSync(file, 'utf8').trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const value = generate()
  try {
    // 'wx': when two processes race, the first write wins and the second reads it back
    writeFileSync(file, value + '\n', { mode: 0o600, flag: 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return readFileSync(file, 'utf8').trim()
  }
  chmodSync(file, 0o600)
  return value
}
