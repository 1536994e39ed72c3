"""A real single-node Elasticsearch for development and tests, from Maven Central.

The ``integ-test-zip`` distribution is the real server (no bundled JDK, no ingest or painless
modules). We fetch it once with Maven, unpack it into a cache, and run each node from that
read-only tree with its own config, data and log directories (``ES_PATH_CONF``). The server
refuses to run as root, so as root we start it as an unprivileged system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from soc_core.errors import DevNodeError

ES_VERSION = "9.5.4"
MAVEN_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
# As root the node runs as another user, who cannot enter /root: cache under /var/cache then.
_DEFAULT_CACHE = Path("/var/cache/canhgac") if os.geteuid() == 0 else Path.home() / ".cache" / "canhgac"
CACHE_DIR = Path(os.environ.get("CANHGAC_CACHE", _DEFAULT_CACHE))
DEV_NODE_DIR = CACHE_DIR / "dev-node"
RUN_USER = "canhgac-es"
MIN_JAVA = 21


def distribution_zip(version: str = ES_VERSION, cache_dir: Path = CACHE_DIR) -> Path:
    """The distribution zip in the cache, fetched with ``mvn dependency:copy`` if missing."""
    target = cache_dir / f"elasticsearch-{version}.zip"
    if target.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevNodeError("Maven (mvn) is not installed", hint="apt-get install maven")
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={MAVEN_ARTIFACT.format(version=version)}",
        f"-DoutputDirectory={cache_dir}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not target.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise DevNodeError(
            f"could not fetch Elasticsearch {version} from Maven Central: {' '.join(tail)}",
            hint="check network access to Maven Central, or put the zip in " + str(cache_dir),
        )
    return target


def distribution_home(version: str = ES_VERSION, cache_dir: Path = CACHE_DIR) -> Path:
    """The unpacked distribution (unpacked once, then reused)."""
    home = cache_dir / f"elasticsearch-{version}"
    if (home / "bin" / "elasticsearch").exists():
        return home
    archive = distribution_zip(version, cache_dir)
    partial = cache_dir / f".unpack-{version}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            extracted = Path(bundle.extract(member, partial))
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                extracted.chmod(mode)
    (partial / f"elasticsearch-{version}").rename(home)
    shutil.rmtree(partial, ignore_errors=True)
    _open_for_others(home)
    return home


def _open_for_others(root: Path) -> None:
    """The node runs as another user: it must read (and traverse) the whole tree."""
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0))
    for parent in root.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)


def _java_major(home: Path) -> int:
    release = home / "release"
    if release.exists():
        match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
        if match:
            return int(match.group(1))
    return 0


def find_jdk() -> Path:
    """A JDK 21+: ``ES_JAVA_HOME`` if set, else the newest under /usr/lib/jvm."""
    if os.environ.get("ES_JAVA_HOME"):
        return Path(os.environ["ES_JAVA_HOME"])
    candidates = [p for p in Path("/usr/lib/jvm").glob("*") if (p / "bin" / "java").exists()]
    good = sorted((p for p in candidates if _java_major(p) >= MIN_JAVA), key=_java_major, reverse=True)
    if not good:
        raise DevNodeError(
            f"no JDK {MIN_JAVA}+ found under /usr/lib/jvm",
            hint="install one (e.g. a Temurin JDK) or set ES_JAVA_HOME",
        )
    return good[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_run_user() -> tuple[int, int] | None:
    """As root: the unprivileged user the node runs as (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(RUN_USER)
    return entry.pw_uid, entry.pw_gid


def _mmap_allowed() -> bool:
    """Raise vm.max_map_count when we can; otherwise the node runs without mmap."""
    try:
        current = int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return False
    if current >= 262144:
        return True
    try:
        Path("/proc/sys/vm/max_map_count").write_text("262144")
    except OSError:
        return False
    return True


@dataclass
class DevNode:
    """One node: ``start()``, ``url``, ``stop()``. State lives under ``workdir``."""

    workdir: Path
    port: int = 0
    heap_mb: int = 512
    version: str = ES_VERSION
    security: bool = False
    password: str = "changeme-dev"  # noqa: S105 - throwaway local test node
    # more elasticsearch.yml settings, appended as ``key: value`` lines (e.g. thread pools)
    extra_settings: dict[str, str] = field(default_factory=dict)
    # kept so the child is reaped by stop() rather than left to the garbage collector
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "node.pid"

    def _write_config(self, home: Path) -> Path:
        conf = self.workdir / "config"
        if conf.exists():
            shutil.rmtree(conf)
        shutil.copytree(home / "config", conf)
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        lines = [
            "cluster.name: canhgac-dev",
            "node.name: canhgac-dev-node",
            "discovery.type: single-node",
            "network.host: 127.0.0.1",
            f"http.port: {self.port}",
            "transport.port: 0",
            f"path.data: {self.workdir / 'data'}",
            f"path.logs: {self.workdir / 'logs'}",
            f"xpack.security.enabled: {'true' if self.security else 'false'}",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "action.destructive_requires_name: true",
        ]
        if not _mmap_allowed():
            lines.append("node.store.allow_mmap: false")
        lines.extend(f"{key}: {value}" for key, value in self.extra_settings.items())
        (conf / "elasticsearch.yml").write_text("\n".join(lines) + "\n")
        options = conf / "jvm.options.d"
        options.mkdir(exist_ok=True)
        (options / "heap.options").write_text(f"-Xms{self.heap_mb}m\n-Xmx{self.heap_mb}m\n")
        return conf

    def _env(self, conf: Path, jdk: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "JAVA_"))}
        env.update(ES_JAVA_HOME=str(jdk), ES_PATH_CONF=str(conf), ES_TMPDIR=str(self.workdir / "tmp"))
        return env

    def _as_user(self, ids: tuple[int, int] | None) -> list[str]:
        if ids is None:
            return []
        return ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", "--"]

    def start(self, timeout: float = 120.0) -> str:
        """Start the node and wait until the cluster is yellow; returns its URL."""
        home = distribution_home(self.version)
        jdk = find_jdk()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        conf = self._write_config(home)
        ids = _ensure_run_user()
        env = self._env(conf, jdk)
        if self.security:
            keystore = [str(home / "bin" / "elasticsearch-keystore")]
            subprocess.run([*keystore, "create"], env=env, check=True, capture_output=True)
            subprocess.run(
                [*keystore, "add", "-x", "bootstrap.password"],
                env=env,
                input=self.password,
                text=True,
                check=True,
                capture_output=True,
            )
        if ids is not None:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, *ids)
        log = (self.workdir / "console.log").open("ab")
        process = subprocess.Popen(
            [*self._as_user(ids), str(home / "bin" / "elasticsearch")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.process = process
        self.pid_file.write_text(f"{process.pid} {self.port}\n")
        try:
            self.wait_ready(timeout, process)
        except DevNodeError:
            self.stop()
            raise
        return self.url

    def wait_ready(self, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        auth = ("elastic", self.password) if self.security else None
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise DevNodeError(
                    f"Elasticsearch exited with code {process.returncode} during start-up",
                    where=str(self.workdir / "console.log"),
                    hint="read that log for the reason",
                )
            try:
                response = httpx.get(
                    f"{self.url}/_cluster/health",
                    params={"wait_for_status": "yellow", "timeout": "1s"},
                    auth=auth,
                    timeout=5,
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise DevNodeError(
            f"Elasticsearch not ready after {timeout:.0f}s",
            where=self.url,
            hint=f"see {self.workdir / 'console.log'}",
        )

    def running_pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        pid_text, _, port_text = self.pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
        if port_text:
            self.port = int(port_text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.running_pid()
        if pid is None:
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=timeout)
            self.process = None
        self.pid_file.unlink(missing_ok=True)


__all__ = [
    "ES_VERSION",
    "DevNode",
    "distribution_home",
    "distribution_zip",
    "find_jdk",
    "free_port",
]
