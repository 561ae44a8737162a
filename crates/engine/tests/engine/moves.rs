//! The order state machine in `core` is the one the store enforces: every operation the store
//! offers, tried from every state, moves an order only as core allows; and every move core
//! names is one some operation makes.

use crate::kit::*;
use cartwright_core::order::{ErrorClass, OrderMove, OrderState};
use cartwright_core::placing::{Refusal, Settling};
use cartwright_store::{Actor, Finish, Lease, Resolution, RunRecord};
use std::collections::BTreeSet;

/// Everything the store can do to an order.
#[derive(Debug, Clone, Copy)]
enum Op {
    Start,
    StartOutOfRuns,
    MarkPlacing,
    Finish(usize),
    FinishInStoppedBatch(usize),
    Resolve(usize),
    Stop,
    Pause,
    StopAndResume,
    Sweep,
    RetryFailed,
}

fn finishes() -> Vec<Finish> {
    let settling = Settling::new("a test");
    vec![
        Finish::Placed {
            number: "N1".into(),
            settling: None,
        },
        Finish::Failed {
            class: ErrorClass::Business,
            message: "out of stock".into(),
            screenshot: None,
            snapshot: None,
        },
        Finish::Retry {
            message: "a timeout".into(),
        },
        Finish::Cancelled,
        Finish::Held {
            message: "no browser".into(),
        },
        Finish::NotPlaced {
            settling: settling.clone(),
        },
        Finish::Refused {
            refusal: Refusal {
                class: ErrorClass::Business,
                message: "out of stock".into(),
            },
            settling: settling.clone(),
            screenshot: None,
            snapshot: None,
        },
        Finish::Unresolved {
            message: "several new orders".into(),
            settling: Some(settling),
            screenshot: None,
            snapshot: None,
        },
    ]
}

fn resolutions() -> Vec<Resolution> {
    vec![
        Resolution::Placed {
            number: Some("N2".into()),
        },
        Resolution::NotPlaced { run_again: true },
        Resolution::NotPlaced { run_again: false },
    ]
}

fn ops() -> Vec<Op> {
    let mut ops = vec![Op::Start, Op::StartOutOfRuns, Op::MarkPlacing];
    ops.extend((0..finishes().len()).map(Op::Finish));
    ops.extend((0..finishes().len()).map(Op::FinishInStoppedBatch));
    ops.extend((0..resolutions().len()).map(Op::Resolve));
    ops.extend([
        Op::Stop,
        Op::Pause,
        Op::StopAndResume,
        Op::Sweep,
        Op::RetryFailed,
    ]);
    ops
}

async fn apply(f: &Fixture, op: Op, batch: cartwright_core::ids::BatchId, lease: &Lease) {
    let order = f.orders(batch).await.remove(0).id;
    let record = RunRecord::default();
    let person = Actor {
        id: None,
        name: "a test".into(),
    };
    // Refusals are answers too: only the state afterwards matters here.
    let _ = match op {
        Op::Start => f.store.start_order(order, 3).await.map(drop),
        Op::StartOutOfRuns => f.store.start_order(order, 0).await.map(drop),
        Op::MarkPlacing => f
            .store
            .mark_placing(order, lease, &["N0".into()], &record)
            .await
            .map(drop),
        Op::Finish(i) => f
            .store
            .finish_order(order, &finishes()[i], &record, Some(lease))
            .await
            .map(drop),
        Op::FinishInStoppedBatch(i) => {
            let _ = f.store.stop_batch(batch).await;
            f.store
                .finish_order(order, &finishes()[i], &record, Some(lease))
                .await
                .map(drop)
        }
        Op::Resolve(i) => {
            // A person settles an order no worker is looking at.
            let _ = f.store.release_jobs(&lease.worker, &[lease.job]).await;
            f.store
                .resolve_order(order, &person, &resolutions()[i], None)
                .await
                .map(drop)
        }
        Op::Stop => f.store.stop_batch(batch).await.map(drop),
        Op::Pause => f.store.pause_batch(batch, "a test").await.map(drop),
        Op::StopAndResume => {
            let _ = f.store.stop_batch(batch).await;
            f.store.resume_batch(batch).await.map(drop)
        }
        Op::Sweep => f.store.sweep_orders().await.map(drop),
        Op::RetryFailed => f.store.retry_failed(batch).await.map(drop),
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_makes_exactly_the_moves_core_allows() {
    let f = Fixture::new(1, |_| {}).await;
    let mut made: BTreeSet<(&str, &str)> = BTreeSet::new();
    for from in OrderState::ALL {
        for op in ops() {
            let batch = f.submit(&f.batch(1, &[(0, 1)], 100_000)).await;
            let order = f.orders(batch.id).await.remove(0);
            let lease = hold_jobs(&f.store).await.remove(&order.id).unwrap();
            // The order as a run or a crash could have left it: in `from`, its click out when
            // that state means one went out.
            let clicked = matches!(from, OrderState::Placing | OrderState::Unresolved);
            f.exec(&format!(
                "UPDATE orders SET state = '{from}', history_before = '[]', placing_at = {} WHERE id = {}",
                if clicked { "created_at" } else { "NULL" },
                order.id
            ))
            .await;
            apply(&f, op, batch.id, &lease).await;
            let to = f.store.order(order.id).await.unwrap().state;
            if to != from {
                // A person's decision makes only a person's moves; everything else, only the
                // others.
                let by_person = matches!(op, Op::Resolve(_) | Op::RetryFailed);
                assert!(
                    OrderMove::ALL.iter().any(|m| m.by_operator() == by_person
                        && m.from().contains(&from)
                        && m.to() == to),
                    "{op:?} moved an order {from} → {to}, which core does not allow{}",
                    if by_person {
                        " a person"
                    } else {
                        " but to a person"
                    }
                );
                made.insert((from.as_str(), to.as_str()));
            }
        }
    }
    for m in OrderMove::ALL {
        for from in m.from() {
            if *from == m.to() {
                continue;
            }
            assert!(
                made.contains(&(from.as_str(), m.to().as_str())),
                "no operation of the store makes {m:?} from {from}"
            );
        }
    }
}
