-- The application role may read which migrations are applied, so a node running as relaykey_app
-- with RELAYKEY_AUTO_MIGRATE on (the default) starts when nothing is pending, instead of failing
-- on the runner's CREATE TABLE. Applying migrations still needs the administrator.
GRANT SELECT ON schema_migrations TO relaykey_app;
