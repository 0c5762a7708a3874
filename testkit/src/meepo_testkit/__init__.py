"""meepo-testkit: real servers for tests of meepo and its plugins.

:mod:`meepo_testkit.servers` launches MariaDB, Redis, PostgreSQL and the Elasticsearch- and
Kafka-API servers of ``noida-db`` on private ports with temporary data dirs;
:mod:`meepo_testkit.pytest_plugin` (registered through ``pytest11`` when this package is
installed) gives them to tests as fixtures; :mod:`meepo_testkit.crash` holds what the
sources' SIGKILL tests share (a writer of known changes, the kill loop, the final check);
:mod:`meepo_testkit.proxy` is a TCP proxy that makes a connection late, slow, paused,
stalled or cut, for timing and outage tests; :mod:`meepo_testkit.source_harness` is what
every database source's tests share (sources of one test's tables, ``once`` runs).
The contract suites and :class:`~meepo_core.testing.StreamFollower` stay in
:mod:`meepo_core.testing`, which needs nothing but pytest.
"""
