"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s demo`, `nox -s bench`."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PLUGINS = sorted(str(p.parent) for p in ROOT.glob("plugins/*/pyproject.toml"))
EXAMPLES = [str(ROOT / "examples" / "meepo-webhook")]


def editable(*paths: str) -> list[str]:
    return [arg for path in paths for arg in ("-e", path)]


@nox.session
def tests(session: nox.Session) -> None:
    """Core, every plugin and the example plugin, against real servers started by fixtures."""
    session.install(*editable(f"{ROOT}[test]", *PLUGINS, *EXAMPLES))
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over the core and the plugins."""
    session.install("ruff", "mypy", *editable(f"{ROOT}[test]", *PLUGINS))
    session.run("ruff", "check", "src", "plugins", "examples", "tests", "noxfile.py")
    sources = ["src", *[f"{p}/src" for p in PLUGINS]]
    session.run("mypy", *sources)


@nox.session
def demo(session: nox.Session) -> None:
    """The README's first command: a real pipeline on an embedded default, no server."""
    demo_dir = ROOT / "examples" / "demo"
    if (demo_dir / "make_changes.py").is_file():
        session.install(*editable(str(ROOT), str(ROOT / "plugins" / "meepo_sqlalchemy")))
        session.run("python", str(demo_dir / "make_changes.py"))
        session.run("meepo", "--config", str(demo_dir / "meepo.toml"), "run", "demo", "--once")
    else:
        session.install(*editable(str(ROOT)))
        session.run("meepo", "run", "sample", "--once")


@nox.session
def bench(session: nox.Session) -> None:
    """End-to-end benchmarks; results go to bench/results/. Arguments after `--` go to
    bench/bench_e2e.py (e.g. `nox -s bench -- --quick`). The mysql source's own benchmark
    is `python bench/bench_mysql_source.py`."""
    session.install(*editable(f"{ROOT}[test]", *PLUGINS), "matplotlib")
    session.run("python", str(ROOT / "bench" / "bench_e2e.py"), *session.posargs)
