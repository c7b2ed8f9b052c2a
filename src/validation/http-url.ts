// A URL a setting points RelayKey at (a facilitator, an OAuth2 token endpoint): the checks every
// such setting shares.
import { ValidationError } from '../errors.js'
import { string } from './json-value.js'

/**
 * An absolute http(s) URL without credentials (settings are readable over the admin API;
 * secrets belong in a credential) and without a fragment; without a query either (RelayKey
 * appends paths) unless `query` (an OAuth2 token URL may have one). `new URL` drops an empty
 * `?` or `#`, so the raw text is checked too.
 */
export function httpUrl (value: unknown, field: string, query = false): URL {
  const s = string(value, field, 2048)
  let url: URL
  try {
    url = new URL(s)
  } catch {
    throw new ValidationError(field, 'must be an absolute http or https URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ValidationError(field, 'must be an absolute http or https URL')
  if (url.username !== '' || url.password !== '') throw new ValidationError(field, 'must not contain credentials; put them in a credential')
  if (!query && (url.search !== '' || s.includes('?'))) throw new ValidationError(field, 'must not contain a query string')
  if (url.hash !== '' || s.includes('#')) throw new ValidationError(field, 'must not contain a fragment')
  return url
}
