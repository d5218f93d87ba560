//! The results stream of durable maps on a real nats-server: an input's first result is
//! kept, a second one is told apart from a failed store and dropped.

mod nats_support;
mod support;

use nats_support::{NatsServer, fleet};
use rwc_api::nats::TaskResult;
use rwc_client::Value;
use rwc_nats::Written;

fn result(job: &str, index: u64, node: &str, value: u64) -> TaskResult {
    TaskResult {
        job: job.to_owned(),
        index,
        node: node.to_owned(),
        delivery: 1,
        outcome: Ok(Value::U64(value)),
    }
}

#[tokio::test]
async fn a_second_result_for_an_input_is_dropped_and_the_first_kept() {
    let server = NatsServer::start();
    let fleet = fleet(&server.url).await;
    let fleet = fleet.fleet();
    let results = fleet.results().await.expect("the results stream");

    let first = result("job-1", 7, "node-a", 49);
    assert_eq!(
        fleet.write_result(&first).await.expect("first write"),
        Written::First
    );
    assert!(
        fleet
            .has_result(&results, "job-1", 7)
            .await
            .expect("look up")
    );

    // Another node ran the same input again (its first node died after writing).
    let again = result("job-1", 7, "node-b", 50);
    assert_eq!(
        fleet.write_result(&again).await.expect("second write"),
        Written::AlreadyAnswered
    );
    // Through the pipelined writer too: the refusal is no error.
    let mut writes = fleet.result_writes();
    writes.write(again).await.expect("pipelined second write");
    writes.finish().await.expect("pipelined writes confirmed");

    // Another input of the job is not affected.
    let other = result("job-1", 8, "node-b", 64);
    assert_eq!(
        fleet.write_result(&other).await.expect("other write"),
        Written::First
    );

    let stored = results
        .direct_get_last_for_subject(rwc_api::nats::result_subject("job-1", 7))
        .await
        .expect("the stored result");
    let stored: TaskResult = rwc_api::nats::decode(&stored.payload).expect("decode");
    assert_eq!(stored.node, "node-a", "the first result is the one kept");
    assert_eq!(stored.outcome.expect("ok"), Value::U64(49));
}
