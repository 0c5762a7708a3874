-- The PostgreSQL workload behind the Debezium golden files: every column type meepo
-- captures and every case of the format. Statements are separated by lines holding only
-- "-- step"; "-- setup" ends the part that runs before capture starts (its rows are the
-- snapshot). Each step runs as one transaction.
CREATE SCHEMA inv;
CREATE TYPE inv.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE inv.types (
    id integer PRIMARY KEY,
    c_int2 smallint, c_int4 integer, c_int8 bigint,
    c_num numeric(10, 2), c_num_free numeric, c_float4 real, c_float8 double precision,
    c_text text, c_varchar varchar(20), c_char char(3), c_bytea bytea, c_bool boolean,
    c_date date, c_time0 time(0), c_time3 time(3), c_time6 time, c_timetz timetz,
    c_ts0 timestamp(0), c_ts3 timestamp(3), c_ts6 timestamp, c_tstz timestamptz,
    c_interval interval, c_json json, c_jsonb jsonb, c_uuid uuid,
    c_int_arr integer[], c_text_arr text[], c_bit1 bit(1), c_bit8 bit(8), c_varbit varbit,
    c_inet inet, c_cidr cidr, c_money money, c_mood inv.mood, c_xml xml
);
CREATE TABLE inv.customers (id integer PRIMARY KEY, name text NOT NULL, email varchar(80));
CREATE TABLE inv.full_rows (id integer PRIMARY KEY, name text NOT NULL, n integer);
ALTER TABLE inv.full_rows REPLICA IDENTITY FULL;
CREATE TABLE inv.toasted (id integer PRIMARY KEY, big text, bin bytea, n integer);
-- stored out of line, uncompressed: an update of n leaves both out of the new row
ALTER TABLE inv.toasted ALTER COLUMN big SET STORAGE EXTERNAL;
ALTER TABLE inv.toasted ALTER COLUMN bin SET STORAGE EXTERNAL;
CREATE TABLE inv.no_key (a integer, b text);
ALTER TABLE inv.no_key REPLICA IDENTITY FULL;
CREATE TABLE inv.pairs (a integer, b varchar(10), v numeric(6, 3), PRIMARY KEY (a, b));
INSERT INTO inv.customers VALUES (1, 'Anne', 'anne@example.com'), (2, 'Bob', NULL),
    (4, 'Dora', 'dora@example.com');
INSERT INTO inv.pairs VALUES (1, 'x', 1.5), (0, 'w', 0);
-- setup
INSERT INTO inv.types VALUES (
    1, -32768, 2147483647, 9223372036854775807,
    12345678.91, 3.14159265358979323846264338327950288, 1.5, 2.718281828459045,
    'text ünïcode', 'varchar', 'ab', '\x00ff10', true,
    '2024-02-29', '13:14:15', '13:14:15.123', '13:14:15.123456', '13:14:15.5+02:30',
    '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.123456',
    '2024-02-29 13:14:15.123456+02',
    '1 day 02:03:04.5', '{"big": 12345678901234567890123, "f": 0.1, "s": "x"}',
    '{"big": 12345678901234567890123, "f": 1.10}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{1,2,NULL}', '{"a b","c"}', B'1', B'10100101', B'101',
    '192.168.0.1/24', '10.0.0.0/8', 12.34, 'happy', '<a>x</a>'
);
-- step
INSERT INTO inv.types (id, c_num, c_num_free, c_float4, c_float8, c_time6, c_interval, c_date,
                       c_ts6, c_tstz, c_money, c_int_arr)
VALUES (2, -0.01, 'NaN', 'NaN', '-Infinity', '24:00:00', '1 year 2 months 3 days 04:05:06',
        '1970-01-01', '1970-01-01 00:00:00', '1999-12-31 23:59:59.999999+00', -5.5,
        '{{1,2},{3,4}}');
-- step
INSERT INTO inv.types (id) VALUES (3);
INSERT INTO inv.types (id, c_tstz, c_timetz, c_ts3, c_time3, c_interval, c_num)
VALUES (4, '2024-01-01 00:00:00+00', '00:00:00+00', '2024-01-01 00:00:00.5', '00:00:00.001',
        '-3 days -00:00:00.000001', 0),
       (5, '2024-01-01 12:30:45.1+05:30', '23:59:59.999999-08', '1960-06-30 23:59:59.999',
        '23:59:59.999', '-1 mon', 99999999.99);
-- step
UPDATE inv.types SET c_text = 'changed', c_int4 = -1, c_time0 = '00:00:00' WHERE id = 1;
-- step
DELETE FROM inv.types WHERE id = 3;
-- step
INSERT INTO inv.customers VALUES (3, 'Carl', 'carl@example.com');
UPDATE inv.customers SET email = 'anne@example.org' WHERE id = 1;
DELETE FROM inv.customers WHERE id = 2;
-- step
UPDATE inv.customers SET id = 10 WHERE id = 3;
-- step
INSERT INTO inv.full_rows VALUES (1, 'one', 1), (2, 'two', 2);
-- step
UPDATE inv.full_rows SET n = 11 WHERE id = 1;
UPDATE inv.full_rows SET id = 20 WHERE id = 2;
DELETE FROM inv.full_rows WHERE id = 1;
-- step
INSERT INTO inv.toasted VALUES (1, repeat('toast ', 500), decode(repeat('ab', 2500), 'hex'), 1);
-- step
UPDATE inv.toasted SET n = 2 WHERE id = 1;
-- step
INSERT INTO inv.no_key VALUES (1, 'one'), (1, 'one');
-- step
UPDATE inv.no_key SET b = 'uno' WHERE a = 1;
-- step
DELETE FROM inv.no_key WHERE a = 1;
-- step
INSERT INTO inv.pairs VALUES (2, 'y', -0.125);
UPDATE inv.pairs SET v = 99.999 WHERE a = 1;
UPDATE inv.pairs SET b = 'z' WHERE a = 2;
-- step
TRUNCATE inv.pairs;
-- step
INSERT INTO inv.customers VALUES (99, 'sentinel', NULL);
