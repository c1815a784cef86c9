//! Two ranks in two threads of one process, over Gloo on loopback: the collectives compute what they
//! should, and a rank that never comes fails the other within the timeout with a message.

use evdet_dist::group::GroupOptions;
use evdet_dist::{Backend, LaunchEnv, ProcessGroup};
use std::time::{Duration, Instant};
use tch::Tensor;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env(rank: usize, world: usize, port: u16) -> LaunchEnv {
    LaunchEnv {
        rank,
        world_size: world,
        local_rank: rank,
        local_world_size: world,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        ..LaunchEnv::single()
    }
}

fn opts(timeout_s: u64) -> GroupOptions {
    GroupOptions {
        backend: Backend::Gloo,
        timeout: Duration::from_secs(timeout_s),
        gloo_ifname: Some("lo".into()),
    }
}

#[test]
fn two_ranks_reduce_broadcast_and_gather() {
    let port = free_port();
    let results: Vec<_> = (0..2)
        .map(|rank| {
            std::thread::spawn(move || {
                let pg = ProcessGroup::init(&env(rank, 2, port), &opts(30)).unwrap();
                let t = Tensor::from_slice(&[1.0f32 + rank as f32, 10.0]);
                pg.all_reduce_sum(&t, "test sum").unwrap();
                let sum = Vec::<f32>::try_from(&t).unwrap();
                let grads = [
                    Tensor::from_slice(&[rank as f32; 3]),
                    Tensor::from_slice(&[1.0f32; 5]).view([5, 1]),
                ];
                let n = evdet_dist::buckets::all_reduce_gradients(&pg, &grads, 12, 1).unwrap();
                let g0 = Vec::<f32>::try_from(&grads[0]).unwrap();
                let g1 = Vec::<f32>::try_from(&grads[1].reshape([-1])).unwrap();
                let b = Tensor::from_slice(&[rank as i64 * 7 + 3]);
                pg.broadcast(&b, 1, "test broadcast").unwrap();
                let gathered = pg
                    .gather_bytes(format!("rank{rank}").as_bytes(), 0, "test gather")
                    .unwrap();
                let all = pg
                    .all_gather_bytes(&[rank as u8; 3], "test all-gather")
                    .unwrap();
                pg.barrier("test barrier").unwrap();
                (sum, n, g0, g1, i64::try_from(&b).unwrap(), gathered, all)
            })
        })
        .collect();
    for (rank, h) in results.into_iter().enumerate() {
        let (sum, n, g0, g1, b, gathered, all) = h.join().unwrap();
        assert_eq!(sum, vec![3.0, 20.0]);
        assert_eq!(
            n, 2,
            "12-byte cap: the 3-float and the 5-float gradient in two buckets"
        );
        assert_eq!(g0, vec![1.0; 3]);
        assert_eq!(g1, vec![2.0; 5]);
        assert_eq!(b, 10);
        if rank == 0 {
            assert_eq!(gathered, Some(vec![b"rank0".to_vec(), b"rank1".to_vec()]));
        } else {
            assert_eq!(gathered, None);
        }
        assert_eq!(all, vec![vec![0u8; 3], vec![1u8; 3]]);
    }
}

#[test]
fn a_missing_rank_is_an_error_within_the_timeout() {
    let port = free_port();
    let t0 = Instant::now();
    let err = match ProcessGroup::init(&env(0, 2, port), &opts(2)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("rank 1 never joined, yet the group formed"),
    };
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(
        err.starts_with("rank 0 of 2: setting up the gloo process group"),
        "{err}"
    );
}
