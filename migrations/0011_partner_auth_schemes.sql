-- Partner auth beyond one static secret (docs/partners.md): a credential may hold several
-- secret parts (a signing key, an OAuth2 client id and secret, a client certificate and its key,
-- a private key), each a StoredSecret reference like `secret`; `secret` may be absent where the
-- partner's auth needs none. A partner may name its own CA bundle for HTTPS.
ALTER TABLE credentials ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE credentials
  ADD COLUMN IF NOT EXISTS secret_parts jsonb NOT NULL DEFAULT '{}'
    CONSTRAINT credentials_secret_parts_object CHECK (jsonb_typeof(secret_parts) = 'object');
ALTER TABLE partners ADD COLUMN IF NOT EXISTS tls jsonb;
