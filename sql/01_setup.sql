-- Installing gsb, and every call that needs an initialised site failing
-- cleanly before gsb.init_site().
CREATE EXTENSION gsb;

-- try(query): runs a statement and shows its error as SQLSTATE, message,
-- detail and hint, without the line numbers of PL/pgSQL contexts.
CREATE FUNCTION try(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    EXECUTE query;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(E'\nDETAIL: ' || nullif(det, ''), '')
                             || coalesce(E'\nHINT: ' || nullif(hnt, ''), '');
END
$$;

\dx gsb

-- The SPEC's signatures.
SELECT p.oid::regprocedure AS function, pg_get_function_result(p.oid) AS returns
  FROM pg_proc p
 WHERE p.pronamespace = 'gsb'::regnamespace AND p.proname !~ '^_'
 ORDER BY p.proname;

-- The built-in tables, registered in their modes.
SELECT relation, mode FROM gsb.replicated_tables ORDER BY relation::text;

SELECT try($q$SELECT gsb.site_name()$q$);
SELECT try($q$SELECT gsb.site_role()$q$);
SELECT try($q$SELECT gsb.create_account('ann@example.com', 'Ann')$q$);
SELECT try($q$INSERT INTO gsb.accounts (email) VALUES ('bob@example.com')$q$);
SELECT count(*) AS accounts FROM gsb.accounts;
