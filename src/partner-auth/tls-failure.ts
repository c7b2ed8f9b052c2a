// Why a TLS connection to a partner failed, in words an operator acts on: the partner's
// certificate is signed by a CA RelayKey does not trust (set the partner's `tls.ca`), names
// another host, has expired, or the handshake itself failed (no common protocol version). An
// mTLS partner refusing the client certificate closes the connection after the handshake, which
// undici reports as a closed socket, not as TLS: that is an ordinary connection failure.
export type TlsFailureReason = 'unknown_ca' | 'hostname_mismatch' | 'certificate_expired' | 'certificate_not_yet_valid' | 'handshake_failed'

export function tlsFailureReason (err: unknown): TlsFailureReason | null {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return null
  switch (code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return 'unknown_ca'
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'hostname_mismatch'
    case 'CERT_HAS_EXPIRED':
      return 'certificate_expired'
    case 'CERT_NOT_YET_VALID':
      return 'certificate_not_yet_valid'
    default:
      return code.startsWith('ERR_SSL_') || code === 'EPROTO' ? 'handshake_failed' : null
  }
}
