// A partner's status line may carry a reason phrase node:http cannot send back (non-ASCII, or
// a control character). The client still gets the partner's status and body, with node's
// standard phrase, and the partner sees the request once.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { rawRequest } from '../helpers/raw-http.js'

describe("a partner's reason phrase", () => {
  let rk: RelayKeyProcess
  let setup: GovernedSetup
  let partner: Server
  let statusLine: Buffer
  let requests = 0

  before(async () => {
    // raw bytes: node:http would refuse to send these status lines itself
    partner = createServer((socket: Socket) => {
      let seen = ''
      socket.on('data', (chunk) => {
        seen += chunk.toString('latin1')
        while (seen.includes('\r\n\r\n')) {
          seen = seen.slice(seen.indexOf('\r\n\r\n') + 4)
          requests++
          socket.write(Buffer.concat([statusLine, Buffer.from('\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok')]))
        }
      })
    })
    partner.listen(0, '127.0.0.1')
    await once(partner, 'listening')
    rk = await startRelayKey({ workers: 1 })
    setup = await setUpGovernedPartner(rk, { baseUrl: `http://127.0.0.1:${(partner.address() as { port: number }).port}` })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    partner.close()
  })

  const cases: Array<[string, Buffer, string]> = [
    ['UTF-8 text', Buffer.from('HTTP/1.1 201 Créé ✓', 'utf8'), 'Created'],
    ['a Latin-1 byte', Buffer.from('HTTP/1.1 201 Cr\xe9\xe9', 'latin1'), 'Created'],
    ['a control character', Buffer.from('HTTP/1.1 202 Acc\x01epted', 'latin1'), 'Accepted'],
    ['plain ASCII, passed through', Buffer.from('HTTP/1.1 200 Fine By Us', 'latin1'), 'Fine By Us'],
  ]
  for (const [what, line, expected] of cases) {
    it(`answers with the partner's status and body for ${what}`, { timeout: 10_000 }, async () => {
      statusLine = line
      requests = 0
      const res = await rawRequest(Number(new URL(rk.proxyUrl).port),
        `GET /proxy/acme/x HTTP/1.1\r\nHost: relaykey.local\r\nX-RelayKey: ${setup.key}\r\nConnection: close\r\n\r\n`)
      assert.equal(res.status, Number(line.toString('latin1').slice(9, 12)))
      assert.equal(res.statusText, expected)
      assert.equal(res.body, 'ok')
      assert.equal(requests, 1, 'sent to the partner once')
    })
  }
})
