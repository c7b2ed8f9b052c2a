// pino JSON logs. Redaction is compiled once here; call sites never log request headers,
// bodies or query strings in the first place, and redaction catches what slips through.
import pino, { type Logger } from 'pino'

export const REDACTED_PATHS = [
  'req.headers["x-relaykey"]', 'req.headers.authorization', 'req.headers.cookie', 'req.headers["payment-signature"]',
  'req.headers["x-payment"]', 'res.headers["set-cookie"]', 'headers["x-relaykey"]', 'headers.authorization',
  'headers.cookie', 'secret', '*.secret', 'key', '*.key', 'value', '*.value', 'token', '*.token', 'query', '*.query',
]

export function createLogger (level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, destination ?? pino.destination({ sync: false }))
}
