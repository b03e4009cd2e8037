//! The relay's run-time audit check ([`cascade_core::audit::watch`]): every
//! `audit.verifyInterval` the records appended since the last look are verified on a blocking
//! thread; breaks are logged (`file:line: what`, never record contents) and counted in
//! `cascade_relay_audit_chain_breaks`, which the `CascadeAuditChainBroken` alert watches.

use crate::relay::Relay;
use std::sync::Arc;

pub async fn run(relay: Arc<Relay>) {
    let Some(mut watch) = relay.audit.watch() else { return };
    let mut shutdown = relay.shutdown_signal();
    loop {
        let interval = relay.runtime().config.audit.as_ref().map_or(std::time::Duration::from_secs(60), |a| a.verify_interval.0);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = Relay::stopped(&mut shutdown) => return,
        }
        let anchor = relay.audit.anchor();
        let Ok((w, breaks)) = tokio::task::spawn_blocking(move || {
            let breaks = watch.check(anchor.as_ref());
            (watch, breaks)
        })
        .await
        else {
            return;
        };
        watch = w;
        for b in &breaks {
            tracing::error!(file = %b.file, line = b.line, what = %b.what, "the audit trail does not verify");
        }
        relay.metrics.audit_chain_breaks.add(i64::try_from(breaks.len()).unwrap_or(i64::MAX));
        relay.metrics.audit_records_verified.set(i64::try_from(watch.records()).unwrap_or(i64::MAX));
    }
}
