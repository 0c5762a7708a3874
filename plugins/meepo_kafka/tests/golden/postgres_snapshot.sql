-- The PostgreSQL workload of the snapshot golden file (postgres_snapshot.jsonl): Debezium's
-- initial snapshot of tables with many rows, one row, a composite key and none, to record
-- where it puts its source.snapshot marks (first, first_in_data_collection, true,
-- last_in_data_collection, last). Rows are inserted in key order into fresh tables, so
-- Debezium's physical order is meepo's key order. The format is postgres_workload.sql's.
CREATE SCHEMA snap;
CREATE TABLE snap.a_empty (id integer PRIMARY KEY, name text);
CREATE TABLE snap.b_many (id integer PRIMARY KEY, name text);
CREATE TABLE snap.c_one (id integer PRIMARY KEY, name text);
CREATE TABLE snap.d_pairs (a integer, b varchar(5), name text, PRIMARY KEY (a, b));
CREATE TABLE snap.e_empty (id integer PRIMARY KEY, name text);
INSERT INTO snap.b_many SELECT g, 'row ' || g FROM generate_series(1, 7) AS g;
INSERT INTO snap.c_one VALUES (1, 'only');
INSERT INTO snap.d_pairs VALUES (1, 'a', 'x'), (1, 'b', 'y'), (2, 'a', 'z');
-- setup
UPDATE snap.b_many SET name = 'changed' WHERE id = 3;
-- step
INSERT INTO snap.c_one VALUES (99, 'sentinel');
