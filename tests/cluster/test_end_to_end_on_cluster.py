"""The end-to-end gRPC tests again, with the replica's state in a Redis Cluster."""

from tests.grpc.test_end_to_end import (  # noqa: F401 - collected here with the cluster's redis_url
    test_audit_log_records_before_and_after_of_every_supervisor_change,
    test_customer_returns_on_another_channel_to_the_same_agent_with_history,
    test_declined_offer_returns_ahead_of_newer_contacts,
    test_expired_offers_return_to_the_queue_and_misses_set_the_agent_away,
    test_health_is_serving_and_reflection_lists_the_services,
    test_queue_stats_and_wait_estimate_count_waiting_contacts,
    test_sign_out_returns_pending_offers_to_the_queue,
    test_skill_change_applies_to_the_very_next_routing_decision,
    test_submit_contact_is_idempotent_by_request_id,
    test_watch_contact_streams_queued_offered_assigned_completed,
)
from tests.redis.test_embedded import (  # noqa: F401
    test_aredis_fixture_gives_an_empty_database,
    test_redis_client_fixture_gives_an_empty_database,
)
