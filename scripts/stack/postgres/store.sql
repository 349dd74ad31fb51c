-- The local store's PostgreSQL, as FerretDB 1.24 (postgresql handler) uses it.
-- Run by ./plantwatch up as the cluster's superuser, idempotently, in the
-- database that holds plantwatch's FerretDB databases (one schema each).
--
-- 1. Roles: the consumer reads and writes (it owns the database, so FerretDB
--    can create its schemas and tables as that role); the metrics service may
--    only read. FerretDB's PLAIN authentication hands the client's user name
--    and password to PostgreSQL, so PostgreSQL enforces both.
-- 2. Indexes FerretDB can use: FerretDB creates btree indexes on
--    (_jsonb -> 'field'), but pushes equality filters down as
--    (_jsonb -> 'field') @> value, which only a GIN index serves. Every btree
--    index FerretDB creates on a collection table gets a GIN twin of its
--    leading key (the equality a query is built around; a second key such
--    as a resolution has too few values to be worth an index of its own).
-- 3. Linearizable updates: FerretDB applies an update as a read, then a
--    write of the whole document in another statement, so two concurrent
--    updates of one document can both pass a guard and the later write wins.
--    On collection tables, an update must raise the document's "_v" (when the
--    stored document has one); otherwise PostgreSQL refuses it and FerretDB
--    reports a write error, which the writer treats as a lost race.
--
-- psql variables: consumer_role, metrics_role, consumer_password,
-- metrics_password, dbname. The administrator (the cluster's superuser) runs it.

SELECT format('CREATE ROLE %I LOGIN', :'consumer_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'consumer_role') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'metrics_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'metrics_role') \gexec
ALTER ROLE :"consumer_role" LOGIN PASSWORD :'consumer_password';
ALTER ROLE :"metrics_role" LOGIN PASSWORD :'metrics_password';

ALTER DATABASE :"dbname" OWNER TO :"consumer_role";
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"dbname" TO :"metrics_role";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- read access to every schema and table the consumer creates from now on;
-- tables the administrator creates (tests, benchmarks) are the consumer's too
ALTER DEFAULT PRIVILEGES FOR ROLE :"consumer_role" GRANT SELECT ON TABLES TO :"metrics_role";
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO :"metrics_role";
ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO :"consumer_role";

CREATE OR REPLACE FUNCTION plantwatch_grant_schema_usage() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE SCHEMA' LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %s TO %I', r.object_identity,
                       current_setting('plantwatch.metrics_role'));
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %s TO %I', r.object_identity,
                       current_setting('plantwatch.consumer_role'));
    END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION plantwatch_version_must_grow() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF OLD._jsonb ? '_v' AND NOT (NEW._jsonb ? '_v' AND (NEW._jsonb -> '_v') > (OLD._jsonb -> '_v')) THEN
        RAISE EXCEPTION 'plantwatch: stale write refused: _v % is not above the stored %',
            coalesce(NEW._jsonb -> '_v', 'null'::jsonb), OLD._jsonb -> '_v'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE FUNCTION plantwatch_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    tbl regclass;
    am text;
    expr text;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        IF r.command_tag = 'CREATE TABLE' AND r.object_type = 'table'
           AND r.object_identity NOT LIKE '%._ferretdb_%' THEN
            EXECUTE format('CREATE TRIGGER plantwatch_version_must_grow BEFORE UPDATE ON %s '
                           'FOR EACH ROW EXECUTE FUNCTION plantwatch_version_must_grow()',
                           r.object_identity);
        ELSIF r.command_tag = 'CREATE INDEX' AND r.object_type = 'index' THEN
            SELECT i.indrelid, a.amname INTO tbl, am
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
            WHERE i.indexrelid = r.objid;
            CONTINUE WHEN am IS DISTINCT FROM 'btree' OR tbl::text LIKE '%._ferretdb_%'
                OR tbl::text LIKE '_ferretdb_%';
            expr := pg_get_indexdef(r.objid, 1, true);
            CONTINUE WHEN expr NOT LIKE '%_jsonb%';
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((%s) jsonb_path_ops)',
                           left((SELECT relname FROM pg_class WHERE oid = r.objid), 58) || '_gin',
                           tbl, expr);
        END IF;
    END LOOP;
END
$fn$;

DROP EVENT TRIGGER IF EXISTS plantwatch_on_ddl;
CREATE EVENT TRIGGER plantwatch_on_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE INDEX') EXECUTE FUNCTION plantwatch_on_ddl();
DROP EVENT TRIGGER IF EXISTS plantwatch_grant_schema_usage;
CREATE EVENT TRIGGER plantwatch_grant_schema_usage ON ddl_command_end
    WHEN TAG IN ('CREATE SCHEMA') EXECUTE FUNCTION plantwatch_grant_schema_usage();
-- Every query plantwatch sends has an index (see 2.); a sequential scan would
-- detoast every (large, compressed) document of a table to test one field,
-- which the planner underestimates on small tables.
ALTER DATABASE :"dbname" SET enable_seqscan = off;
ALTER DATABASE :"dbname" SET plantwatch.metrics_role = :'metrics_role';
ALTER DATABASE :"dbname" SET plantwatch.consumer_role = :'consumer_role';
