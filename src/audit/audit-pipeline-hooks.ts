// What the audit pipeline tells its observer (the worker's metrics) as events go to the sink,
// from memory or from the log, and as the sink goes down and comes back.

/** synchronous observers for metrics; each call is one cheap increment elsewhere */
export interface AuditPipelineHooks {
  /** events the sink acknowledged (from memory or disk) and how long the write took */
  written? (events: number, ms: number): void
  /** events shipped from a log on disk rather than from memory */
  replayed? (events: number): void
  /** events lost: must never happen; alert on it */
  dropped? (events: number): void
  /** events the store refused for their content, set aside in the quarantine file */
  quarantined? (events: number): void
  sinkDown? (): void
  sinkUp? (): void
}
