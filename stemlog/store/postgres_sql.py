"""The SQL of the PostgreSQL store: the run index's tables, the append function,
the claim statement and the log's followers (templates formatted by
:class:`stemlog.store.postgres_recorder.StemlogPostgresRecorder` with its
schema's names)."""

from __future__ import annotations

from stemlog.store.catalog import catalog_ddl

INDEX_TABLE = "stemlog_run_index"
FOLLOWERS_TABLE = "stemlog_followers"
CLOCK_MICROS = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
FOLLOW = (
    "INSERT INTO {followers} (origin, until) VALUES (%s, {clock_micros} + %s) "
    "ON CONFLICT (origin) DO UPDATE SET until = excluded.until"
)
UNFOLLOW = "DELETE FROM {followers} WHERE origin = %s OR until < {clock_micros}"
READY_CHANNEL = "stemlog_ready"
"""NOTIFYed when an append leaves a run any worker may claim now."""

DDL = (
    "CREATE TABLE IF NOT EXISTS {index} (run_id text PRIMARY KEY, version bigint NOT NULL, "
    "served text NOT NULL, "
    "ready_at bigint, due_at bigint, claimed_by text, claim_expires bigint, waiting_on text)",
    "CREATE INDEX IF NOT EXISTS stemlog_run_index_due ON {index} (due_at) WHERE due_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS stemlog_run_index_waiting ON {index} (waiting_on) "
    "WHERE waiting_on IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS stemlog_run_index_claims ON {index} (claimed_by) "
    "WHERE claimed_by IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS {meta} (backfilled integer NOT NULL)",
    # The processes that follow the log now (until when): appends notify its channels
    # only while somebody does (every listener in the database wakes for each NOTIFY).
    "CREATE TABLE IF NOT EXISTS {followers} (origin text PRIMARY KEY, until bigint NOT NULL)",
    catalog_ddl("{catalog}"),
    # When a row may be claimed (stemlog.store.index.due_of).
    "CREATE OR REPLACE FUNCTION {due}(ready bigint, claimer text, expires bigint) "
    "RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT CASE "
    "WHEN claimer IS NULL OR expires IS NULL THEN ready WHEN ready IS NULL THEN expires "
    "ELSE greatest(ready, expires) END $$",
)

