//! Store conformance suite: every case runs against every backend, which must agree.

extern crate ephemera_store as store;

mod cases;
mod helpers;

/// Runs each case against each backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    crate::cases::$case(crate::helpers::memory()).await;
                }
            )*
        }
    };
}

conformance!(
    rooms_are_created_read_and_unknown_ones_are_absent,
    names_are_unique_case_insensitively_and_the_owner_name_is_reserved,
    capacity_counts_members_and_always_keeps_the_owner_slot,
    password_rooms_refuse_joins_by_name,
    tickets_are_single_use_and_expire,
    an_owner_claim_attaches_to_the_existing_owner,
    resume_tokens_work_only_for_their_member_in_their_room,
    bearer_tokens_authenticate_owner_and_members,
    messages_get_sequential_ids_and_history_keeps_the_newest,
    history_says_when_it_no_longer_covers_a_gap,
    messages_are_rate_limited_per_member,
    a_member_without_a_live_connection_goes_offline_after_the_grace,
    a_disconnect_from_a_replaced_session_changes_nothing,
    the_owner_going_offline_destroys_a_room_that_says_so,
    rooms_expire_at_their_deadline,
    destroy_deletes_everything_and_publishes_room_closed_once,
    release_is_immediate,
    rate_counters_use_fixed_windows,
    wrong_passwords_are_counted_per_client_in_the_room,
    outstanding_tickets_are_capped_per_room,
    the_bus_carries_only_subscribed_rooms_in_order,
);
