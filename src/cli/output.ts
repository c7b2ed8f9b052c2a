// What the CLI prints: aligned tables for people, JSON (one document) for scripts.
export function printJson (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/** columns: [heading, value of a row]; empty rows print the headings only */
export function printTable<T> (rows: readonly T[], columns: ReadonlyArray<[string, (row: T) => unknown]>): void {
  const cells = rows.map((row) => columns.map(([, pick]) => cellText(pick(row))))
  const widths = columns.map(([heading], i) => Math.max(heading.length, ...cells.map((c) => c[i]!.length)))
  const line = (values: string[]): string => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd()
  process.stdout.write(line(columns.map(([heading]) => heading.toUpperCase())) + '\n')
  for (const c of cells) process.stdout.write(line(c) + '\n')
}

function cellText (value: unknown): string {
  return value !== null && typeof value === 'object' ? JSON.stringify(value) : safeText(value)
}

/** text from the API fit for a terminal: C0, DEL and C1 (\x9b opens an escape) replaced, as audit paths come from clients */
export function safeText (value: unknown): string {
  if (value === null || value === undefined) return '-'
  return String(value).replace(/[\x00-\x1f\x7f-\x9f]/g, '?')
}
