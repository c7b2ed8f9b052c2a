#!/usr/bin/env node
// A tiny stand-in vendor API for the README walkthrough (no internet needed).
// It answers every request with what it received — except the credential's value, which it
// only confirms, so you can see RelayKey injected it: `node scripts/mock-partner.js [port]`.
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? process.env.MOCK_PARTNER_PORT ?? 9090)
const EXPECTED = process.env.MOCK_PARTNER_TOKEN ?? 'demo-vendor-secret'

createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    const token = req.headers['x-app-token']
    const authorised = token === EXPECTED
    const body = JSON.stringify({
      vendor: 'mock-kyc',
      method: req.method,
      path: req.url,
      credential: authorised ? 'valid X-App-Token received' : 'missing or wrong X-App-Token',
      saw_virtual_key: req.headers['x-relaykey'] !== undefined,
    }, null, 2) + '\n'
    res.writeHead(authorised ? 200 : 401, { 'content-type': 'application/json' })
    res.end(body)
  })
}).listen(port, '127.0.0.1', () => console.log(`mock partner listening on http://127.0.0.1:${port}`))
