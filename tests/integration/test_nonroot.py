"""The runtime the images give (relay/Dockerfile, operator/Dockerfile): user 65532, no
privileges, and nothing writable but the mounted volumes. Here: the relay runs as 65532 from a
bundle directory it can only read (root-owned, group 65532, files 0440, as Kubernetes mounts a
Secret with fsGroup), with a spool and audit directory of its own; it accepts and delivers mail,
and everything it wrote is inside those two. The operator renders as 65532 into its output
directory only."""
import os
import shutil
import subprocess
import time

from conftest import BINARY, standard_setup, wait_port, wait_until
from helpers import message, submit_client

UID = 65532
AS_USER = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--no-new-privs"]


def files_under(path):
    return {os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs}


def test_the_relay_runs_as_65532_writing_only_its_volumes(workdir, dns_server, cleanup):
    dns, sink, relay = standard_setup(workdir, dns_server, cleanup)
    relay.stop()
    os.chmod(workdir, 0o755)
    bundle = workdir / "bundle"
    bundle.mkdir()
    for f in relay.dir.iterdir():
        if f.is_file() and f.suffix in (".crt", ".key", ".pem"):
            shutil.copy(f, bundle / f.name)
    spool, audit = workdir / "spool", workdir / "audit"
    cfg = relay.config.read_text().replace("  dir: spool\n", f"  dir: {spool}\n").replace("  dir: audit\n", f"  dir: {audit}\n")
    (bundle / "relay.yaml").write_text(cfg)
    for f in bundle.iterdir():
        os.chown(f, 0, UID)
        os.chmod(f, 0o440)
    os.chown(bundle, 0, UID)
    os.chmod(bundle, 0o550)
    for d in (spool, audit):
        d.mkdir()
        os.chown(d, UID, UID)
        os.chmod(d, 0o700)
    before = files_under(workdir)

    log = open(workdir / "nonroot.log", "wb")
    proc = subprocess.Popen(AS_USER + [str(BINARY), "serve", "--config", str(bundle / "relay.yaml")], stdout=log, stderr=log)
    cleanup(lambda: (proc.terminate(), proc.wait(30)))
    wait_port(relay.submission)
    out = subprocess.run(["ps", "-o", "uid=", "-p", str(proc.pid)], capture_output=True, text=True).stdout.strip()
    assert out == str(UID), out
    c = submit_client(relay)
    c.sendmail("dev@example.test", ["rcpt@dest.test"], message(subject="as 65532"))
    c.quit()
    wait_until(lambda: any(b"as 65532" in m[2] for m in sink.messages), 30, "delivery")
    proc.terminate()
    assert proc.wait(30) == 0
    written = files_under(workdir) - before - {str(workdir / "nonroot.log")}
    outside = [f for f in written if not (f.startswith(str(spool)) or f.startswith(str(audit)) or f.startswith(str(workdir / "dns")))]
    assert not outside, outside
    assert any(f.startswith(str(audit)) for f in written), "the audit trail was written"
    assert "Permission denied" not in (workdir / "nonroot.log").read_text()


def test_the_operator_renders_as_65532_into_its_output_only(workdir):
    os.chmod(workdir, 0o755)
    out = workdir / "out"
    out.mkdir()
    os.chown(out, UID, UID)
    operator = BINARY.parent / "cascade-operator"
    example = workdir / "cascade.yaml"
    shutil.copy(BINARY.parents[2] / "examples" / "cascade.yaml", example)
    os.chmod(example, 0o444)
    r = subprocess.run(AS_USER + [str(operator), "render", "-f", str(example), "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (out / "relay" / "relay.yaml").exists()
    assert all(os.stat(f).st_uid == UID for f in files_under(out))
    assert files_under(workdir) - files_under(out) == {str(example)}
