#!/usr/bin/env bash
# Prints a deterministic SQL workload for the sqlite shell: ROWS (default 100000) single-row
# INSERTs in one transaction, then indexes, queries, updates and deletes whose output is text
# that can be compared between builds. Same ROWS, same bytes (pseudo-random data from a
# Park-Miller generator, exact in awk's doubles).
#   recipes/sqlite/workload.sh [ROWS] > workload.sql
#   sqlite.native test.db < workload.sql     # db file must not exist yet
set -euo pipefail
ROWS="${1:-100000}"

cat <<'EOF'
.bail on
PRAGMA page_size=4096;
PRAGMA cache_size=-8000;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER NOT NULL REFERENCES customer(id),
                    item TEXT NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL, note TEXT);
BEGIN;
EOF

LC_ALL=C awk -v rows="$ROWS" '
function rnd(n) { seed = (seed * 16807) % 2147483647; return seed % n }
BEGIN {
  seed = 20240601
  split("lisbon porto oslo bergen turin milan lyon ghent delft basel", cities, " ")
  split("apple pear plum fig kiwi lime mango peach grape melon cherry lemon", items, " ")
  customers = int(rows / 20); if (customers < 10) customers = 10
  for (i = 1; i <= customers; i++)
    printf "INSERT INTO customer VALUES(%d,%c%s-%05d%c,%c%s%c);\n", i, 39, items[rnd(12) + 1], rnd(100000), 39, 39, cities[rnd(10) + 1], 39
  for (i = 1; i <= rows; i++) {
    note = rnd(7) == 0 ? "NULL" : sprintf("%crush %d%c", 39, rnd(1000), 39)
    printf "INSERT INTO orders(customer,item,qty,price,note) VALUES(%d,%c%s%c,%d,%d.%02d,%s);\n", rnd(customers) + 1, 39, items[rnd(12) + 1], 39, rnd(50) + 1, rnd(200), rnd(100), note
  }
}'

cat <<'EOF'
COMMIT;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_item_qty ON orders(item, qty);
ANALYZE;
.mode list
.headers off
SELECT 'rows', count(*), sum(qty), printf('%.2f', sum(price * qty)) FROM orders;
SELECT 'nulls', count(*) FROM orders WHERE note IS NULL;
.mode csv
.headers on
SELECT item, count(*) AS n, sum(qty) AS qty, printf('%.2f', avg(price)) AS avg_price,
       min(price) AS min_price, max(price) AS max_price
  FROM orders GROUP BY item ORDER BY item;
SELECT c.city, count(DISTINCT c.id) AS customers, count(*) AS orders,
       printf('%.2f', sum(o.qty * o.price)) AS revenue
  FROM orders o JOIN customer c ON c.id = o.customer
  GROUP BY c.city ORDER BY revenue DESC, c.city;
SELECT c.name, sum(o.qty) AS qty FROM customer c JOIN orders o ON o.customer = c.id
  GROUP BY c.id ORDER BY qty DESC, c.id LIMIT 10;
SELECT item, qty, n, sum(n) OVER (PARTITION BY item ORDER BY qty) AS running
  FROM (SELECT item, qty, count(*) AS n FROM orders WHERE item IN ('fig', 'kiwi') GROUP BY item, qty)
  ORDER BY item, qty LIMIT 30;
SELECT id, item, qty, price, rank() OVER (ORDER BY price * qty DESC, id) AS r
  FROM orders ORDER BY r LIMIT 10;
WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0, 1 UNION ALL SELECT n + 1, b, a + b FROM fib WHERE n < 60)
  SELECT n, a FROM fib WHERE n % 10 = 0;
SELECT json_group_array(json_object('item', item, 'n', n)) AS json FROM
  (SELECT item, count(*) AS n FROM orders WHERE qty > 45 GROUP BY item ORDER BY item);
SELECT count(*) AS rush_7 FROM orders WHERE note LIKE 'rush 7%';
SELECT substr(group_concat(upper(name), '|'), 1, 120) AS names
  FROM (SELECT name FROM customer WHERE city = 'oslo' ORDER BY name LIMIT 40);
SELECT printf('%.6f', sqrt(sum(price * price) / count(*))) AS rms, printf('%.4f', ln(sum(qty))) AS lnq FROM orders;
BEGIN;
UPDATE orders SET price = round(price * 1.1, 2) WHERE item = 'mango';
DELETE FROM orders WHERE qty < 3;
INSERT INTO orders(customer, item, qty, price, note)
  SELECT customer, 'bundle', sum(qty), round(sum(price), 2), 'merged' FROM orders
  WHERE customer % 97 = 0 GROUP BY customer;
COMMIT;
SELECT count(*) AS left, sum(qty) AS qty, printf('%.2f', sum(price)) AS price FROM orders;
SELECT item, count(*) AS n FROM orders GROUP BY item ORDER BY n DESC, item LIMIT 5;
PRAGMA integrity_check;
EOF
