// A vendor that authenticates callers by client certificate only: a missing certificate or one not
// issued by clientCa never reaches `received`; the server's side of each refusal lands in
// `rejectedHandshakes`. What the caller sees differs: no certificate gets a TLS alert
// (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED), a foreign one only a dropped socket (ECONNRESET),
// because Node verifies client certificates after the handshake and then destroys the socket.
import { startHttpsMock, type HttpsMock, type VendorRequest } from './https-mock.js'
import type { PemPair } from '../test-certificates.js'

export interface MtlsRequest extends VendorRequest {
  clientCn: string
}

export interface MtlsMockOptions {
  /** the CA whose client certificates are accepted */
  clientCa: PemPair
  serverCert?: PemPair
}

export type MtlsMock = HttpsMock<MtlsRequest>

export async function startMtlsMock (options: MtlsMockOptions): Promise<MtlsMock> {
  return await startHttpsMock<MtlsRequest>({
    serverCert: options.serverCert,
    tls: { requestCert: true, rejectUnauthorized: true, ca: options.clientCa.cert },
  }, (request) => {
    // rejectUnauthorized guarantees a verified certificate by the time a request arrives
    const clientCn = request.clientCn ?? ''
    return { record: { ...request, clientCn }, answer: { status: 200, json: { ok: true, clientCn } } }
  })
}
