// `relaykey audit verify` (audit/audit-verify-command.ts does the work).
import { parseCommandArgs } from './parse-args.js'

export async function run (args: string[]): Promise<number> {
  parseCommandArgs(args, {})
  const { runAuditVerify } = await import('../audit/audit-verify-command.js')
  return await runAuditVerify()
}
