import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { VirtualKeyCodec, VIRTUAL_KEY_LENGTH } from '../../src/keys/virtual-key.js'

const codec = new VirtualKeyCodec(randomBytes(32))

describe('virtual keys', () => {
  it('issues vk_ keys whose digest verify() reproduces', () => {
    const issued = codec.issue()
    assert.match(issued.key, /^vk_[0-9A-Za-z]{28}$/)
    assert.equal(issued.key.length, VIRTUAL_KEY_LENGTH)
    assert.ok(issued.key.startsWith(issued.prefix))
    assert.deepEqual(codec.verify(issued.key), issued.digest)
  })

  it('never issues the same key twice', () => {
    const keys = new Set(Array.from({ length: 2000 }, () => codec.issue().key))
    assert.equal(keys.size, 2000)
  })

  it('rejects every single-character typo', () => {
    const { key } = codec.issue()
    const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
    for (let i = 3; i < key.length; i++) {
      const replacement = alphabet[(alphabet.indexOf(key[i]!) + 7) % 62]!
      assert.equal(codec.verify(key.slice(0, i) + replacement + key.slice(i + 1)), null, `typo at ${i}`)
    }
    // swapped neighbours
    assert.equal(codec.verify(key.slice(0, 5) + key[6] + key[5] + key.slice(7)), key[5] === key[6] ? codec.verify(key) : null)
  })

  it('rejects keys forged without the pepper and keys of another deployment', () => {
    const other = new VirtualKeyCodec(randomBytes(32))
    for (let i = 0; i < 50; i++) assert.equal(codec.verify(other.issue().key), null)
  })

  it('rejects malformed input before any hashing', () => {
    for (const bad of ['', 'vk_', 'sk_' + 'a'.repeat(28), 'vk_' + 'a'.repeat(27), 'vk_' + 'a'.repeat(29), 'vk_' + '-'.repeat(28), 'VK_' + 'a'.repeat(28)]) {
      assert.equal(codec.verify(bad), null, bad)
    }
  })

  it('refuses a pepper shorter than 32 bytes', () => {
    assert.throws(() => new VirtualKeyCodec(randomBytes(16)), /at least 32 bytes/)
  })
})
