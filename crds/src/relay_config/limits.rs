//! Inbound limits and timeouts.

use super::defaults::*;
use crate::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

/// Inbound limits and timeouts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Largest message accepted (advertised in EHLO SIZE).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    /// Recipients per message.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Longest command or text line including CRLF (RFC 5321: at least 512 and 1000).
    #[serde(default = "default_max_line_length")]
    pub max_line_length: usize,
    /// Concurrent SMTP sessions over all listeners.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Concurrent SMTP sessions from one client address (a flood from one address cannot take
    /// the sessions others need).
    #[serde(default = "default_max_sessions_per_client")]
    pub max_sessions_per_client: usize,
    /// Messages per minute from all the keys of one tenant together (none: no tenant limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_messages_per_minute: Option<u32>,
    /// Messages one tenant may have queued on this relay (bounces included); above it the
    /// tenant's new mail gets `451 4.3.1` and every other tenant is served as usual.
    #[serde(default = "default_tenant_queued_messages")]
    pub tenant_queued_messages: u64,
    /// Bytes of queued mail one tenant may have on this relay; likewise `451 4.3.1` above it.
    #[serde(default = "default_tenant_queued_bytes")]
    pub tenant_queued_bytes: ByteSize,
    /// Commands in one session before it is closed.
    #[serde(default = "default_max_commands")]
    pub max_commands: usize,
    /// Wait for a command (RFC 5321: 5 minutes).
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// Wait for each chunk of message data (RFC 5321: 3 minutes).
    #[serde(default = "default_data_timeout")]
    pub data_timeout: HumanDuration,
    /// The whole session, from connect to close, however busy: a client that trickles bytes
    /// to stay under the per-read timeouts is closed with `421 4.4.2` at this deadline.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: HumanDuration,
    /// The least message data (bytes per second) a client must send in every `dataRateWindow`
    /// of a DATA phase; slower clients are closed with `421 4.4.2` (Postfix's
    /// `smtpd_min_data_rate` is the model). `0` turns the check off.
    #[serde(default = "default_min_data_rate")]
    pub min_data_rate: ByteSize,
    /// The window over which `minDataRate` is measured.
    #[serde(default = "default_data_rate_window")]
    pub data_rate_window: HumanDuration,
    /// Failed AUTH attempts from one IP within `authFailureWindow` before it is refused.
    #[serde(default = "default_auth_failures")]
    pub max_auth_failures: u32,
    /// Window for counting failed AUTH attempts, and how long an IP is refused after.
    #[serde(default = "default_auth_window")]
    pub auth_failure_window: HumanDuration,
    /// How long in-flight sessions may take to finish on shutdown.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// Authenticated HTTP API requests other than sends (status reads, which may ask every peer,
    /// suppression list reads and changes, feedback reports) per minute per key and pod,
    /// bursting to one minute's worth; over it `429` with `Retry-After`. Sends are limited per
    /// message (`messagesPerMinute`).
    #[serde(default = "default_api_requests_per_minute")]
    pub api_requests_per_minute: u32,
}

fn default_api_requests_per_minute() -> u32 {
    600
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: default_max_message_size(),
            max_recipients: default_max_recipients(),
            max_line_length: default_max_line_length(),
            max_sessions: default_max_sessions(),
            max_sessions_per_client: default_max_sessions_per_client(),
            tenant_messages_per_minute: None,
            tenant_queued_messages: default_tenant_queued_messages(),
            tenant_queued_bytes: default_tenant_queued_bytes(),
            max_commands: default_max_commands(),
            command_timeout: default_command_timeout(),
            data_timeout: default_data_timeout(),
            session_timeout: default_session_timeout(),
            min_data_rate: default_min_data_rate(),
            data_rate_window: default_data_rate_window(),
            max_auth_failures: default_auth_failures(),
            auth_failure_window: default_auth_window(),
            shutdown_grace: default_shutdown_grace(),
            api_requests_per_minute: default_api_requests_per_minute(),
        }
    }
}
