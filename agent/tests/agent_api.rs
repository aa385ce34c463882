//! The agent's API in process: CRUD and generations, field-naming errors,
//! bearer authentication on TCP, push to data planes and re-sync.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::time::Duration;

use agent_support::*;
use bootwave_agent::server::{self, AgentConfig, Listen, Listener};
use bootwave_proto::v1::{self, bootwave_service_client::BootwaveServiceClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_host_on_a_fresh_agent_says_what_comes_first() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    let refused = c
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:01", "10.0.0.5")),
        })
        .await
        .expect_err("no subnet holds 10.0.0.5");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let message = refused.message();
    assert!(
        message.contains("not inside any declared subnet"),
        "{message}"
    );
    assert!(message.contains("holds no subnet yet"), "{message}");
    assert!(message.contains("bootwave subnet add"), "{message}");
    assert!(message.contains("bootwave apply FILE"), "{message}");
    // Once a subnet exists, a host outside it gets the plain reason.
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    let refused = c
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:01", "192.0.2.5")),
        })
        .await
        .expect_err("outside the subnet");
    assert!(
        !refused.message().contains("holds no subnet yet"),
        "{refused:?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_bumps_one_generation_per_change() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    let put = |s| v1::PutSubnetRequest { subnet: Some(s) };
    assert_eq!(
        c.put_subnet(put(subnet()))
            .await
            .unwrap()
            .into_inner()
            .generation,
        1
    );
    let mut h = host("02:00:00:00:00:01", "10.0.0.5");
    h.labels.insert("rack".into(), "r1".into());
    let r = c
        .put_host(v1::PutHostRequest {
            host: Some(h.clone()),
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().generation, 2);
    let again = c
        .put_host(v1::PutHostRequest { host: Some(h) })
        .await
        .unwrap();
    assert_eq!(again.into_inner().generation, 2, "a no-op commits nothing");
    let got = c
        .get_host(v1::GetHostRequest {
            mac: "02-00-00-00-00-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.fixed_address.as_str(), got.labels["rack"].as_str()),
        ("10.0.0.5", "r1")
    );

    let import: Vec<v1::Host> = (2..7)
        .map(|i| host(&format!("02:00:00:00:00:{i:02x}"), ""))
        .collect();
    let r = c.import_hosts(tokio_stream::iter(import)).await.unwrap();
    assert_eq!(r.into_inner().generation, 3, "an import is one generation");

    let mut pages = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let reply = c
            .list_hosts(v1::ListHostsRequest {
                page_size: 4,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(reply.hosts.len());
        token = reply.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, vec![4, 2]);
    let labelled = c
        .list_hosts(v1::ListHostsRequest {
            labels: [("rack".to_owned(), "r1".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(labelled.hosts.len(), 1);

    let r = c
        .delete_host(v1::DeleteHostRequest {
            mac: "02:00:00:00:00:01".into(),
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().generation, 4);
    let gone = c
        .delete_host(v1::DeleteHostRequest {
            mac: "02:00:00:00:00:01".into(),
        })
        .await;
    assert_eq!(gone.unwrap_err().code(), tonic::Code::NotFound);
    let state = c
        .get_state(v1::GetStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((state.generation, state.state.unwrap().hosts.len()), (4, 5));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_names_the_field_and_changes_nothing() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c = client(&agent.endpoint).await;
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    let e = c
        .put_host(v1::PutHostRequest {
            host: Some(host("zz", "")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.message(), r#"host.mac: "zz" is not a MAC address"#);
    let e = c
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:01", "10.0.0.150")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("host 02:00:00:00:00:01: fixed-address:"),
        "{}",
        e.message()
    );
    let mut bad = subnet();
    bad.boot_rules[0].arch = vec![70_000];
    let e = c
        .put_subnet(v1::PutSubnetRequest { subnet: Some(bad) })
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("subnet.boot_rules[0].arch[0]:"),
        "{}",
        e.message()
    );
    let state = c
        .get_state(v1::GetStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.generation, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_requires_the_bearer_token() {
    let (_dir, state, _) = temp();
    let listener = Listener::bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AgentConfig {
        state_dir: state,
        dataplanes: vec![],
        token: Some("s3cret".into()),
        resync_interval: Duration::from_secs(1),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(config, listener, async {
        let _ = rx.await;
    }));
    let mut c = client(&format!("http://{addr}")).await;
    let e = c.get_state(v1::GetStateRequest {}).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let mut wrong = tonic::Request::new(v1::GetStateRequest {});
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        c.get_state(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let mut right = tonic::Request::new(v1::GetStateRequest {});
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(c.get_state(right).await.unwrap().into_inner().generation, 0);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_without_a_token_refuses_to_start() {
    let (_dir, state, _) = temp();
    let listener = Listener::bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let config = AgentConfig {
        state_dir: state,
        dataplanes: vec![],
        token: None,
        resync_interval: Duration::from_secs(1),
    };
    let e = server::serve(config, listener, async {}).await.unwrap_err();
    assert!(e.to_string().contains("bearer token"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_data_plane_and_a_restarted_one_is_resynced() {
    let (dir, state, socket) = temp();
    let dp_socket = dir.path().join("dp.sock");
    let (dp, applied) = fake_dataplane(&dp_socket);
    let endpoint = format!("unix:{}", dp_socket.display());
    let agent = start_agent(&state, &socket, vec![endpoint.clone()]).await;
    let mut c = client(&agent.endpoint).await;
    let r = c
        .put_subnet(v1::PutSubnetRequest {
            subnet: Some(subnet()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.lagging.is_empty(), "{:?}", r.lagging);
    let r = c
        .put_host(v1::PutHostRequest {
            host: Some(host("02:00:00:00:00:01", "10.0.0.5")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.generation, r.lagging.len()), (2, 0));
    {
        let applied = applied.lock().unwrap();
        let (config, generation) = applied.last().unwrap();
        assert_eq!(*generation, 2);
        assert_eq!(config.hosts[0].mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(config.subnets[0].boot_rules[0].filename, "ipxe.efi");
    }
    assert_eq!(dp.generation(), 2);

    dp.stop();
    let r = c
        .delete_host(v1::DeleteHostRequest {
            mac: "02:00:00:00:00:01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.generation, 3, "the change stays committed");
    assert_eq!(r.lagging.len(), 1);
    assert_eq!(r.lagging[0].endpoint, endpoint);

    let (dp, applied) = fake_dataplane(&dp_socket);
    for _ in 0..200 {
        if dp.generation() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dp.generation(), 3, "re-synced after the restart");
    let (config, _) = applied.lock().unwrap().last().cloned().unwrap();
    assert!(config.hosts.is_empty());
    let status = c.status(v1::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.dataplanes[0].acked_generation, 3);
    drop(dp);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_bootp_and_relays_reach_the_data_plane_and_survive_a_restart() {
    let (dir, state, socket) = temp();
    let dp_socket = dir.path().join("dp.sock");
    let (dp, applied) = fake_dataplane(&dp_socket);
    let endpoint = format!("unix:{}", dp_socket.display());
    let agent = start_agent(&state, &socket, vec![endpoint.clone()]).await;
    let mut c = client(&agent.endpoint).await;
    let mut bootp = subnet();
    bootp.dynamic_bootp = true;
    bootp.dynamic_bootp_lease_length_s = 1800;
    let wire = v1::DesiredState {
        dhcp: Some(v1::DhcpSettings {
            relays: vec!["10.1.0.0/16".into(), "192.0.2.7".into()],
            ..Default::default()
        }),
        subnets: vec![bootp.clone()],
        ..Default::default()
    };
    let r = c
        .apply_state(v1::ApplyStateRequest {
            state: Some(wire),
            expected_generation: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.lagging.is_empty(), "{:?}", r.lagging);
    let relays = |config: &bootwave_protocol::config::Config| -> Vec<String> {
        config.dhcp.relays.iter().map(ToString::to_string).collect()
    };
    {
        let applied = applied.lock().unwrap();
        let (config, _) = applied.last().unwrap();
        assert_eq!(relays(config), ["10.1.0.0/16", "192.0.2.7/32"]);
        assert!(config.subnets[0].dynamic_bootp);
        assert_eq!(
            config.subnets[0].dynamic_bootp_lease_length,
            Some(Duration::from_secs(1800))
        );
    }
    // A delta that changes the subnet only keeps the relays in force.
    bootp.dynamic_bootp_lease_length_s = 900;
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(bootp),
    })
    .await
    .unwrap();
    {
        let applied = applied.lock().unwrap();
        let (config, generation) = applied.last().unwrap();
        assert_eq!(*generation, 2);
        assert_eq!(relays(config).len(), 2);
        assert_eq!(
            config.subnets[0].dynamic_bootp_lease_length,
            Some(Duration::from_secs(900))
        );
    }
    // A refused value names its field and changes nothing.
    let refused = c
        .apply_state(v1::ApplyStateRequest {
            state: Some(v1::DesiredState {
                dhcp: Some(v1::DhcpSettings {
                    relays: vec!["not-a-relay".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            expected_generation: 2,
        })
        .await
        .unwrap_err();
    assert!(refused.message().contains("dhcp.relays[0]"), "{refused:?}");
    // The store keeps them across an agent restart.
    agent.stop().await;
    let agent = start_agent(&state, &socket, vec![endpoint]).await;
    let mut c = client(&agent.endpoint).await;
    let kept = c
        .get_state(v1::GetStateRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.generation, 2);
    let kept = kept.state.unwrap();
    assert_eq!(kept.dhcp.unwrap().relays, ["10.1.0.0/16", "192.0.2.7/32"]);
    assert!(kept.subnets[0].dynamic_bootp);
    assert_eq!(kept.subnets[0].dynamic_bootp_lease_length_s, 900);
    drop(dp);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_follows_profiles_and_subnet_rules() {
    let (_dir, state, socket) = temp();
    let agent = start_agent(&state, &socket, vec![]).await;
    let mut c: BootwaveServiceClient<_> = client(&agent.endpoint).await;
    c.put_subnet(v1::PutSubnetRequest {
        subnet: Some(subnet()),
    })
    .await
    .unwrap();
    let profile = v1::Profile {
        name: "rescue".into(),
        rules: vec![v1::BootRule {
            filename: "rescue.efi".into(),
            ..Default::default()
        }],
        ipxe_script: String::new(),
        script_path: String::new(),
    };
    c.put_profile(v1::PutProfileRequest {
        profile: Some(profile),
    })
    .await
    .unwrap();
    let mut h = host("02:00:00:00:00:01", "10.0.0.5");
    h.profile = "rescue".into();
    c.put_host(v1::PutHostRequest { host: Some(h) })
        .await
        .unwrap();
    let r = c
        .explain(v1::ExplainRequest {
            mac: "02:00:00:00:00:01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let fw = r.firmware.unwrap();
    assert_eq!(
        (fw.filename.as_str(), fw.source.as_str()),
        ("rescue.efi", "profile rescue")
    );
    let r = c
        .explain(v1::ExplainRequest {
            mac: "02:00:00:00:00:02".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let fw = r.firmware.unwrap();
    assert_eq!(
        (fw.filename.as_str(), fw.next_server.as_str()),
        ("ipxe.efi", "10.0.0.1")
    );
    assert!(!r.known);
    assert_eq!(
        r.ipxe.unwrap().filename,
        "ipxe.efi",
        "no rule for user class iPXE here"
    );
    agent.stop().await;
}
