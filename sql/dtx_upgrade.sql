-- Installing 1.0 and updating to 1.2 (through 1.1) gives the same objects as installing 1.2.
SELECT current_database() AS regress_db \gset
CREATE DATABASE dtx_upgraded;
CREATE DATABASE dtx_fresh;
\c dtx_upgraded
CREATE EXTENSION pg_dtx VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_dtx';
ALTER EXTENSION pg_dtx UPDATE TO '1.2';
SELECT extversion FROM pg_extension WHERE extname = 'pg_dtx';
\set describe 'SELECT string_agg(d, E''\n'' ORDER BY d) FROM (SELECT pg_describe_object(classid, objid, 0) || coalesce('' '' || (SELECT pg_get_functiondef(objid) FROM pg_proc WHERE classid = ''pg_proc''::regclass AND oid = objid AND prokind = ''f''), '''') || coalesce('' '' || (SELECT pg_get_viewdef(objid) FROM pg_class WHERE classid = ''pg_class''::regclass AND oid = objid AND relkind = ''v''), '''') || coalesce('' '' || (SELECT string_agg(attname || '' '' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN '' not null'' ELSE '''' END, '', '' ORDER BY attnum) FROM pg_attribute WHERE classid = ''pg_class''::regclass AND attrelid = objid AND attnum > 0), '''') || coalesce('' '' || (SELECT relacl::text FROM pg_class WHERE classid = ''pg_class''::regclass AND oid = objid), '''') || coalesce('' '' || (SELECT reloptions::text FROM pg_class WHERE classid = ''pg_class''::regclass AND oid = objid), '''') || coalesce('' '' || (SELECT proacl::text FROM pg_proc WHERE classid = ''pg_proc''::regclass AND oid = objid), '''') AS d FROM pg_depend WHERE refclassid = ''pg_extension''::regclass AND refobjid = (SELECT oid FROM pg_extension WHERE extname = ''pg_dtx'') AND deptype = ''e'') o'
SELECT md5((:describe)) AS upgraded \gset
-- (17+ also records the row and array types of the tables: not counted)
SELECT count(*) AS upgraded_objects FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND classid <> 'pg_type'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_dtx');
\c dtx_fresh
CREATE EXTENSION pg_dtx;
SELECT extversion FROM pg_extension WHERE extname = 'pg_dtx';
SELECT md5((:describe)) AS fresh \gset
SELECT count(*) AS fresh_objects FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND classid <> 'pg_type'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_dtx');
SELECT :'upgraded' = :'fresh' AS same_objects;
\c :regress_db
DROP DATABASE dtx_upgraded;
DROP DATABASE dtx_fresh;
