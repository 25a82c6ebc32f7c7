//! Generated grains on a three-member cluster: typed calls, errors and
//! panics answered to the caller, hooks, and retries after a member dies.

#![forbid(unsafe_code)]
use std::time::{Duration, Instant};

use protoactor_cluster::{CallOptions, Cluster, RetryPolicy};
use protoactor_codegen_tests::proto::tests::bank::{
    ACCOUNT_KIND, AccountClient, CrashRequest, DepositRequest, DescribeRequest, HoldRequest, WithdrawRequest,
};
use protoactor_codegen_tests::{BankMembers, bank_members, wait_until};
use protoactor_grain::{CallError, REASON_PANIC};

async fn shutdown_all(members: impl IntoIterator<Item = Cluster>) {
    for m in members {
        m.shutdown(true).await;
    }
}

fn default() -> CallOptions {
    CallOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_reach_one_activation_from_every_member() {
    let BankMembers { members, .. } = bank_members(None).await;
    let [a, b, c] = &members;
    let from_a = AccountClient::new(a, "acc-1");
    assert_eq!(from_a.identity(), "acc-1");
    assert_eq!(from_a.deposit(DepositRequest { amount: 5 }, &default()).await.expect("deposit").amount, 5);
    let from_b = AccountClient::new(b, "acc-1");
    let balance = from_b.deposit(DepositRequest { amount: 7 }, &default()).await.expect("deposit from b");
    assert_eq!(balance.amount, 12, "the same activation, whichever member calls");
    let balance = AccountClient::new(c, "acc-1").withdraw(WithdrawRequest { amount: 2 }, &default()).await;
    assert_eq!(balance.expect("withdraw from c").amount, 10);

    // Another identity is another grain.
    let other = AccountClient::new(a, "acc-2").deposit(DepositRequest { amount: 1 }, &default()).await;
    assert_eq!(other.expect("deposit to acc-2").amount, 1);

    let description = from_a.describe(DescribeRequest {}, &default()).await.expect("describe");
    let activation = description.activation.expect("activation described");
    assert_eq!((activation.identity.as_str(), activation.kind.as_str()), ("acc-1", ACCOUNT_KIND));
    assert_eq!(activation.inits, 1, "init ran once, with the identity");
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_messages_go_to_receive_default() {
    let BankMembers { members, .. } = bank_members(None).await;
    let [a, ..] = &members;
    let client = AccountClient::new(a, "acc-plain");
    client.deposit(DepositRequest { amount: 3 }, &default()).await.expect("typed deposit");
    // A bare request message, outside the service: not a deposit.
    a.send("acc-plain", ACCOUNT_KIND, DepositRequest { amount: 100 }).await.expect("one-way send");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = client.describe(DescribeRequest {}, &default()).await.expect("describe");
        if d.other_messages == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "receive_default never saw the plain message");
    }
    let balance = client.withdraw(WithdrawRequest { amount: 0 }, &default()).await.expect("balance");
    assert_eq!(balance.amount, 3, "the plain message did not run the deposit rpc");
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_error_reaches_the_caller_at_once() {
    let BankMembers { members, .. } = bank_members(None).await;
    let client = AccountClient::new(&members[0], "acc-err");
    client.deposit(DepositRequest { amount: 4 }, &default()).await.expect("deposit");
    let error = client.withdraw(WithdrawRequest { amount: 10 }, &default()).await.expect_err("not enough money");
    // The grain's own error, not a cluster timeout: answered at once.
    let grain_error = error.grain_error().expect("the grain's own error");
    assert_eq!(grain_error.reason, "insufficient_funds");
    assert_eq!(grain_error.message, "cannot withdraw 10 from 4");
    // An error is an answer, not a failure: the state is intact.
    let balance = client.withdraw(WithdrawRequest { amount: 1 }, &default()).await.expect("withdraw");
    assert_eq!(balance.amount, 3);
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_method_answers_an_error_and_the_grain_restarts() {
    let BankMembers { members, .. } = bank_members(None).await;
    let client = AccountClient::new(&members[1], "acc-panic");
    client.deposit(DepositRequest { amount: 50 }, &default()).await.expect("deposit");
    // An answer with reason `panic`, not a cluster timeout.
    let error = client.crash(CrashRequest { why: "boom".into() }, &default()).await.expect_err("the method panics");
    match &error {
        CallError::Grain(e) => {
            assert_eq!(e.reason, REASON_PANIC);
            assert!(e.message.contains("tests.bank.Account/Crash panicked: crash requested: boom"), "{}", e.message);
        }
        other => panic!("expected the grain's panic error, got {other:?}"),
    }
    // The supervisor restarted the grain: a fresh object, initialised again.
    let balance = client.deposit(DepositRequest { amount: 1 }, &default()).await.expect("deposit after the restart");
    assert_eq!(balance.amount, 1, "the restarted grain has fresh state");
    let d = client.describe(DescribeRequest {}, &default()).await.expect("describe");
    assert_eq!(d.activation.expect("activation").inits, 1, "init ran on the new object");
    shutdown_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_reach_the_grain_activated_again_after_its_member_dies() {
    let BankMembers { agent, members, .. } = bank_members(None).await;
    let [a, b, c] = members;
    let first = AccountClient::new(&a, "acc-move").deposit(DepositRequest { amount: 9 }, &default()).await;
    let host = first.expect("first deposit").address;
    let (victim, survivors): (Vec<Cluster>, Vec<Cluster>) =
        [a, b, c].into_iter().partition(|m| m.address().as_ref() == host.as_str());
    let victim = victim.into_iter().next().expect("the host is one of the members");
    let victim_id = victim.id().to_string();
    tokio::time::timeout(Duration::from_secs(10), victim.shutdown(false)).await.expect("abrupt stop in time");
    agent.deregister(&victim_id);

    let options = CallOptions::default()
        .with_retry(RetryPolicy::new(20, Duration::from_millis(50)))
        .with_timeout(Duration::from_secs(1))
        .with_deadline(Duration::from_secs(15));
    let client = AccountClient::new(&survivors[0], "acc-move");
    let balance =
        client.deposit(DepositRequest { amount: 2 }, &options).await.expect("the retry reaches a new activation");
    assert_ne!(balance.address, host, "activated on a survivor");
    assert!(survivors.iter().any(|m| m.address().as_ref() == balance.address.as_str()));
    assert_eq!(balance.amount, 2, "a new activation, fresh state");
    shutdown_all(survivors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_grain_is_passivated_and_terminate_runs() {
    let BankMembers { members, stats, .. } = bank_members(Some(Duration::from_millis(300))).await;
    let client = AccountClient::new(&members[2], "acc-idle");
    client.deposit(DepositRequest { amount: 8 }, &default()).await.expect("deposit");
    assert!(wait_until(Duration::from_secs(5), || stats.terminated() == 1).await, "terminate ran on passivation");
    let balance = client.deposit(DepositRequest { amount: 1 }, &default()).await.expect("deposit after passivation");
    assert_eq!(balance.amount, 1, "activated again with fresh state");
    shutdown_all(members).await;
}

/// `Hold` is reentrant (build.rs): while it waits, the same activation
/// answers a deposit. A non-reentrant method would hold the mailbox, and the
/// deposit would time out behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reentrant_rpc_leaves_the_grain_serving_other_requests() {
    let BankMembers { members, stats, .. } = bank_members(None).await;
    let [a, b, _] = &members;
    let client = AccountClient::new(a, "acc-reentrant");
    client.deposit(DepositRequest { amount: 10 }, &default()).await.expect("deposit");
    let hold = tokio::spawn({
        let client = client.clone();
        async move { client.hold(HoldRequest {}, &CallOptions::default()).await }
    });
    assert!(wait_until(Duration::from_secs(10), || stats.holding() == 1).await, "the hold reached the grain");

    let during = AccountClient::new(b, "acc-reentrant")
        .deposit(DepositRequest { amount: 5 }, &default().with_deadline(Duration::from_secs(10)))
        .await;
    assert_eq!(during.expect("a deposit while the hold waits").amount, 15);
    assert!(!hold.is_finished(), "the hold waits for its release");
    assert_eq!(stats.holding(), 1);

    stats.release_holds(1);
    let held = hold.await.expect("hold task").expect("hold answered once released");
    assert_eq!(held.amount, 10, "the balance when the hold started");
    shutdown_all(members).await;
}
