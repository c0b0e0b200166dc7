"""``billsync stack install``: Debian packages and Maven artifacts, idempotently.

Debian: PostgreSQL 15, MariaDB 10.11, Java 17, Maven (installed only when missing; needs
root). Maven: ``pom.xml`` (Kafka/Connect classpath, Debezium plugins, Apicurio server) and
``converter-pom.xml`` (Apicurio Connect converter) collected into ``settings.stack_dist_dir``.
The cache is stamped with a hash of both POMs: editing a POM rebuilds it, nothing else does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from billsync.errors import StackError
from ops.stack import jvm
from ops.stack.paths import StackPaths

HERE = Path(__file__).resolve().parent
POMS = (HERE / "pom.xml", HERE / "converter-pom.xml")
JAVA17_HOME = jvm.JAVA17.parent.parent
APT = "/usr/bin/apt-get"

DEBIAN_PACKAGES = (
    "postgresql-15",
    "postgresql-client-15",
    "mariadb-server",
    "mariadb-client",
    "openjdk-17-jdk-headless",
    "maven",
)

Say = Callable[[str], None]


def missing_packages() -> list[str]:
    missing = []
    for pkg in DEBIAN_PACKAGES:
        probe = subprocess.run(  # noqa: S603  # fixed argv
            ["/usr/bin/dpkg-query", "-W", "-f=${Status}", pkg],
            capture_output=True,
            text=True,
            check=False,
        )
        if "install ok installed" not in probe.stdout:
            missing.append(pkg)
    return missing


def _run(argv: list[str], *, what: str, log: Path, env: dict[str, str] | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)  # noqa: S603  # fixed argv
    if result.returncode != 0:
        raise StackError("install", f"{what} failed (exit {result.returncode})", str(log))


def install_packages(paths: StackPaths, say: Say) -> None:
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(
            "install",
            f"Debian packages missing: {' '.join(missing)}; "
            f"fix: sudo apt-get install -y --no-install-recommends {' '.join(missing)}",
        )
    log = paths.logs / "install.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"apt-get install {' '.join(missing)}")
    _run([APT, "update", "-q"], what="apt-get update", log=log, env=env)
    _run(
        [APT, "install", "-y", "-q", "--no-install-recommends", *missing],
        what="apt-get install",
        log=log,
        env=env,
    )


def poms_digest() -> str:
    digest = hashlib.sha256()
    for pom in POMS:
        digest.update(pom.read_bytes())
    return digest.hexdigest()


def artifacts_ready(paths: StackPaths) -> bool:
    stamp = paths.dist_stamp
    return stamp.exists() and stamp.read_text(encoding="utf-8").strip() == poms_digest()


def install_artifacts(paths: StackPaths, say: Say) -> None:
    if artifacts_ready(paths):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("install", "mvn not found; fix: apt-get install maven")
    dist = paths.dist
    build = dist.parent / (dist.name + ".build")
    shutil.rmtree(dist, ignore_errors=True)
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    # build in a scratch dir: Maven writes target/ next to the POM, never into the work tree
    for pom in POMS:
        shutil.copy2(pom, build / pom.name)
    env = {**os.environ, "JAVA_HOME": str(JAVA17_HOME)}
    log = paths.logs / "install.log"
    for pom in POMS:
        say(f"maven: {pom.name} -> {dist}")
        _run(
            [mvn, "-B", "-q", "-f", str(build / pom.name), "package", f"-Dstack.dist={dist}"],
            what=f"mvn package ({pom.name})",
            log=log,
            env=env,
        )
    shutil.rmtree(build, ignore_errors=True)
    paths.dist_stamp.write_text(poms_digest() + "\n", encoding="utf-8")


def is_installed(paths: StackPaths) -> bool:
    return not missing_packages() and artifacts_ready(paths)


def install(paths: StackPaths, say: Say) -> None:
    install_packages(paths, say)
    install_artifacts(paths, say)
