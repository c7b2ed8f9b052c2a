// The ConfigError loadConfig throws for `env`; fails the test when it accepts it.
import assert from 'node:assert/strict'
import { loadConfig } from '../../src/config/config.js'
import { ConfigError } from '../../src/errors.js'

export function configRefusal (env: Record<string, string>): ConfigError {
  try {
    loadConfig(env)
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    return err
  }
  assert.fail('expected a ConfigError')
}
