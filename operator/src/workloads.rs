//! The relay workloads of a RelayPool, as pure functions of the pool: a StatefulSet (spool on a
//! PersistentVolumeClaim per pod, restricted pod security, the config hash as a pod annotation so
//! pods roll when the configuration changes), the relay's ServiceAccount with a Role that grants
//! `get`/`list`/`watch` on its one configuration Secret by name and nothing else (the relay
//! watches it, see the relay's `watch` module, so a revocation needs no pod restart), a Service, a headless
//! Service for the StatefulSet, a PodDisruptionBudget, a NetworkPolicy (ingress to the SMTP and
//! tenant HTTP ports from the tenant namespaces and the allowed client networks, to the admin port
//! from the operator's namespace and `listeners.adminNamespaces` only; egress only DNS,
//! SMTP and the Kubernetes API for the configuration watch) and, with
//! `autoscaling`, a HorizontalPodAutoscaler.

use cascade_crds::v1alpha1::{RelayPool, ServiceType, TrafficPolicy};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::autoscaling::v2::{CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource};
use k8s_openapi::api::core::v1::*;
use k8s_openapi::api::networking::v1::*;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// Where the relay finds its files inside the pod.
pub const CONFIG_DIR: &str = "/etc/cascade";
pub const SPOOL_DIR: &str = "/var/spool/cascade";
/// The pool's spool and sealing keys (Secret `<pool>-keys`), mounted apart from the bundle.
pub const KEYS_DIR: &str = "/etc/cascade-keys";
/// The non-root user the relay image runs as.
pub const RELAY_UID: i64 = 65532;

pub(crate) fn selector_labels(pool: &str) -> BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_string(), "cascade-relay".to_string()), (crate::labels::RELAY_POOL.to_string(), pool.to_string())].into()
}

pub(crate) fn meta(pool: &RelayPool, name: String) -> ObjectMeta {
    let mut labels = selector_labels(&pool.name_any());
    labels.insert(crate::labels::MANAGED_BY.into(), crate::labels::FIELD_MANAGER.into());
    ObjectMeta { name: Some(name), namespace: pool.namespace(), labels: Some(labels), owner_references: pool.controller_owner_ref(&()).map(|o| vec![o]), ..Default::default() }
}

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: i32::from(port), protocol: Some("TCP".into()), ..Default::default() }
}

fn probe(path: &str, http_port: u16) -> Probe {
    // The admin listener is HTTPS (mutual TLS optional for the probes' paths); the kubelet does
    // not verify the certificate.
    let get = HTTPGetAction { path: Some(path.into()), port: IntOrString::Int(i32::from(http_port)), scheme: Some("HTTPS".into()), ..Default::default() };
    Probe { http_get: Some(get), period_seconds: Some(5), ..Default::default() }
}

fn secret_volume(name: &str, secret: String) -> Volume {
    Volume { name: name.into(), secret: Some(SecretVolumeSource { secret_name: Some(secret), default_mode: Some(0o440), ..Default::default() }), ..Default::default() }
}

const TERMINATION_GRACE_SECONDS: i64 = 120;

/// Restricted pod security (non-root, RuntimeDefault seccomp) for every relay pod.
pub(crate) fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RELAY_UID),
        run_as_group: Some(RELAY_UID),
        fs_group: Some(RELAY_UID),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

/// No privilege escalation, read-only root filesystem, every capability dropped.
pub(crate) fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

/// The bundle and the keys read-only, the spool writable: the only writable path.
pub(crate) fn relay_mounts() -> Vec<VolumeMount> {
    vec![
        VolumeMount { name: "config".into(), mount_path: CONFIG_DIR.into(), read_only: Some(true), ..Default::default() },
        VolumeMount { name: "keys".into(), mount_path: KEYS_DIR.into(), read_only: Some(true), ..Default::default() },
        VolumeMount { name: "spool".into(), mount_path: SPOOL_DIR.into(), ..Default::default() },
    ]
}

pub(crate) fn secret_volumes(pool: &str) -> Vec<Volume> {
    vec![secret_volume("config", crate::labels::bundle_secret(pool)), secret_volume("keys", crate::labels::keys_secret(pool))]
}

