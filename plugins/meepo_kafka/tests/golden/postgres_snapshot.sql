-- The PostgreSQL workload of the snapshot golden file (postgres_snapshot.jsonl): Debezium's
-- initial snapshot of tables with many rows, one row, a composite key and none, to record
-- where it puts its source.snapshot marks (first, first_in_data_collection, true,
-- last_in_data_collection, last). Rows are inserted in key order into fresh tables, so
-- Debezium's physical order is meepo's key order. The format is postgres_workload.sql's.
-- snap.d_json holds JSON whose numbers a float cannot hold as written, copied by the
-- snapshot and streamed (json keeps its text; it is written here as PostgreSQL prints
-- jsonb, since meepo re-serialises a parsed document).
CREATE SCHEMA snap;
CREATE TABLE snap.a_empty (id integer PRIMARY KEY, name text);
CREATE TABLE snap.b_many (id integer PRIMARY KEY, name text);
CREATE TABLE snap.c_one (id integer PRIMARY KEY, name text);
CREATE TABLE snap.d_json (id integer PRIMARY KEY, name text, j json, jb jsonb);
CREATE TABLE snap.d_pairs (a integer, b varchar(5), name text, PRIMARY KEY (a, b));
CREATE TABLE snap.e_empty (id integer PRIMARY KEY, name text);
INSERT INTO snap.b_many SELECT g, 'row ' || g FROM generate_series(1, 7) AS g;
INSERT INTO snap.c_one VALUES (1, 'only');
INSERT INTO snap.d_json VALUES
    (1, 'numbers', '{"big": 12345678901234567890.123456789, "e": 1e400, "f": 1.10, "i": 12345678901234567890123, "z": -0.0, "t": 1.5E-7}',
     '{"big": 12345678901234567890.123456789, "e": 1e400, "f": 1.10, "i": 12345678901234567890123, "z": -0.0, "t": 1.5E-7}'),
    (2, 'scalars', '1e400', '"123"');
INSERT INTO snap.d_pairs VALUES (1, 'a', 'x'), (1, 'b', 'y'), (2, 'a', 'z');
-- setup
UPDATE snap.b_many SET name = 'changed' WHERE id = 3;
INSERT INTO snap.d_json VALUES
    (3, 'streamed', '[0.1, 2.50, {"n": -12345678901234567890.5e-3, "s": "é\n"}]',
     '[0.1, 2.50, {"n": -12345678901234567890.5e-3, "s": "é\n"}]'),
    (4, 'bare', '1.10', '1.10');
-- step
INSERT INTO snap.c_one VALUES (99, 'sentinel');
