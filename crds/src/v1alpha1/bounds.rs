//! Size and shape limits of every field a tenant writes. The CRD schema enforces them at
//! admission (`maxItems`, `maxLength`, `pattern`, CEL on `metadata.name`); the operator checks the
//! ones that bound its own work again per object, because Helm never upgrades CRDs (a cluster may
//! run an older, looser schema) and `cascade-operator render` reads files no API server saw.

/// A DNS domain name: lower-case labels of 1-63 letters, digits and inner `-`, at most 253.
pub const DOMAIN_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
pub const MAX_DOMAIN: usize = 253;
/// A DNS name whose labels may start with `_` (`_spf.relay.example.com`), for names that are
/// looked up rather than mailed from.
pub const DNS_NAME_PATTERN: &str = r"^(_?[a-z0-9]([-a-z0-9_]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
/// An IPv4 or IPv6 network (`10.0.0.0/8`, `2001:db8::/32`) or a bare address. The pattern
/// checks the shape and the prefix length; the operator and the relays parse the address.
pub const CIDR_PATTERN: &str = r"^(([0-9]{1,3}\.){3}[0-9]{1,3}(/([0-9]|[12][0-9]|3[0-2]))?|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?)$";
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128`.
pub const MAX_CIDR: usize = 49;
/// Names of other objects in the namespace (Kubernetes object names).
pub const MAX_OBJECT_NAME: usize = 253;
/// An ApiKey's or DkimKey's own name: it is the value of the label on the Secret the operator
/// writes for it, and label values are at most 63 characters.
pub const MAX_LABELLED_NAME: usize = 63;
/// A SendingDomain with generated keys gets the DkimKey `<name>-dkim`, itself a labelled name.
pub const MAX_GENERATING_DOMAIN_NAME: usize = MAX_LABELLED_NAME - "-dkim".len();

pub const MAX_SCOPES: usize = 8;
pub const MAX_ALLOWED_DOMAINS: usize = 100;
pub const MAX_ALLOWED_CIDRS: usize = 64;
pub const MAX_DKIM_KEYS: usize = 8;
pub const MAX_SPF_EGRESS: usize = 32;
/// `mailto:` URIs and other short free text (`anomalies.acknowledged`).
pub const MAX_URI: usize = 512;
pub const MAX_NOTE: usize = 1024;
/// RFC 3339 times and durations like `90d`.
pub const MAX_TIME: usize = 64;
pub const MAX_DURATION: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1alpha1::{ApiKey, DkimKey, SendingDomain};
    use kube::CustomResourceExt;

    /// The literals the schema attributes need say what the constants and the contract say.
    #[test]
    fn the_schema_says_what_the_constants_say() {
        let crd = serde_json::to_value(ApiKey::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["scopes"]["items"]["enum"], serde_json::json!(crate::relay_config::KNOWN_SCOPES));
        let rules = |crd: String| crd.contains(&format!("size(self.metadata.name) <= {MAX_LABELLED_NAME}"));
        assert!(rules(serde_json::to_string(&ApiKey::crd()).unwrap()) && rules(serde_json::to_string(&DkimKey::crd()).unwrap()));
        let domains = serde_json::to_string(&SendingDomain::crd()).unwrap();
        assert!(domains.contains(&format!("size(self.metadata.name) <= {MAX_GENERATING_DOMAIN_NAME}")));
        assert_eq!(MAX_GENERATING_DOMAIN_NAME, 58);
    }
}