pub fn statefulset(pool: &RelayPool, image: &str, config_hash: &str) -> StatefulSet {
    let name = pool.name_any();
    let l = &pool.spec.listeners;
    let mut container = Container {
        name: "relay".into(),
        image: Some(image.into()),
        args: Some(vec![
            "serve".into(),
            "--config".into(),
            format!("{CONFIG_DIR}/relay.yaml"),
            "--watch-secret".into(),
            format!("{}/{}", pool.namespace().unwrap_or_default(), crate::labels::bundle_secret(&name)),
        ]),
        ports: Some(vec![port("submission", l.submission_port), port("submissions", l.submissions_port), port("http", l.http_port), port("admin", l.admin_port)]),
        readiness_probe: Some(probe("/readyz", l.admin_port)),
        liveness_probe: Some(probe("/healthz", l.admin_port)),
        security_context: Some(restricted_container()),
        volume_mounts: Some(relay_mounts()),
        ..Default::default()
    };
    let mut pod = PodSpec {
        // The token lets the relay watch its configuration Secret; its Role allows nothing else.
        service_account_name: Some(relay_account(&name)),
        automount_service_account_token: Some(true),
        // Sessions finish (shutdownGrace, 25 s), then the queue is handed to peers (up to 60 s).
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(restricted_pod()),
        volumes: Some(secret_volumes(&name)),
        ..Default::default()
    };
    let mut storage = BTreeMap::new();
    storage.insert("storage".to_string(), Quantity(pool.spec.spool.size.clone()));
    let claim = PersistentVolumeClaim {
        // Labelled, so the operator finds the claims a scale-down leaves behind (spool_drain).
        metadata: ObjectMeta { name: Some("spool".into()), labels: Some(selector_labels(&name)), ..Default::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: pool.spec.spool.storage_class.clone(),
            resources: Some(VolumeResourceRequirements { requests: Some(storage), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut template_meta = ObjectMeta { labels: Some(selector_labels(&name)), ..Default::default() };
    template_meta.annotations = Some([("cascade-mail.com/config-hash".to_string(), config_hash.to_string())].into());
    crate::pod_shape::relay(pool, &selector_labels(&name), &mut pod, &mut container, &mut template_meta);
    pod.containers = vec![container];
    StatefulSet {
        metadata: meta(pool, crate::labels::statefulset(&name)),
        spec: Some(StatefulSetSpec {
            // With autoscaling the HPA owns the replica count.
            replicas: pool.spec.autoscaling.is_none().then_some(pool.spec.replicas),
            service_name: Some(crate::labels::headless_service(&name)),
            selector: LabelSelector { match_labels: Some(selector_labels(&name)), ..Default::default() },
            template: PodTemplateSpec { metadata: Some(template_meta), spec: Some(pod) },
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn relay_account(pool: &str) -> String {
    crate::labels::statefulset(pool)
}

/// The relay's account and the Role letting it read its bundle and shard Secrets, by name only.
pub fn relay_rbac(pool: &RelayPool, shards: &[String]) -> (ServiceAccount, Role, RoleBinding) {
    let name = relay_account(&pool.name_any());
    let mut account_meta = meta(pool, name.clone());
    let annotations = &pool.spec.pod.service_account_annotations;
    account_meta.annotations = (!annotations.is_empty()).then(|| annotations.clone());
    let account = ServiceAccount { metadata: account_meta, automount_service_account_token: Some(false), ..Default::default() };
    let role = Role {
        metadata: meta(pool, name.clone()),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec!["".into()]),
                resources: Some(vec!["secrets".into()]),
                resource_names: Some(std::iter::once(crate::labels::bundle_secret(&pool.name_any())).chain(shards.iter().cloned()).collect()),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..Default::default()
            },
            PolicyRule {
                // The pool's shared suppression lists (selected by label; only the operator writes them).
                api_groups: Some(vec!["cascade-mail.com".into()]),
                resources: Some(vec!["suppressionshards".into()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..Default::default()
            },
        ]),
    };
    let binding = RoleBinding {
        metadata: meta(pool, name.clone()),
        role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".into(), kind: "Role".into(), name: name.clone() },
        subjects: Some(vec![Subject { kind: "ServiceAccount".into(), name, namespace: pool.namespace(), ..Default::default() }]),
    };
    (account, role, binding)
}

fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort { name: Some(name.into()), port: i32::from(port), target_port: Some(IntOrString::String(name.into())), protocol: Some("TCP".into()), ..Default::default() }
}

/// The client-facing Service and the StatefulSet's headless Service.
pub fn services(pool: &RelayPool) -> [Service; 2] {
    let name = pool.name_any();
    let l = &pool.spec.listeners;
    let ports = vec![service_port("submission", l.submission_port), service_port("submissions", l.submissions_port), service_port("http", l.http_port), service_port("admin", l.admin_port)];
    let s = &pool.spec.service;
    // The client-facing Service carries the SMTP and tenant HTTP ports (exposed as the pool
    // says); the admin port is only on the headless one, which the platform uses.
    let exposed: Vec<ServicePort> = ports[..3]
        .iter()
        .cloned()
        .map(|mut p| {
            if s.type_ == ServiceType::NodePort {
                p.node_port = match p.name.as_deref() {
                    Some("submission") => s.submission_node_port,
                    Some("submissions") => s.submissions_node_port,
                    _ => None,
                };
            }
            p
        })
        .collect();
    let type_ = match s.type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let spec = |headless: bool| ServiceSpec {
        selector: Some(selector_labels(&name)),
        ports: Some(if headless { ports.clone() } else { exposed.clone() }),
        cluster_ip: headless.then(|| "None".to_string()),
        type_: (!headless).then(|| type_.to_string()),
        external_traffic_policy: s.external_traffic_policy.filter(|_| !headless).map(|p| match p {
            TrafficPolicy::Cluster => "Cluster".to_string(),
            TrafficPolicy::Local => "Local".to_string(),
        }),
        ..Default::default()
    };
    [
        Service { metadata: meta(pool, crate::labels::statefulset(&name)), spec: Some(spec(false)), ..Default::default() },
        Service { metadata: meta(pool, crate::labels::headless_service(&name)), spec: Some(spec(true)), ..Default::default() },
    ]
}

pub fn disruption_budget(pool: &RelayPool) -> PodDisruptionBudget {
    let name = pool.name_any();
    PodDisruptionBudget {
        metadata: meta(pool, crate::labels::statefulset(&name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector_labels(&name)), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn np_port(port: u16, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(i32::from(port))), protocol: Some(protocol.into()), ..Default::default() }
}

/// Who may reach the relay's ports: pods in the tenant namespaces (by name and by labels, as the
/// pool selects them) and the `allowedClientCidrs` networks.
fn allowed_peers(pool: &RelayPool) -> Vec<NetworkPolicyPeer> {
    let t = &pool.spec.tenants;
    let namespaces = |selector: LabelSelector| NetworkPolicyPeer { namespace_selector: Some(selector), ..Default::default() };
    let mut peers = Vec::new();
    if !t.match_names.is_empty() {
        let by_name = LabelSelectorRequirement { key: "kubernetes.io/metadata.name".into(), operator: "In".into(), values: Some(t.match_names.clone()) };
        peers.push(namespaces(LabelSelector { match_expressions: Some(vec![by_name]), ..Default::default() }));
    }
    if !t.match_labels.is_empty() {
        peers.push(namespaces(LabelSelector { match_labels: Some(t.match_labels.clone()), ..Default::default() }));
    }
    peers.extend(pool.spec.allowed_client_cidrs.iter().map(|c| NetworkPolicyPeer { ip_block: Some(IPBlock { cidr: c.clone(), except: None }), ..Default::default() }));
    peers
}

/// `operator_ns`: the operator's namespace, which (with `listeners.adminNamespaces`) may reach the
/// admin port (metrics, DMARC summaries); tenants never can.
pub fn network_policy(pool: &RelayPool, operator_ns: &str) -> NetworkPolicy {
    let name = pool.name_any();
    let l = &pool.spec.listeners;
    // No peers at all admits nobody (an empty `from` would admit everyone).
    let from = Some(allowed_peers(pool));
    let platform_namespaces = std::iter::once(operator_ns.to_string()).chain(l.admin_namespaces.iter().cloned()).collect();
    let by_name = LabelSelectorRequirement { key: "kubernetes.io/metadata.name".into(), operator: "In".into(), values: Some(platform_namespaces) };
    let platform = NetworkPolicyPeer { namespace_selector: Some(LabelSelector { match_expressions: Some(vec![by_name]), ..Default::default() }), ..Default::default() };
    // The pool's relays and its drain Jobs hand queued mail to the relays' admin port.
    let peers = NetworkPolicyPeer { pod_selector: Some(LabelSelector { match_labels: Some(selector_labels(&name)), ..Default::default() }), ..Default::default() };
    let drains = NetworkPolicyPeer { pod_selector: Some(LabelSelector { match_labels: Some(crate::labels::drain_pods(&name)), ..Default::default() }), ..Default::default() };
    let smtp_out = [25, 465, 587, l.admin_port].into_iter().map(|p| np_port(p, "TCP"));
    let dns_out = [np_port(53, "UDP"), np_port(53, "TCP")];
    // The API server (Service port 443, endpoints usually 6443) for the configuration watch.
    let api_out = [np_port(443, "TCP"), np_port(6443, "TCP")];
    NetworkPolicy {
        metadata: meta(pool, crate::labels::statefulset(&name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(selector_labels(&name)), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule { from, ports: Some(vec![np_port(l.submission_port, "TCP"), np_port(l.submissions_port, "TCP"), np_port(l.http_port, "TCP")]) },
                NetworkPolicyIngressRule { from: Some(vec![platform, peers, drains]), ports: Some(vec![np_port(l.admin_port, "TCP")]) },
            ]),
            egress: Some(vec![NetworkPolicyEgressRule { ports: Some(dns_out.into_iter().chain(smtp_out).chain(api_out).collect()), to: None }]),
        }),
    }
}

pub fn autoscaler(pool: &RelayPool) -> Option<HorizontalPodAutoscaler> {
    let a = pool.spec.autoscaling.as_ref()?;
    let name = pool.name_any();
    Some(HorizontalPodAutoscaler {
        metadata: meta(pool, crate::labels::statefulset(&name)),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(<StatefulSet as k8s_openapi::Resource>::API_VERSION.into()),
                kind: <StatefulSet as k8s_openapi::Resource>::KIND.into(),
                name: crate::labels::statefulset(&name),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget { type_: "Utilization".into(), average_utilization: Some(a.target_cpu_percent), ..Default::default() },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Every workload object of a pool, typed.
#[derive(Clone, Debug)]
pub struct Workloads {
    pub account: ServiceAccount,
    pub role: Role,
    pub binding: RoleBinding,
    pub statefulset: StatefulSet,
    pub service: Service,
    pub headless: Service,
    pub disruption_budget: PodDisruptionBudget,
    pub network_policy: NetworkPolicy,
    /// With `autoscaling` only.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
}

impl Workloads {
    /// The manifests in apply order (the account before the pods that use it), for review.
    pub fn manifests(&self) -> Result<Vec<String>, serde_saphyr::ser::Error> {
        let mut out = vec![
            serde_saphyr::to_string(&self.account)?,
            serde_saphyr::to_string(&self.role)?,
            serde_saphyr::to_string(&self.binding)?,
            serde_saphyr::to_string(&self.statefulset)?,
            serde_saphyr::to_string(&self.service)?,
            serde_saphyr::to_string(&self.headless)?,
            serde_saphyr::to_string(&self.disruption_budget)?,
            serde_saphyr::to_string(&self.network_policy)?,
        ];
        if let Some(hpa) = &self.autoscaler {
            out.push(serde_saphyr::to_string(hpa)?);
        }
        Ok(out)
    }
}

/// Every workload object of the pool.
pub fn all(pool: &RelayPool, image: &str, config_hash: &str, operator_ns: &str, shards: &[String]) -> Workloads {
    let [service, headless] = services(pool);
    let (account, role, binding) = relay_rbac(pool, shards);
    Workloads {
        account,
        role,
        binding,
        statefulset: statefulset(pool, image, config_hash),
        service,
        headless,
        disruption_budget: disruption_budget(pool),
        network_policy: network_policy(pool, operator_ns),
        autoscaler: autoscaler(pool),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(spec: serde_json::Value) -> RelayPool {
        let mut p = RelayPool::new("main", serde_json::from_value(spec).unwrap());
        p.metadata.namespace = Some("cascade-system".into());
        p.metadata.uid = Some("uid-1".into());
        p
    }

    #[test]
    fn relay_pods_run_restricted_with_the_config_hash() {
        let s = statefulset(&pool(serde_json::json!({ "spool": { "size": "20Gi", "storageClass": "fast" } })), "cascade-relay:test", "abc123");
        let spec = s.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let t = spec.template;
        assert_eq!(t.metadata.unwrap().annotations.unwrap()["cascade-mail.com/config-hash"], "abc123");
        let pod = t.spec.unwrap();
        assert_eq!((pod.automount_service_account_token, pod.service_account_name.as_deref()), (Some(true), Some("main-relay")));
        let psc = pod.security_context.unwrap();
        assert_eq!((psc.run_as_non_root, psc.seccomp_profile.unwrap().type_.as_str()), (Some(true), "RuntimeDefault"));
        let c = &pod.containers[0];
        let csc = c.security_context.clone().unwrap();
        assert_eq!((csc.read_only_root_filesystem, csc.allow_privilege_escalation), (Some(true), Some(false)));
        assert_eq!(csc.capabilities.unwrap().drop.unwrap(), vec!["ALL"]);
        assert_eq!(c.args.clone().unwrap(), vec!["serve", "--config", "/etc/cascade/relay.yaml", "--watch-secret", "cascade-system/main-relay-config"]);
        let volumes: Vec<_> = pod.volumes.clone().unwrap().into_iter().map(|v| (v.name, v.secret.unwrap().secret_name.unwrap())).collect();
        assert_eq!(volumes, [("config".to_string(), "main-relay-config".to_string()), ("keys".to_string(), "main-keys".to_string())]);
        let claim = &spec.volume_claim_templates.unwrap()[0];
        let claim_spec = claim.spec.clone().unwrap();
        assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(claim_spec.resources.unwrap().requests.unwrap()["storage"].0, "20Gi");
        assert_eq!(s.metadata.owner_references.unwrap()[0].kind, "RelayPool");
    }

    #[test]
    fn autoscaling_hands_replicas_to_an_hpa() {
        let p = pool(serde_json::json!({ "autoscaling": { "minReplicas": 2, "maxReplicas": 6 } }));
        assert_eq!(statefulset(&p, "i", "h").spec.unwrap().replicas, None);
        let hpa = autoscaler(&p).unwrap().spec.unwrap();
        assert_eq!((hpa.min_replicas, hpa.max_replicas, hpa.scale_target_ref.name.as_str()), (Some(2), 6, "main-relay"));
        assert!(autoscaler(&pool(serde_json::json!({}))).is_none());
        assert_eq!(all(&p, "i", "h", "ops", &[]).manifests().unwrap().len(), 9);
        let manifests = all(&pool(serde_json::json!({})), "i", "h", "ops", &[]).manifests().unwrap();
        assert_eq!(manifests.len(), 8);
        assert!(manifests[3].starts_with("apiVersion: apps/v1\nkind: StatefulSet\n"), "{}", manifests[3]);
    }

    #[test]
    fn network_policy_keeps_tenants_to_smtp_and_tenant_http_and_the_admin_port_to_the_platform() {
        let spec = serde_json::json!({ "allowedClientCidrs": ["10.0.0.0/8"], "tenants": { "matchNames": ["shop"], "matchLabels": { "cascade-mail.com/tenant": "yes" } } });
        let np = network_policy(&pool(spec), "cascade-ops").spec.unwrap();
        let ingress = &np.ingress.unwrap()[0];
        let from = ingress.from.clone().unwrap();
        let by_name = from[0].namespace_selector.clone().unwrap().match_expressions.unwrap();
        assert_eq!((by_name[0].key.as_str(), by_name[0].operator.as_str(), by_name[0].values.clone().unwrap()), ("kubernetes.io/metadata.name", "In", vec!["shop".to_string()]));
        assert_eq!(from[1].namespace_selector.clone().unwrap().match_labels.unwrap()["cascade-mail.com/tenant"], "yes");
        assert_eq!(from[2].ip_block.clone().unwrap().cidr, "10.0.0.0/8");
        let ports: Vec<_> = ingress.ports.clone().unwrap().iter().map(|p| p.port.clone().unwrap()).collect();
        assert_eq!(ports, vec![IntOrString::Int(587), IntOrString::Int(465), IntOrString::Int(9587)]);
        let egress: Vec<_> = np.egress.unwrap()[0].ports.clone().unwrap().iter().map(|p| p.port.clone().unwrap()).collect();
        assert_eq!(egress, [53, 53, 25, 465, 587, 9588, 443, 6443].map(IntOrString::Int).to_vec());
        // No tenants and no networks: an empty list of peers, which admits nobody.
        let open = network_policy(&pool(serde_json::json!({})), "cascade-ops").spec.unwrap().ingress.unwrap();
        assert_eq!(open[0].from, Some(vec![]));
        // The admin port (metrics, DMARC summaries) is for the operator's namespace and the
        // listed admin namespaces only; the tenant rule above does not include it.
        let admin = &open[1];
        let platform = admin.from.clone().unwrap()[0].namespace_selector.clone().unwrap().match_expressions.unwrap();
        assert_eq!(platform[0].values.clone().unwrap(), ["cascade-ops"]);
        // ...and for the pool's own relays and drain Jobs (handover), by pod labels.
        let from = admin.from.clone().unwrap();
        assert_eq!(from[1].pod_selector.clone().unwrap().match_labels.unwrap()["cascade-mail.com/relay-pool"], "main");
        assert_eq!(from[2].pod_selector.clone().unwrap().match_labels.unwrap()["cascade-mail.com/drain-of"], "main");
        assert_eq!(admin.ports.clone().unwrap().iter().map(|p| p.port.clone().unwrap()).collect::<Vec<_>>(), vec![IntOrString::Int(9588)]);
        let monitored = network_policy(&pool(serde_json::json!({ "listeners": { "adminNamespaces": ["monitoring"] } })), "cascade-ops").spec.unwrap().ingress.unwrap();
        let platform = monitored[1].from.clone().unwrap()[0].namespace_selector.clone().unwrap().match_expressions.unwrap();
        assert_eq!(platform[0].values.clone().unwrap(), ["cascade-ops", "monitoring"]);
    }

    #[test]
    fn the_relay_may_read_its_own_config_and_shard_secrets_and_nothing_else() {
        let (account, role, binding) = relay_rbac(&pool(serde_json::json!({})), &["main-relay-config-shop".to_string()]);
        assert_eq!(account.metadata.name.as_deref(), Some("main-relay"));
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].resources.as_deref(), Some(&["secrets".to_string()][..]));
        // The pool's shared suppression lists, read-only (sealed; only the operator writes them).
        assert_eq!((rules[1].resources.as_deref(), rules[1].resource_names.as_deref()), (Some(&["suppressionshards".to_string()][..]), None));
        assert_eq!(rules[1].verbs, ["get", "list", "watch"]);
        assert_eq!(rules[0].resource_names.as_deref(), Some(&["main-relay-config".to_string(), "main-relay-config-shop".to_string()][..]));
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!((subject.kind.as_str(), subject.name.as_str(), subject.namespace.as_deref()), ("ServiceAccount", "main-relay", Some("cascade-system")));
        assert_eq!(binding.role_ref.name, "main-relay");
    }

    #[test]
    fn services_select_the_relay_pods() {
        let [svc, headless] = services(&pool(serde_json::json!({})));
        assert_eq!(svc.spec.clone().unwrap().selector.unwrap()["cascade-mail.com/relay-pool"], "main");
        assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
        let names: Vec<_> = svc.spec.clone().unwrap().ports.unwrap().into_iter().map(|p| p.name.unwrap()).collect();
        assert_eq!(names, ["submission", "submissions", "http"], "the admin port is not on the client-facing Service");
        assert_eq!(svc.spec.unwrap().type_.as_deref(), Some("ClusterIP"));
        let [exposed, _] = services(&pool(serde_json::json!({ "service": { "type": "NodePort", "submissionNodePort": 30587, "submissionsNodePort": 30465 } })));
        let spec = exposed.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.ports.unwrap().iter().map(|p| p.node_port).collect::<Vec<_>>(), [Some(30587), Some(30465), None]);
        assert_eq!(spec.external_traffic_policy, None);
        let [exposed, headless] = services(&pool(serde_json::json!({ "service": { "type": "LoadBalancer", "externalTrafficPolicy": "Local" } })));
        assert_eq!(exposed.spec.unwrap().external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(headless.spec.unwrap().external_traffic_policy, None);
        assert_eq!(disruption_budget(&pool(serde_json::json!({}))).spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
    }
}
