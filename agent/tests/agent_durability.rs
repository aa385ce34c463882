//! Acknowledged changes survive a reopen and a kill -9 of the agent.
#![allow(clippy::unwrap_used)]

mod agent_support;

use agent_support::*;
use bootwave_agent::store::Store;
use bootwave_proto::v1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_clean_restart() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    c.put_host(v1::PutHostRequest {
        host: Some(host("02:00:00:00:00:01", "10.0.0.5")),
    })
    .await
    .unwrap();
    drop(c);
    agent.stop().await;
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    let s = c
        .get_state(v1::GetStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.generation, 2);
    assert_eq!(s.state.unwrap().hosts[0].fixed_address, "10.0.0.5");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_change() {
    let (_dir, state, socket) = temp();
    let mut child = spawn_agent(&state, &socket);
    let mut c = client(&format!("unix:{}", socket.display())).await;
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    let mut acked = Vec::new();
    for i in 1..=20u8 {
        let mac = format!("02:00:00:00:01:{i:02x}");
        let r = c
            .put_host(v1::PutHostRequest {
                host: Some(host(&mac, "")),
            })
            .await
            .unwrap();
        acked.push((mac, r.into_inner().generation));
    }
    // SIGKILL right after the last acknowledgement: no chance to flush.
    child.kill();
    let store = Store::open(&state).unwrap();
    let snapshot = store.snapshot();
    assert_eq!(snapshot.generation, acked.last().unwrap().1);
    for (mac, _) in &acked {
        let mac = bootwave_proto::convert::parse_mac(mac).unwrap();
        assert!(snapshot.state.hosts.contains_key(&mac));
    }
}
