"""The relay's metrics as Prometheus scrapes them: counters per tenant (`namespace`), the age of
each tenant's oldest queued message, the build and process metrics; and `GET /queue` on the admin
listener, the per-tenant queue the operator folds into the RelayPool's `status.queues`."""
import json
import re
import time

from conftest import standard_setup, wait_until
from helpers import message, submit_client


def test_counters_are_per_tenant_and_the_oldest_queued_message_is_measured(workdir, dns_server, cleanup):
    _, sink, relay = standard_setup(workdir, dns_server, cleanup)
    sink.handler.busy_rcpts.add("later@dest.test")  # 451 at RCPT: stays queued
    c = submit_client(relay)
    c.sendmail("dev@example.test", ["rcpt@dest.test", "later@dest.test"], message(subject="metrics"))
    c.quit()
    wait_until(lambda: relay.metric('cascade_relay_recipients_delivered_total{namespace="dev"}') == 1 or None, 20, "delivered, counted for dev")
    wait_until(lambda: relay.metric('cascade_relay_recipients_deferred_total{namespace="dev"}') >= 1 or None, 20, "deferred, counted for dev")
    text = relay.metrics()
    assert 'cascade_relay_messages_accepted_total{namespace="dev"} 1' in text
    assert 'cascade_relay_outbound_connections_total{tls="false"}' in text, "tls as true/false"
    assert re.search(r'^cascade_relay_build_info\{version="\d+\.\d+\.\d+"\} 1$', text, re.M), "build info"
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"):
        assert re.search(rf"^{name} \S+$", text, re.M), name
    age = wait_until(lambda: relay.metric('cascade_relay_queue_oldest_message_age_seconds{namespace="dev"}') or None, 30, "the queue age of dev's oldest message")
    assert 1 <= age < 60, age
    queue = json.loads(relay.admin_get("/queue"))
    assert [(q["namespace"], q["messages"]) for q in queue] == [("dev", 1)], queue
    assert abs(queue[0]["oldest"] - (time.time() - queue[0]["oldestAgeSeconds"])) < 5, queue
