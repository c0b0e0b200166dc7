"""Java runtimes and JVM options shared by the Kafka, Connect and Apicurio processes."""

from __future__ import annotations

from pathlib import Path

# Kafka 4.x broker/Connect and the Debezium connectors run on Java 17.
JAVA17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")
# Apicurio Registry 3.2.1+ server bytecode is Java 21: run it on Temurin 25.
JAVA25 = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")

# what kafka-run-class.sh sets (KAFKA_JVM_PERFORMANCE_OPTS), plus fail-fast on OOM
PERFORMANCE_OPTS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


def heap(size: str) -> list[str]:
    """Start small, grow to ``size``: most of the time these processes idle in tests."""
    return ["-Xms128m", f"-Xmx{size}"]


def log4j2_console(path: Path, *, pattern: str, quiet: dict[str, str]) -> Path:
    """A log4j2 properties file: everything to stdout (the launcher sends it to the log file)."""
    lines = [
        "status = warn",
        "appender.out.type = Console",
        "appender.out.name = OUT",
        "appender.out.layout.type = PatternLayout",
        f"appender.out.layout.pattern = {pattern}",
        "rootLogger.level = info",
        "rootLogger.appenderRef.out.ref = OUT",
    ]
    for i, (logger, level) in enumerate(sorted(quiet.items())):
        lines += [f"logger.l{i}.name = {logger}", f"logger.l{i}.level = {level}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
