// `relaykey audit verify`: walks every writer's hash chain in the audit store RelayKey uses —
// PostgreSQL at DATABASE_URL, else the embedded file in RELAYKEY_DATA_DIR — and reports the
// first altered or missing row (or block) of each, then the admin change log's chain the same
// way. Exit 0: both intact; 1: a problem; 2: usage.
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { EMBEDDED_DB_FILE } from '../store/open-control-store.js'
import { verifyChains, type ChainProblem, type VerifyResult, type WriterSummary } from './audit-chain.js'
import { readPostgresAuditBlocks, readPostgresAuditEvents, readSqliteAuditBlocks, readSqliteAuditEvents } from './audit-event-readers.js'
import { clientOptions } from '../store/postgres/client-options.js'
import { verifyChangeChain, type ChangeChainProblem, type ChangeChainResult } from '../admin-changes/change-chain.js'
import { readPostgresChanges, readSqliteChanges } from '../admin-changes/change-log-readers.js'

/** needs only DATABASE_URL or RELAYKEY_DATA_DIR, like migrate: no secrets, no running proxy */
export async function runAuditVerify (env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const url = env.DATABASE_URL?.trim()
  let result: VerifyResult
  let changes: ChangeChainResult
  if (url !== undefined && url !== '') {
    [result, changes] = await verifyPostgres(url)
  } else {
    const file = join(resolve(env.RELAYKEY_DATA_DIR ?? './data'), EMBEDDED_DB_FILE)
    if (!existsSync(file)) {
      console.error(`relaykey: no DATABASE_URL and no embedded database at ${file}`)
      return 2
    }
    [result, changes] = await verifySqlite(file)
  }
  for (const writer of result.writers) {
    console.log(describeWriter(writer))
    // block-chained writers are checked to the end: every later problem too
    for (const p of result.problems) if (p.writer_id === writer.writer_id && p !== writer.problem) console.log(`  and ${describeProblem(p)}`)
  }
  const problems = result.writers.filter((w) => w.problem !== null).length
  console.log(`audit verify: ${result.writers.length} writers, ${result.events} events, ` +
    (result.ok ? 'intact' : `${problems} broken chain${problems === 1 ? '' : 's'}`))
  console.log(`admin changes: ${changes.changes} changes, last seq ${changes.last_seq}, ` +
    (changes.problem === null ? 'intact' : describeChangeProblem(changes.problem)))
  return result.ok && changes.problem === null ? 0 : 1
}

function describeChangeProblem (p: ChangeChainProblem): string {
  switch (p.kind) {
    case 'altered': return `ALTERED change seq ${p.seq} id ${p.id}`
    case 'missing': return `MISSING change seq ${p.seq} (the gap ends before id ${p.id})`
    case 'broken_link': return `BROKEN LINK at change seq ${p.seq} id ${p.id} (replaced or inserted)`
  }
}

async function verifyPostgres (url: string): Promise<[VerifyResult, ChangeChainResult]> {
  const sql = postgres(url, clientOptions({ max: 1 }))
  try {
    return [await verifyChains(readPostgresAuditEvents(sql), await readPostgresAuditBlocks(sql)), await verifyChangeChain(readPostgresChanges(sql))]
  } finally {
    await sql.end({ timeout: 5 })
  }
}

async function verifySqlite (file: string): Promise<[VerifyResult, ChangeChainResult]> {
  // read-only: verifying must not migrate or otherwise touch the file it is judging
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    return [await verifyChains(readSqliteAuditEvents(db), readSqliteAuditBlocks(db)), await verifyChangeChain(readSqliteChanges(db))]
  } finally {
    db.close()
  }
}

function describeWriter (w: WriterSummary): string {
  const head = `writer ${w.writer_id}: ${w.events} events, last seq ${w.last_seq}`
  return w.problem === null ? `${head}, intact` : `${head}, ${describeProblem(w.problem)}`
}

function describeProblem (p: ChainProblem): string {
  switch (p.kind) {
    case 'altered':
      return p.block === undefined
        ? `ALTERED row id ${p.id} seq ${p.seq} writer ${p.writer_id}`
        : `ALTERED block seq ${p.block.first_seq}–${p.block.last_seq} writer ${p.writer_id}: a row in it was changed (its first row: id ${p.id})`
    case 'missing':
      return p.id === ''
        ? `MISSING rows from seq ${p.seq} writer ${p.writer_id} (its blocks name rows that are gone)`
        : `MISSING row seq ${p.seq} writer ${p.writer_id} (the gap ends before id ${p.id})`
    case 'broken_link':
      return `BROKEN LINK at row id ${p.id} seq ${p.seq} writer ${p.writer_id} (replaced or inserted row)`
  }
}
