"""The Helm chart (charts/cascade): `helm lint --strict`; `helm template` with the default values
and two other value sets, every built-in kind validated by `kubernetes-validate --strict`; the
schema refusing bad values; restricted pod security; the CRDs equal to the generated ones; and
the operator's RBAC equal to the API calls it made in the controller tests, scope by scope
(nothing missing, nothing unused, nothing cluster-wide that a namespaced Role can grant)."""
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

CHART = ROOT / "charts" / "cascade"
VALUE_SETS = [None, ROOT / "tests/chart/values-monitoring.yaml", ROOT / "tests/chart/values-minimal.yaml"]
CALLS = ROOT / "target" / "debug" / "api-calls"


@pytest.fixture(scope="module")
def tools():
    out = subprocess.run(["bash", str(ROOT / "tests/chart/tools.sh")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    helm, validate = out.stdout.split()
    return helm, validate


def template(helm, values=None, *extra):
    args = [helm, "template", "cascade", str(CHART), "--namespace", "cascade-system", "--kube-version", "1.32.0", *extra]
    if values:
        args += ["-f", str(values)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def test_lint_strict(tools):
    helm, _ = tools
    for values in VALUE_SETS:
        args = [helm, "lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("values", VALUE_SETS, ids=["default", "monitoring", "minimal"])
def test_rendered_built_in_kinds_validate_strictly(tools, values, tmp_path):
    helm, validate = tools
    r = template(helm, values)
    assert r.returncode == 0, r.stderr
    built_in = [d for d in docs(r.stdout) if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(built_in))
    v = subprocess.run([validate, "--strict", "-k", "1.32.0", "--quiet", str(path)], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    kinds = sorted(d["kind"] for d in docs(r.stdout))
    # Upgrades never regenerate keys: the chart renders no Secret (the operator creates its own).
    assert "Secret" not in kinds
    if values and "monitoring" in values.name:
        assert kinds.count("ServiceMonitor") == 2 and "PrometheusRule" in kinds
        relays = next(d for d in docs(r.stdout) if d["kind"] == "ServiceMonitor" and d["metadata"]["name"] == "cascade-relays-main")
        assert relays["metadata"]["namespace"] == "mail"
        endpoint = relays["spec"]["endpoints"][0]
        # Scraped over HTTPS, the relays verified by the pool's admin authority under their name.
        assert endpoint["scheme"] == "https" and endpoint["tlsConfig"] == {"serverName": "main.mail.relays.cascade.internal", "ca": {"secret": {"name": "main-admin-ca", "key": "ca.crt"}}}
        assert endpoint["honorLabels"] is True, "the per-tenant namespace label is kept"
    elif values:
        assert "NetworkPolicy" not in kinds and "ConfigMap" not in kinds and kinds.count("ClusterRole") == 1
    else:
        assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds and "NetworkPolicy" in kinds


# The alerts the operating surface promises, each unit-tested in tests/alerts/cascade.test.yaml.
TESTED_ALERTS = {"CascadeConfigRefused", "CascadeRelaysNotReady", "CascadeRelaysOnOldConfiguration", "CascadeNoRelays", "CascadeQueueAge",
                 "CascadeBounceRate", "CascadeOutboundTlsDropping", "CascadeDkimRotationOverdue", "CascadeAuthFailures", "CascadeAuditChainBroken"}


def test_alert_rules_pass_promtool_and_each_has_a_runbook(tools, tmp_path):
    """The chart's PrometheusRule, as rendered, passes `promtool check rules`; the alert
    expressions pass their unit tests (`promtool test rules`: firing, not firing, labels and
    annotations); every alert has a summary, a description and a runbook_url naming its section
    of docs/runbooks.md."""
    import shutil
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is missing: test.sh installs it"
    helm, _ = tools
    r = template(helm, ROOT / "tests/chart/values-monitoring.yaml", "--show-only", "templates/prometheusrule.yaml")
    assert r.returncode == 0, r.stderr
    groups = docs(r.stdout)[0]["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(ROOT / "tests/alerts/cascade.test.yaml", tmp_path)
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([promtool, "test", "rules", "cascade.test.yaml"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr
    sections = {line[3:].strip().lower() for line in (ROOT / "docs/runbooks.md").read_text().splitlines() if line.startswith("## ")}
    names = set()
    for rule in groups[0]["rules"]:
        a = rule["annotations"]
        names.add(rule["alert"])
        assert a["summary"] and a["description"], rule["alert"]
        assert a["runbook_url"] == f"https://github.com/cascade-mail/cascade/blob/main/docs/runbooks.md#{rule['alert'].lower()}", a
        assert rule["alert"].lower() in sections, f"docs/runbooks.md has no section for {rule['alert']}"
    tested = {a["alertname"] for t in yaml.safe_load((ROOT / "tests/alerts/cascade.test.yaml").read_text())["tests"] for a in t["alert_rule_test"]}
    assert TESTED_ALERTS <= tested <= names, (TESTED_ALERTS - tested, tested - names)


def test_the_dashboard_has_its_variables_units_and_panels_and_names_real_metrics():
    """The Grafana dashboard (valid JSON) has the datasource, pool, pod and tenant variables;
    every panel a unit and a description; the panels the issue lists; relay queries filtered by
    pool and pod; and every metric it queries is one the relay or the operator exports."""
    import re
    d = json.loads((CHART / "dashboards" / "cascade.json").read_text())
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert {"datasource", "pool", "pod", "namespace"} <= set(variables), variables.keys()
    titles = [p["title"] for p in d["panels"]]
    for wanted in ["Delivery latency", "Oldest queued message by tenant", "DMARC results in aggregate reports", "Configuration reloads", "Outbound TLS share"]:
        assert wanted in titles, wanted
    exported = set()
    for src, prefix in [(ROOT / "relay/src/metrics.rs", "cascade_relay_"), (ROOT / "operator/src/metrics.rs", "")]:
        text = src.read_text()
        exported |= {prefix + n for n in re.findall(r'(?:counter|counter_vec|gauge|gauge_vec)\(\s*&r,\s*"(\w+)"', text)}
        exported |= set(re.findall(r'"(cascade_\w+)"', text))
    exported |= {"process_resident_memory_bytes", "process_cpu_seconds_total"}
    for p in d["panels"]:
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        assert p.get("description"), p["title"]
        for t in p["targets"]:
            names = set(re.findall(r"\b((?:cascade_|process_)\w+?)(?:_bucket)?\b(?=[{\[\s)])", t["expr"]))
            assert names, t["expr"]
            for n in names:
                assert n in exported or n.removesuffix("_bucket") in exported, f"{p['title']}: {n} is not a metric Cascade exports"
            if "cascade_relay_" in t["expr"] or "process_" in t["expr"]:
                assert 'pool=~"$pool"' in t["expr"] and 'pod=~"$pod"' in t["expr"], t["expr"]


def test_notes_versions_and_a_parent_charts_global_values(tools, tmp_path):
    """NOTES.txt says what was installed and how to create the first SendingDomain and get the
    credentials (its YAML snippets parse and name Cascade's kinds); every object the chart
    renders carries app.kubernetes.io/version; `global` (a parent chart's) is accepted."""
    import shutil
    helm, _ = tools
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    # `helm template` does not render NOTES.txt: render it through a template of a copy.
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.tpl")
    (chart / "templates" / "notes.yaml").write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ tpl (.Files.Get "notes.tpl") . | quote }}\n')
    r = subprocess.run([helm, "template", "cascade", str(chart), "--namespace", "cascade-system", "-f", str(ROOT / "tests/chart/values-monitoring.yaml"), "--show-only", "templates/notes.yaml"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    notes = yaml.safe_load(r.stdout)["data"]["notes"]
    assert "Cascade 0.1.0 is installed in namespace cascade-system" in notes and "PrometheusRule" in notes and "mail/main" in notes, notes
    snippets = [s.split("YAML", 1)[0] for s in notes.split("<<YAML\n")[1:]]
    kinds = [d["kind"] for s in snippets for d in yaml.safe_load_all("\n".join(l[5:] for l in s.splitlines())) if d]
    assert kinds == ["RelayPool", "SendingDomain", "ApiKey"], kinds
    assert "web-credentials" in notes and "wait --for=condition=Ready relaypool/main" in notes
    pulled = template(helm, None, "--set", "imagePullSecrets[0].name=registry", "--set", "imagePullSecrets[1].name=mirror", "--show-only", "templates/deployment.yaml")
    pod = docs(pulled.stdout)[0]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}, {"name": "mirror"}]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["CASCADE_RELAY_IMAGE_PULL_SECRETS"] == "registry,mirror", "passed on to the relay pods the operator creates"
    assert template(helm, None, "--set", "imagePullSecrets[0].name=Bad_Name").returncode != 0, "a pull Secret name is a Kubernetes name"
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    rendered = template(helm, ROOT / "tests/chart/values-monitoring.yaml", "--set", "global.imageRegistry=registry.example")
    assert rendered.returncode == 0, rendered.stderr
    for d in docs(rendered.stdout):
        assert d["metadata"].get("labels", {}).get("app.kubernetes.io/version") == version, (d["kind"], d["metadata"].get("name"))


def test_the_schema_refuses_bad_values(tools):
    helm, _ = tools
    for bad in [["--set", "operator.replicas=0"], ["--set", "operator.unknown=1"], ["--set", "networkPolicy.apiServerCIDRs={not-a-cidr}"], ["--set", "image.relay.repository="]]:
        r = template(helm, None, *bad)
        assert r.returncode != 0 and "values don't meet the specifications of the schema" in r.stderr, (bad, r.stderr)


def test_operator_pods_are_restricted_and_led(tools):
    helm, _ = tools
    deployment = next(d for d in docs(template(helm).stdout) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert (sc["allowPrivilegeEscalation"], sc["readOnlyRootFilesystem"], sc["capabilities"]["drop"]) == (False, True, ["ALL"])
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in c["env"]}
    assert "POD_NAME" in env and env["CASCADE_RELAY_IMAGE"]["value"] == "ghcr.io/cascade-mail/cascade-relay:0.1.0"
    # The audit trail goes to the only writable mount.
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/var/lib/cascade/audit"] and "--audit-dir" in c["args"]


def test_chart_crds_are_the_generated_ones():
    assert (CHART / "crds" / "cascade-mail.com_crds.yaml").read_text() == (ROOT / "crds" / "cascade-mail.com_crds.yaml").read_text(), \
        "charts/cascade/crds drifted: cp crds/cascade-mail.com_crds.yaml charts/cascade/crds/"


def test_tenant_roles_aggregate_and_never_grant_secrets_or_pools(tools):
    helm, _ = tools
    roles = {d["metadata"]["name"]: d for d in docs(template(helm).stdout) if d["kind"] == "ClusterRole"}
    edit, view = roles["cascade-tenant-edit"], roles["cascade-tenant-view"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    for role in (edit, view):
        resources = {r for rule in role["rules"] for r in rule["resources"]}
        assert "secrets" not in resources and not any(r.startswith("relaypools") for r in resources), resources
        # A status is what the operator recorded (e.g. status.ownership.verifiedAt): tenants only read it.
        for rule in role["rules"]:
            if any(r.endswith("/status") for r in rule["resources"]):
                assert rule["verbs"] == ["get"], rule
    assert "aggregate-to-admin" not in json.dumps(roles["cascade-relaypool-admin"]["metadata"])


# The namespaces RelayPools live in during the controller tests (operator/tests/support/world.rs
# and pool_namespaces.rs); the chart is rendered with the same list.
POOL_NAMESPACES = ["cascade-system", "mail"]


def grants(rule):
    assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
    return {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_operator_rbac_is_exactly_what_it_calls(tools):
    """Every (group, resource, verb) the operator's client used in the controller tests must be
    granted at the scope it was used at, and every grant must have been used at its scope: a
    ClusterRole grant only for calls that are cluster-wide or in tenant namespaces (where no
    namespaced Role of the operator lives), a namespaced Role's grant by calls in a namespace
    RelayPools live in.
    The calls are recorded by operator/tests/support/calls.rs while `cargo test` runs the
    controller tests."""
    recorded = set()
    for f in sorted(CALLS.glob("*.jsonl")) if CALLS.exists() else []:
        for line in f.read_text().splitlines():
            c = json.loads(line)
            recorded.add((c["group"], c["resource"], c["verb"], c.get("namespace", "")))
    if not recorded:
        pytest.skip(f"SKIP: no recorded API calls in {CALLS} (the controller tests did not run against a real API server)")
    helm, _ = tools
    rendered = template(helm, None, "--set", "relayPoolNamespaces={" + ",".join(POOL_NAMESPACES) + "}")
    assert rendered.returncode == 0, rendered.stderr
    cluster, namespaced = set(), {}
    for d in docs(rendered.stdout):
        if d["kind"] in ("ClusterRole", "Role") and d["metadata"]["name"].startswith("cascade-operator"):
            granted = set().union(*(grants(rule) for rule in d["rules"]))
            if d["kind"] == "ClusterRole":
                assert not d.get("aggregationRule") and d["metadata"]["name"] == "cascade-operator", d["metadata"]
                cluster |= granted
            else:
                namespaced.setdefault(d["metadata"]["namespace"], set()).update(granted)
    assert set(namespaced) == set(POOL_NAMESPACES), namespaced.keys()
    missing, used_cluster, used_ns = [], set(), {}
    for g, r, v, ns in sorted(recorded):
        call = (g, r, v)
        if ns and call in namespaced.get(ns, set()):
            used_ns.setdefault(ns, set()).add(call)
        elif call in cluster:
            used_cluster.add(call)
        else:
            missing.append((g, r, v, ns or "<cluster-wide>"))
    assert not missing, f"the operator calls these but the chart does not grant them there: {missing}"
    assert not sorted(cluster - used_cluster), f"the ClusterRole grants these but the operator never needed them cluster-wide: {sorted(cluster - used_cluster)}"
    # The pool namespaces share one Role: each of its grants is used in one of them at least.
    unused = set().union(*namespaced.values()) - set().union(*used_ns.values())
    assert not sorted(unused), f"the namespaced Roles grant these but the operator never called them in a pool namespace: {sorted(unused)}"
    # No grant that would let it grant itself more.
    for call in cluster | set().union(*namespaced.values()):
        assert call[2] not in ("bind", "escalate", "impersonate", "deletecollection"), call


POD_SETTINGS = """  autoscaling: {minReplicas: 2, maxReplicas: 6, targetCpuPercent: 70}
  pod:
    resources: {requests: {cpu: 500m, memory: 512Mi}, limits: {memory: 2Gi}}
    nodeSelector: {mail.example/egress: spf-listed}
    tolerations: [{key: mail, operator: Exists, effect: NoSchedule}]
    topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {cascade-mail.com/relay-pool: main}}}]
    priorityClassName: mail-critical
    imagePullSecrets: [{name: registry}]
    podAnnotations: {prometheus.io/scrape: "true"}
    podLabels: {team: mail}
    serviceAccountAnnotations: {iam.gke.io/gcp-service-account: relay@project.iam.gserviceaccount.com}
"""


def test_pod_settings_and_autoscaling_render_valid_workloads_with_requests(tools, tmp_path):
    """The CPU autoscaler can compute: the StatefulSet's relay container has requests (the
    pool's, or the defaults), and the HorizontalPodAutoscaler targets it; every setting lands
    where Kubernetes reads it, and all of it validates."""
    _, validate = tools
    operator = ROOT / "target" / "debug" / "cascade-operator"
    for name, extra in [("defaults", "  autoscaling: {minReplicas: 1, maxReplicas: 3}\n"), ("settings", POD_SETTINGS)]:
        example = tmp_path / f"{name}.yaml"
        example.write_text((ROOT / "examples" / "cascade.yaml").read_text().replace("  replicas: 2\n", extra, 1))
        r = subprocess.run([str(operator), "render", "-f", str(example), "-o", str(tmp_path / name)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        workloads = tmp_path / name / "workloads.yaml"
        v = subprocess.run([validate, "--strict", "-k", "1.32.0", "--quiet", str(workloads)], capture_output=True, text=True, timeout=120)
        assert v.returncode == 0, v.stdout + v.stderr
        ds = docs(workloads.read_text())
        sts = next(d for d in ds if d["kind"] == "StatefulSet")
        hpa = next(d for d in ds if d["kind"] == "HorizontalPodAutoscaler")
        assert "replicas" not in sts["spec"], "the autoscaler owns the replica count"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"]}
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        pod = sts["spec"]["template"]["spec"]
        requests = pod["containers"][0]["resources"]["requests"]
        account = next(d for d in ds if d["kind"] == "ServiceAccount")
        if name == "defaults":
            assert requests == {"cpu": "250m", "memory": "256Mi"} and pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
            assert "nodeSelector" not in pod and "annotations" not in account["metadata"]
            continue
        assert requests == {"cpu": "500m", "memory": "512Mi"} and pod["containers"][0]["resources"]["limits"] == {"memory": "2Gi"}
        assert pod["nodeSelector"] == {"mail.example/egress": "spf-listed"} and pod["tolerations"][0]["key"] == "mail"
        assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone" and len(pod["topologySpreadConstraints"]) == 1
        assert pod["priorityClassName"] == "mail-critical" and pod["imagePullSecrets"] == [{"name": "registry"}]
        meta = sts["spec"]["template"]["metadata"]
        assert meta["labels"]["team"] == "mail" and meta["labels"]["cascade-mail.com/relay-pool"] == "main"
        assert meta["annotations"]["prometheus.io/scrape"] == "true" and meta["annotations"]["cascade-mail.com/config-hash"]
        assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "relay@project.iam.gserviceaccount.com"}


@pytest.mark.parametrize("example", ["cascade.yaml", "kind.yaml"])
def test_the_relay_workloads_the_operator_renders_validate_and_are_restricted(tools, example, tmp_path):
    """`cascade-operator render` writes the pool's workloads as the operator applies them."""
    _, validate = tools
    operator = ROOT / "target" / "debug" / "cascade-operator"
    r = subprocess.run([str(operator), "render", "-f", str(ROOT / "examples" / example), "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    workloads = tmp_path / "out" / "workloads.yaml"
    v = subprocess.run([validate, "--strict", "-k", "1.32.0", "--quiet", str(workloads)], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    sts = next(d for d in docs(workloads.read_text()) if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = pod["containers"][0]["securityContext"]
    assert (sc["allowPrivilegeEscalation"], sc["readOnlyRootFilesystem"], sc["capabilities"]["drop"]) == (False, True, ["ALL"])
    writable = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/var/spool/cascade"], writable


BACKUP = """backup:
  enabled: true
  schedule: "0 */6 * * *"
  keep: 14
  volume: {persistentVolumeClaim: {claimName: cascade-backups}}
  escrowVolume: {persistentVolumeClaim: {claimName: cascade-escrow}}
"""


def test_scheduled_backups_are_a_restricted_cronjob_that_only_reads(tools, tmp_path):
    """backup.enabled renders a CronJob running `cascade-operator backup` into the archive
    volume (pruned to `keep`), the escrow on its own volume, the key from its Secret; its service
    account lists Cascade's kinds and Secrets and may touch only the master key and the tenant
    key ring by name. It validates; without volumes the chart refuses to render."""
    helm, validate = tools
    values = tmp_path / "backup.yaml"
    values.write_text(BACKUP)
    r = template(helm, values)
    assert r.returncode == 0, r.stderr
    rendered = docs(r.stdout)
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(rendered))
    v = subprocess.run([validate, "--strict", "-k", "1.32.0", "--quiet", str(path)], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    cron = next(d for d in rendered if d["kind"] == "CronJob")
    assert cron["spec"]["schedule"] == "0 */6 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "cascade-backup" and pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["args"] == ["backup", "--output", "/backup", "--keep", "14", "--escrow", "/escrow/cascade.escrow", "--key-file", "/etc/cascade-backup/backup.key"]
    assert (c["securityContext"]["readOnlyRootFilesystem"], c["securityContext"]["capabilities"]["drop"]) == (True, ["ALL"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backup"]["persistentVolumeClaim"]["claimName"] == "cascade-backups"
    assert volumes["escrow"]["persistentVolumeClaim"]["claimName"] == "cascade-escrow"
    assert volumes["key"]["secret"] == {"secretName": "cascade-backup-key", "defaultMode": 0o400}
    cluster = next(d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "cascade-backup")
    kinds = ["relaypools", "sendingdomains", "dkimkeys", "apikeys", "webhookendpoints", "suppressionshards"]
    assert set().union(*(grants(rule) for rule in cluster["rules"])) == {("cascade-mail.com", k, "list") for k in kinds} | {("", "secrets", "list")}
    role = next(d for d in rendered if d["kind"] == "Role" and d["metadata"]["name"] == "cascade-backup")
    assert role["metadata"]["namespace"] == "cascade-system"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["cascade-master-key", "cascade-backup-tenant-keys"], "verbs": ["get", "patch"]}]
    refused = template(helm, None, "--set", "backup.enabled=true")
    assert refused.returncode != 0 and "backup.volume is required" in refused.stderr, refused.stderr
