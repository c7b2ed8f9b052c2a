// A throwaway PKI for HTTPS and mTLS tests, made with the openssl CLI at run time so no key or
// certificate ever lands in the repository. EC P-256 keys (PKCS#8 PEM): fast to generate.
// The files live in a temp dir removed when the process exits; callers only see PEM strings.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface PemPair {
  cert: string
  key: string
}

export interface TestPki {
  /** root CA that signs server, wrongHostServer and expiredServer */
  ca: PemPair
  /** a CA nobody trusts: for "unknown CA" tests */
  otherCa: PemPair
  /** signed by ca; SAN IP:127.0.0.1, DNS:localhost; valid now */
  server: PemPair
  /** signed by ca; SAN DNS:wrong.example only, so it never matches 127.0.0.1 or localhost */
  wrongHostServer: PemPair
  /** signed by ca; SAN IP:127.0.0.1, DNS:localhost; valid 2020-01-01 to 2021-01-01 */
  expiredServer: PemPair
  /** signed by otherCa; SAN IP:127.0.0.1, DNS:localhost; valid now: fails only on its issuer */
  unknownCaServer: PemPair
  /** CA for client certificates (mTLS) */
  clientCa: PemPair
  /** a client certificate (extendedKeyUsage clientAuth) signed by clientCa; one per name */
  client (commonName: string): PemPair
  /** a client certificate signed by otherCa: the wrong client certificate */
  strangerClient: PemPair
}

// One section per certificate profile; SANs are fixed per profile so no -addext is needed
// (`openssl ca`, used for the expired one, has no -addext).
const CONFIG = `
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, DNS:localhost
[ wrong_host_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example
[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# only for the expired certificate: openssl 3.0's x509 and req cannot set past dates, ca can
[ ca ]
default_ca = test_ca
[ test_ca ]
database = index.txt
new_certs_dir = .
rand_serial = yes
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
`

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc']

let cached: TestPki | undefined

export function makeTestPki (): TestPki {
  cached ??= generate()
  return cached
}

function generate (): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-pki-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'openssl.cnf'), CONFIG)
  writeFileSync(join(dir, 'index.txt'), '')
  const openssl = (args: string[]): void => {
    execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  }
  const read = (name: string): PemPair => ({
    cert: readFileSync(join(dir, `${name}.crt`), 'utf8'),
    key: readFileSync(join(dir, `${name}.key`), 'utf8'),
  })
  let serial = 0
  const selfSigned = (name: string, cn: string): PemPair => {
    openssl(['req', '-x509', '-config', 'openssl.cnf', '-extensions', 'ca_ext', ...EC_KEY,
      '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', subject(cn), '-days', '3650'])
    return read(name)
  }
  // req -x509 -CA (new in 3.0) makes the key and the signed certificate in one process
  const signed = (issuer: string, profile: string, cn: string): PemPair => {
    const name = `leaf-${++serial}`
    openssl(['req', '-x509', '-config', 'openssl.cnf', '-extensions', profile, ...EC_KEY,
      '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', subject(cn), '-days', '30',
      '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`])
    return read(name)
  }

  const ca = selfSigned('ca', 'RelayKey Test CA')
  const otherCa = selfSigned('other-ca', 'RelayKey Unrelated CA')
  const clientCa = selfSigned('client-ca', 'RelayKey Test Client CA')

  openssl(['req', '-new', '-config', 'openssl.cnf', ...EC_KEY, '-keyout', 'expired.key', '-out', 'expired.csr',
    '-subj', subject('expired.test')])
  openssl(['ca', '-batch', '-config', 'openssl.cnf', '-extensions', 'server_ext', '-cert', 'ca.crt', '-keyfile', 'ca.key',
    '-in', 'expired.csr', '-out', 'expired.crt', '-notext', '-startdate', '20200101000000Z', '-enddate', '20210101000000Z'])

  const clients = new Map<string, PemPair>()
  return {
    ca,
    otherCa,
    server: signed('ca', 'server_ext', 'localhost'),
    wrongHostServer: signed('ca', 'wrong_host_ext', 'wrong.example'),
    expiredServer: read('expired'),
    unknownCaServer: signed('other-ca', 'server_ext', 'localhost'),
    clientCa,
    client (commonName) {
      let pair = clients.get(commonName)
      if (pair === undefined) {
        pair = signed('client-ca', 'client_ext', commonName)
        clients.set(commonName, pair)
      }
      return pair
    },
    strangerClient: signed('other-ca', 'client_ext', 'stranger'),
  }
}

// -subj takes /CN=value; a slash, plus, equals or backslash inside the value must be escaped
function subject (cn: string): string {
  return `/CN=${cn.replace(/[\\/+=]/g, (c) => `\\${c}`)}`
}
