-- The PostgreSQL workload of the incremental snapshot golden file
-- (postgres_incremental.jsonl): Debezium streams from the start (snapshot.mode=no_data),
-- an execute-snapshot signal asks for an incremental snapshot of incr.items, and its rows
-- come as reads marked "incremental". The format is postgres_workload.sql's; the sentinel
-- is in its own table, so that no stream row of incr.items races the snapshot's.
CREATE SCHEMA incr;
CREATE TABLE incr.items (id integer PRIMARY KEY, name text, n numeric(6, 2));
CREATE TABLE incr.done (id integer PRIMARY KEY, name text);
CREATE TABLE incr.dbz_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL,
                              data varchar(2048));
INSERT INTO incr.items SELECT g, 'row ' || g, g * 1.5 FROM generate_series(1, 5) AS g;
-- setup
INSERT INTO incr.dbz_signal VALUES ('adhoc-1', 'execute-snapshot',
    '{"data-collections": ["incr.items"], "type": "incremental"}');
-- step
INSERT INTO incr.done VALUES (1, 'sentinel');
