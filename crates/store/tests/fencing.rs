//! Lease tokens are unique per claim: after a failover that lost a claim's writes,
//! the next claim of the same job issues a different token, so the older holder's
//! writes are refused. Runs on one Redis and on a three-master cluster.

use std::time::Duration;

use redis::Commands;
use tether_model::{JobSpec, Phase, Status};
use tether_store::{FinishOutcome, LeaseError, Outcome, RenewStatus, Store, StoreConfig};
use tether_testkit::{RedisEndpoint, TestRedis, Topology};

const LONG: Duration = Duration::from_secs(30);

async fn a_claim_lost_in_a_failover_does_not_reissue_its_token(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "fence";
    let id = store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap()
        .id;
    let older = store.claim(queue, "w1", 1, LONG).await.unwrap().remove(0);
    assert_eq!(older.lease.id, id);

    // What a promoted replica that never received the claim holds: the job pending,
    // its entry in the stream, no lease, the epoch and attempts of before.
    let job = format!("tether:{{{queue}}}:job:{id}");
    let stream = format!("tether:{{{queue}}}:stream");
    let mut conn = redis.connection_for(&job);
    let sid: String = conn.xadd(&stream, "*", &[("j", id.to_string())]).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&job)
        .arg(&["st", "pending", "sid", &sid, "ep", "0", "att", "0"])
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("HDEL")
        .arg(&job)
        .arg(&["tk", "wk", "stt"])
        .query(&mut conn)
        .unwrap();
    let _: () = conn
        .zrem(format!("tether:{{{queue}}}:leases"), id.to_string())
        .unwrap();

    let current = store.claim(queue, "w2", 1, LONG).await.unwrap().remove(0);
    assert_eq!(current.lease.id, id);
    assert_eq!(
        current.attempts, older.attempts,
        "the same attempt number again"
    );
    assert_ne!(current.lease, older.lease, "but another token");

    only_the_current_holder_counts(&store, queue, &older, &current).await;
}

/// After a lost claim, the older holder's renew, checkpoint and finish are refused and
/// the current holder's finish is the job's one outcome.
async fn only_the_current_holder_counts(
    store: &Store,
    queue: &str,
    older: &tether_store::Claimed,
    current: &tether_store::Claimed,
) {
    let id = current.lease.id;
    let (_, renewed) = store
        .renew(queue, &[(older.lease.id, older.lease.token.clone())], LONG)
        .await
        .unwrap();
    assert_eq!(renewed, vec![RenewStatus::Lost], "the older holder's renew");
    assert_eq!(
        store
            .checkpoint(&older.lease, Phase::Check, b"\xc0")
            .await
            .unwrap(),
        RenewStatus::Lost,
        "the older holder's checkpoint"
    );
    let older_result = Outcome::Success(tether_store::encode(&"older").unwrap());
    assert!(
        matches!(
            store.finish(&older.lease, &older_result).await,
            Err(LeaseError::Lost)
        ),
        "the older holder's finish"
    );
    let result = Outcome::Success(tether_store::encode(&"current").unwrap());
    assert!(matches!(
        store.finish(&current.lease, &result).await,
        Ok(FinishOutcome::Recorded)
    ));
    let record = store.get(queue, id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Success);
    assert_eq!(record.worker.as_deref(), Some("w2"));
    assert_eq!(record.result, Some(serde_json::json!("current")));
    assert!(store.check_consistency(queue).await.unwrap().is_empty());
}

#[tokio::test]
async fn tokens_stay_unique_across_a_lost_claim_on_one_redis() {
    a_claim_lost_in_a_failover_does_not_reissue_its_token(Topology::Single).await;
}

#[tokio::test]
async fn tokens_stay_unique_across_a_lost_claim_on_a_cluster() {
    a_claim_lost_in_a_failover_does_not_reissue_its_token(Topology::Cluster).await;
}

/// The same for a plain job, which waits with no record (layout 4): the replica that
/// never received the claim holds it waiting again (its `waiting` field and `w`
/// entry, no record), so its next claim starts from epoch 0 once more and issues the
/// same epoch; the claim id in the token still tells the two leases apart.
async fn a_lost_claim_of_a_waiting_job_does_not_reissue_its_token(topology: Topology) {
    let redis = TestRedis::start(topology);
    let store = Store::connect(StoreConfig::new(redis.url())).await.unwrap();
    let queue = "fence-plain";
    let id = store
        .enqueue(&JobSpec::new("t").queue(queue))
        .await
        .unwrap()
        .id;
    let k = |name: &str| format!("tether:{{{queue}}}:{name}");
    let raw = id.as_uuid().as_bytes().to_vec();
    let mut conn = redis.connection_for(&k("waiting"));
    let waited: Vec<u8> = conn.hget(k("waiting"), &raw).unwrap();
    let older = store.claim(queue, "w1", 1, LONG).await.unwrap().remove(0);
    assert_eq!(older.lease.id, id);

    // The promoted replica: the job waiting as it was enqueued, nothing of the claim.
    let _: () = conn.del(k(&format!("job:{id}"))).unwrap();
    let _: () = conn.zrem(k("leases"), id.to_string()).unwrap();
    let _: () = conn.zrem(k("jobs"), id.to_string()).unwrap();
    let sid: String = conn.xadd(k("stream"), "*", &[("w", &raw)]).unwrap();
    let (_, type_and_input) = tether_testkit::split_waiting_value(&waited);
    let value = tether_testkit::waiting_value(&sid, type_and_input);
    let _: () = conn.hset(k("waiting"), &raw, value).unwrap();
    assert!(store.check_consistency(queue).await.unwrap().is_empty());

    let current = store.claim(queue, "w2", 1, LONG).await.unwrap().remove(0);
    assert_eq!(current.lease.id, id);
    assert_eq!(current.attempts, older.attempts, "the same attempt again");
    assert_ne!(current.lease, older.lease, "but another token");
    only_the_current_holder_counts(&store, queue, &older, &current).await;
}

#[tokio::test]
async fn tokens_stay_unique_across_a_lost_claim_of_a_waiting_job_on_one_redis() {
    a_lost_claim_of_a_waiting_job_does_not_reissue_its_token(Topology::Single).await;
}

#[tokio::test]
async fn tokens_stay_unique_across_a_lost_claim_of_a_waiting_job_on_a_cluster() {
    a_lost_claim_of_a_waiting_job_does_not_reissue_its_token(Topology::Cluster).await;
}