APPEND = """
CREATE OR REPLACE FUNCTION {append}(
    events {event_type}[], e_parts integer[],
    e_run text[], e_version bigint[], e_served text[], e_ready bigint[],
    e_waiting text[], e_mode text[], e_child text[], e_parent text[], e_parent_topic text[],
    owner text, claim_until bigint, now_at bigint, inserting boolean, origin text,
    OUT ids bigint[], OUT held text[], OUT claimable boolean)
LANGUAGE plpgsql SET lock_timeout = {lock_timeout} AS $BODY$
DECLARE
    i integer;
    claimer text;
    expires bigint;
    stored_version bigint;
    present boolean;
    ready bigint;
    due bigint;
    followed boolean := EXISTS (SELECT 1 FROM {followers}
                                WHERE until > {clock_micros});
BEGIN
    ids := '{{}}';
    held := '{{}}';
    claimable := false;
    IF coalesce(array_length(events, 1), 0) = 0 THEN
        LOCK TABLE {first_table} IN EXCLUSIVE MODE;  -- in turn with the appends
    END IF;
{partitions}
    FOR i IN 1 .. coalesce(array_length(e_run, 1), 0) LOOP
        IF e_mode[i] = 'end' THEN
            DELETE FROM {index} WHERE run_id = e_run[i];
            IF e_parent[i] IS NOT NULL THEN
                UPDATE {index} SET
                    ready_at = CASE WHEN ready_at IS NULL OR ready_at > now_at THEN now_at
                               ELSE ready_at END,
                    due_at = {due}(CASE WHEN ready_at IS NULL OR ready_at > now_at THEN now_at
                                   ELSE ready_at END, claimed_by, claim_expires)
                WHERE run_id = e_parent[i] AND waiting_on = e_parent_topic[i];
                IF FOUND AND EXISTS (SELECT 1 FROM {index} WHERE run_id = e_parent[i]
                                     AND claimed_by IS NULL) THEN
                    claimable := true;
                END IF;
            END IF;
            CONTINUE;
        END IF;
        claimer := NULL;
        expires := NULL;
        stored_version := NULL;
        SELECT claimed_by, claim_expires, version INTO claimer, expires, stored_version
            FROM {index} WHERE run_id = e_run[i] FOR UPDATE;
        present := FOUND;
        IF NOT present AND NOT inserting THEN
            CONTINUE;  -- the run ended since that state: no row to bring back
        END IF;
        IF e_mode[i] = 'take' AND owner IS NOT NULL
                AND (claimer IS NULL OR claimer = owner OR coalesce(expires, 0) < now_at) THEN
            claimer := owner;
            expires := claim_until;
            held := held || e_run[i];
        ELSIF e_mode[i] = 'release' AND claimer = owner THEN
            claimer := NULL;
            expires := NULL;
        END IF;
        IF present AND stored_version > e_version[i] THEN
            -- another writer moved the run on since this state: only the claim changes
            UPDATE {index} SET claimed_by = claimer, claim_expires = expires,
                due_at = {due}(ready_at, claimer, expires)
            WHERE run_id = e_run[i] RETURNING due_at INTO due;
            IF claimer IS NULL AND due IS NOT NULL AND due <= now_at THEN
                claimable := true;
            END IF;
            CONTINUE;
        END IF;
        ready := e_ready[i];
        IF e_child[i] IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM {index} WHERE run_id = e_child[i]) THEN
            ready := now_at;
        END IF;
        due := {due}(ready, claimer, expires);
        INSERT INTO {index} AS t
            (run_id, version, served, ready_at, due_at, claimed_by, claim_expires, waiting_on)
        VALUES (e_run[i], e_version[i], e_served[i], ready, due, claimer, expires, e_waiting[i])
        ON CONFLICT (run_id) DO UPDATE SET version = excluded.version, served = excluded.served,
            ready_at = excluded.ready_at, due_at = excluded.due_at,
            claimed_by = excluded.claimed_by, claim_expires = excluded.claim_expires,
            waiting_on = excluded.waiting_on;
        IF claimer IS NULL AND due IS NOT NULL AND due <= now_at THEN
            claimable := true;
        END IF;
    END LOOP;
    IF claimable THEN
        PERFORM pg_notify({ready_channel}, origin);
    END IF;
END;
$BODY$
"""

PARTITION = """
    IF {number} = ANY(e_parts) THEN
        LOCK TABLE {table} IN EXCLUSIVE MODE;
        WITH inserted AS (
            INSERT INTO {table} (originator_id, originator_version, topic, state)
            SELECT (events[n]).originator_id, (events[n]).originator_version,
                   (events[n]).topic, (events[n]).state
            FROM generate_subscripts(e_parts, 1) AS n WHERE e_parts[n] = {number} ORDER BY n
            RETURNING notification_id)
        SELECT ids || coalesce(array_agg(notification_id ORDER BY notification_id), '{{}}')
            INTO ids FROM inserted;
        IF followed THEN
            PERFORM pg_notify({channel}, origin);
        END IF;
    END IF;"""
"""The insert into one partition: its table locked (partitions in ascending order,
so two appends never deadlock), its facts in order, its channel notified if anybody
follows the log."""

CALL_APPEND = (
    "SELECT ids, held, claimable FROM {append}(%s::{event_type}[], %s::integer[], %s::text[], "
    "%s::bigint[], "
    "%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text, %s::bigint, %s::bigint, %s::boolean, %s::text)"
)

CLAIM = """
WITH picked AS (
    SELECT run_id, claimed_by, claim_expires, version FROM {index}
    WHERE due_at <= %(now)s AND served = ANY(%(serves)s)
    ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED),
claimed AS (
    UPDATE {index} AS t SET claimed_by = %(owner)s, claim_expires = %(until)s,
        due_at = {due}(t.ready_at, %(owner)s, %(until)s)
    FROM picked WHERE t.run_id = picked.run_id
    RETURNING t.run_id, picked.claimed_by AS previous, picked.claim_expires AS previous_expires,
        picked.version)
SELECT run_id, previous, previous_expires, version, NULL::bigint AS next_due FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, (SELECT min(due_at) FROM {index}
                          WHERE due_at > %(now)s AND served = ANY(%(serves)s))
"""
"""One statement: claim a batch of due rows (skipping those other workers are
claiming) and say when the next one of these workflow versions is due."""
