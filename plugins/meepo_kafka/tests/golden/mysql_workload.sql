-- The MySQL/MariaDB workload behind the Debezium golden files: every column type meepo's
-- mysql source captures and every case of the format. Statements are separated by lines
-- holding only "-- step"; "-- setup" ends the part that runs before capture starts (its
-- rows are the snapshot). Each step runs as one transaction; statements are split on ";"
-- at the end of a line. Runs in the database "inv".
CREATE TABLE types (
    id INT PRIMARY KEY,
    c_tiny TINYINT, c_utiny TINYINT UNSIGNED, c_small SMALLINT, c_usmall SMALLINT UNSIGNED,
    c_medium MEDIUMINT, c_umedium MEDIUMINT UNSIGNED, c_int INT, c_uint INT UNSIGNED,
    c_big BIGINT, c_ubig BIGINT UNSIGNED,
    c_dec DECIMAL(10, 2), c_dec_wide DECIMAL(65, 30), c_udec DECIMAL(6, 0) UNSIGNED,
    c_float FLOAT, c_double DOUBLE,
    c_bit1 BIT(1), c_bit10 BIT(10), c_bit64 BIT(64),
    c_date DATE, c_time0 TIME, c_time3 TIME(3), c_time6 TIME(6),
    c_dt0 DATETIME, c_dt1 DATETIME(1), c_dt3 DATETIME(3), c_dt4 DATETIME(4), c_dt6 DATETIME(6),
    c_ts0 TIMESTAMP NULL, c_ts3 TIMESTAMP(3) NULL, c_ts6 TIMESTAMP(6) NULL, c_year YEAR,
    c_char CHAR(3), c_varchar VARCHAR(20), c_text TEXT,
    c_latin1 VARCHAR(10) CHARACTER SET latin1, c_utf8 VARCHAR(10) CHARACTER SET utf8mb3,
    c_ucs2 VARCHAR(10) CHARACTER SET ucs2, c_tinytext TINYTEXT, c_longtext LONGTEXT,
    c_binary BINARY(4), c_varbinary VARBINARY(10), c_blob BLOB, c_tinyblob TINYBLOB,
    c_enum ENUM('s', 'm', 'l'), c_set SET('red', 'green', 'blue'),
    c_json JSON, c_geometry GEOMETRY, c_point POINT
) CHARACTER SET utf8mb4;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80));
CREATE TABLE no_key (a INT, b VARCHAR(10));
CREATE TABLE pairs (a INT, b VARCHAR(10), v DECIMAL(6, 3), PRIMARY KEY (a, b));
CREATE TABLE unsigned_keys (id BIGINT UNSIGNED PRIMARY KEY, n INT NOT NULL DEFAULT 0);
INSERT INTO customers VALUES (1, 'Anne', 'anne@example.com'), (2, 'Bob', NULL),
    (4, 'Dora', 'dora@example.com');
INSERT INTO pairs VALUES (1, 'x', 1.5), (0, 'w', 0);
INSERT INTO unsigned_keys VALUES (18446744073709551615, 1);
-- setup
INSERT INTO types VALUES (
    1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
    -9223372036854775808, 18446744073709551615,
    12345678.91, -12345678901234567890123456789012345.123456789012345678901234567891, 999999,
    1.5, 2.718281828459045,
    b'1', b'1010010110', b'1000000000000000000000000000000000000000000000000000000000000001',
    '2024-02-29', '13:14:15', '-838:59:58.999', '838:59:59.000000',
    '2024-02-29 13:14:15', '2024-02-29 13:14:15.1', '2024-02-29 13:14:15.123',
    '2024-02-29 13:14:15.1234', '2024-02-29 13:14:15.123456',
    '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.123456', 2024,
    'ab', 'varchar ü', 'text ünïcode 🚀', 'latin1 é', 'utf8 ñ', 'ucs2 ŝ', 'tiny', 'long text',
    X'00FF1000', X'00FF10', X'DEADBEEF', X'',
    'm', 'red,blue', '{"a": [1, 2.5, null], "é": "🚀", "big": 12345678901234567890}',
    ST_GeomFromText('LINESTRING(0 0, 1 1.5)'), ST_GeomFromText('POINT(1 2)', 4326)
);
-- step
INSERT INTO types (id, c_dec, c_float, c_double, c_time0, c_time6, c_date, c_dt0, c_dt6,
                   c_ts6, c_year, c_set, c_json, c_bit10, c_ubig, c_udec)
VALUES (2, -0.01, -3.4e38, 1e-300, '-00:00:01', '00:00:00.000001', '1970-01-01',
        '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01.000001',
        1901, '', '[]', b'0', 9223372036854775808, 0);
-- step
INSERT INTO types (id) VALUES (3);
INSERT INTO types (id, c_dt3, c_ts3, c_time3, c_dec, c_double, c_float)
VALUES (4, '1969-12-31 23:59:59.999', '2038-01-19 03:14:07.999', '00:00:00.001', 0, 1e20,
        1e-5),
       (5, '1960-06-30 23:59:59.5', '2001-01-01 00:00:00', '23:59:59.999', 99999999.99,
        -0.0, 123456789);
-- step
UPDATE types SET c_text = 'changed', c_int = -1, c_time0 = '00:00:00' WHERE id = 1;
-- step
DELETE FROM types WHERE id = 3;
-- step
INSERT INTO customers VALUES (3, 'Carl', 'carl@example.com');
UPDATE customers SET email = 'anne@example.org' WHERE id = 1;
DELETE FROM customers WHERE id = 2;
-- step
UPDATE customers SET id = 10 WHERE id = 3;
-- step
INSERT INTO no_key VALUES (1, 'one'), (1, 'one');
-- step
UPDATE no_key SET b = 'uno' WHERE a = 1;
-- step
DELETE FROM no_key WHERE a = 1;
-- step
INSERT INTO pairs VALUES (2, 'y', -0.125);
UPDATE pairs SET v = 99.999 WHERE a = 1;
UPDATE pairs SET b = 'z' WHERE a = 2;
-- step
INSERT INTO unsigned_keys VALUES (9223372036854775808, 2);
UPDATE unsigned_keys SET n = 3 WHERE id = 18446744073709551615;
-- step
CREATE TABLE later (id INT PRIMARY KEY, note VARCHAR(10));
-- step
INSERT INTO later VALUES (1, 'first');
-- step
ALTER TABLE later ADD COLUMN extra DECIMAL(5, 1) NOT NULL DEFAULT 2.5;
-- step
INSERT INTO later VALUES (2, 'second', 7.5);
-- step
ALTER TABLE later RENAME COLUMN note TO remark;
-- step
UPDATE later SET remark = 'renamed' WHERE id = 1;
-- step
DROP TABLE later;
-- step
INSERT INTO customers VALUES (99, 'sentinel', NULL);
