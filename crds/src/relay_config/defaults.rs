//! Default values of the relay configuration's fields.

use super::DkimAlgorithm;
use crate::units::{ByteSize, HumanDuration};

pub(super) fn default_hostname() -> String {
    "localhost".into()
}
pub(super) fn default_submission() -> Vec<String> {
    vec!["0.0.0.0:587".into()]
}
pub(super) fn default_submissions() -> Vec<String> {
    vec!["0.0.0.0:465".into()]
}
pub(super) fn default_http() -> String {
    "0.0.0.0:9587".into()
}
pub(super) fn default_admin() -> String {
    "127.0.0.1:9588".into()
}
pub(super) fn default_dkim_algorithm() -> DkimAlgorithm {
    DkimAlgorithm::RsaSha256
}
pub(super) fn default_scopes() -> Vec<String> {
    vec!["smtp:submit".into()]
}
pub(super) fn default_mx_port() -> u16 {
    25
}
pub(super) fn default_concurrency() -> usize {
    64
}
pub(super) fn default_concurrency_per_tenant() -> usize {
    32
}
pub(super) fn default_concurrency_per_destination() -> usize {
    20
}
pub(super) fn default_tenant_queued_messages() -> u64 {
    100_000
}
pub(super) fn default_tenant_queued_bytes() -> ByteSize {
    ByteSize(4 << 30)
}
pub(super) fn default_retry_initial() -> HumanDuration {
    HumanDuration::mins(1)
}
pub(super) fn default_retry_max_delay() -> HumanDuration {
    HumanDuration::hours(4)
}
pub(super) fn default_max_age() -> HumanDuration {
    HumanDuration::days(5)
}
pub(super) fn default_connect_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
pub(super) fn default_command_timeout() -> HumanDuration {
    HumanDuration::mins(5)
}
pub(super) fn default_data_end_timeout() -> HumanDuration {
    HumanDuration::mins(10)
}
pub(super) fn default_idle_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
pub(super) fn default_data_timeout() -> HumanDuration {
    HumanDuration::mins(3)
}
pub(super) fn default_session_timeout() -> HumanDuration {
    HumanDuration::mins(10)
}
pub(super) fn default_min_data_rate() -> ByteSize {
    ByteSize(500)
}
pub(super) fn default_data_rate_window() -> HumanDuration {
    HumanDuration::secs(30)
}
pub(super) fn default_max_message_size() -> ByteSize {
    ByteSize(25 << 20)
}
pub(super) fn default_max_recipients() -> usize {
    100
}
pub(super) fn default_max_line_length() -> usize {
    1000
}
pub(super) fn default_max_sessions() -> usize {
    2000
}
pub(super) fn default_max_sessions_per_client() -> usize {
    50
}
pub(super) fn default_max_commands() -> usize {
    1000
}
pub(super) fn default_auth_failures() -> u32 {
    5
}
pub(super) fn default_auth_window() -> HumanDuration {
    HumanDuration::mins(5)
}
pub(super) fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::secs(25)
}
