use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bootwave_proto::v1::{self, dataplane_control_client::DataplaneControlClient};
use bootwave_protocol::config::{self, Config};

use super::service::SAVE_RETRY;
use super::*;

type Seen = Arc<Mutex<Vec<(Config, u64)>>>;

fn local() -> Config {
    config::parse(
        "[tftp]\nroot = \"/srv/boot\"\n[journal]\ndir = \"/var/lib/bw\"\n",
        "local.toml",
        Path::new("/"),
    )
    .unwrap()
}

fn start(path: &Path) -> (ControlHandle, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let apply: ApplyFn = Arc::new(move |config, origin: &Origin| {
        record.lock().unwrap().push((config, origin.generation));
        Ok(())
    });
    let status: StatusFn = Arc::new(|| DataplaneStatus {
        shards: 2,
        backend: "portable".into(),
        http_port: Some(8080),
    });
    (serve(path, local(), apply, status).unwrap(), seen)
}

fn state(fixed_address: &str) -> v1::DesiredState {
    v1::DesiredState {
        subnets: vec![v1::Subnet {
            network: "10.0.0.0/24".into(),
            boot_rules: vec![v1::BootRule {
                arch: vec![7],
                filename: "ipxe.efi".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        hosts: vec![v1::Host {
            mac: "02:00:00:00:00:01".into(),
            fixed_address: fixed_address.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn client(path: &Path) -> DataplaneControlClient<tonic::transport::Channel> {
    let endpoint = format!("unix:{}", path.display());
    DataplaneControlClient::new(bootwave_proto::channel::connect(&endpoint).await.unwrap())
}

#[test]
fn apply_hands_the_validated_config_to_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (handle, seen) = start(&path);
    let reply = block_on(async {
        let mut c = client(&path).await;
        let request = v1::ApplyRequest {
            generation: 7,
            full: Some(state("10.0.0.5")),
            ..Default::default()
        };
        let reply = c.apply(request).await.unwrap().into_inner();
        let status = c.status(v1::DataplaneStatusRequest {}).await.unwrap();
        (reply, status.into_inner())
    });
    assert_eq!(reply.0.generation, 7);
    assert_eq!((reply.1.generation, reply.1.shards), (7, 2));
    assert_eq!(handle.generation(), 7);
    let seen = seen.lock().unwrap();
    let (config, generation) = &seen[0];
    assert_eq!(*generation, 7);
    assert_eq!(config.hosts[0].mac, [2, 0, 0, 0, 0, 1]);
    assert_eq!(config.subnets[0].boot_rules[0].filename, "ipxe.efi");
    assert_eq!(
        config.tftp.root,
        Path::new("/srv/boot"),
        "local sections kept"
    );
    assert_eq!(config.journal.dir, Path::new("/var/lib/bw"));
}

#[test]
fn a_pushed_state_keeps_dynamic_bootp_and_relays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (_handle, seen) = start(&path);
    let mut full = state("10.0.0.5");
    full.subnets[0].dynamic_bootp = true;
    full.subnets[0].dynamic_bootp_lease_length_s = 600;
    full.dhcp = Some(v1::DhcpSettings {
        relays: vec!["10.1.0.0/16".into()],
        ..Default::default()
    });
    let mut subnet = full.subnets[0].clone();
    subnet.dynamic_bootp_lease_length_s = 300;
    block_on(async {
        let mut c = client(&path).await;
        let request = v1::ApplyRequest {
            generation: 1,
            full: Some(full),
            ..Default::default()
        };
        c.apply(request).await.unwrap();
        let request = v1::ApplyRequest {
            generation: 2,
            base_generation: 1,
            delta: Some(v1::StateDelta {
                put_subnets: vec![subnet],
                ..Default::default()
            }),
            ..Default::default()
        };
        c.apply(request).await.unwrap();
    });
    let seen = seen.lock().unwrap();
    let lengths: Vec<_> = seen
        .iter()
        .map(|(config, generation)| {
            let relays: Vec<String> = config.dhcp.relays.iter().map(ToString::to_string).collect();
            let s = &config.subnets[0];
            (
                *generation,
                relays,
                s.dynamic_bootp,
                s.dynamic_bootp_lease_length,
            )
        })
        .collect();
    let relays = vec!["10.1.0.0/16".to_owned()];
    assert_eq!(
        lengths,
        [
            (1, relays.clone(), true, Some(Duration::from_secs(600))),
            (2, relays, true, Some(Duration::from_secs(300))),
        ]
    );
}

#[test]
fn invalid_state_is_refused_without_calling_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (handle, seen) = start(&path);
    let status = block_on(async {
        let request = v1::ApplyRequest {
            generation: 3,
            full: Some(state("10.9.9.9")),
            ..Default::default()
        };
        client(&path).await.apply(request).await.unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("host 02:00:00:00:00:01: fixed-address"),
        "{status:?}"
    );
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(handle.generation(), 0);
}

#[test]
fn socket_is_private_and_stale_files_are_replaced() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let (handle, _) = start(&path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    handle.stop();
    assert!(!path.exists(), "socket removed on stop");
    std::fs::write(&path, b"not a socket").unwrap();
    let err = serve(
        &path,
        local(),
        Arc::new(|_, _| Ok(())),
        Arc::new(DataplaneStatus::default),
    )
    .unwrap_err();
    assert!(matches!(err, ControlError::NotASocket(_)));
}

#[test]
fn a_live_socket_is_never_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("control.sock");
    let (first, _) = start(&path);
    let err = serve(
        &path,
        local(),
        Arc::new(|_, _| Ok(())),
        Arc::new(DataplaneStatus::default),
    )
    .unwrap_err();
    assert!(matches!(err, ControlError::InUse(_)), "{err:?}");
    assert!(path.exists(), "the first server keeps its socket");
    first.stop();
}

#[test]
fn a_delta_on_the_generation_in_force_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (_handle, seen) = start(&path);
    let (second, stale, both) = block_on(async {
        let mut c = client(&path).await;
        let full = v1::ApplyRequest {
            generation: 4,
            full: Some(state("10.0.0.5")),
            ..Default::default()
        };
        c.apply(full).await.unwrap();
        let delta = v1::StateDelta {
            put_hosts: vec![v1::Host {
                mac: "02:00:00:00:00:02".into(),
                fixed_address: "10.0.0.6".into(),
                ..Default::default()
            }],
            delete_hosts: vec!["02:00:00:00:00:01".into()],
            ..Default::default()
        };
        let second = c
            .apply(v1::ApplyRequest {
                generation: 5,
                delta: Some(delta.clone()),
                base_generation: 4,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let stale = c
            .apply(v1::ApplyRequest {
                generation: 6,
                delta: Some(delta.clone()),
                base_generation: 4,
                ..Default::default()
            })
            .await
            .unwrap_err();
        let both = c
            .apply(v1::ApplyRequest {
                generation: 6,
                full: Some(state("10.0.0.5")),
                delta: Some(delta),
                base_generation: 5,
                history: String::new(),
            })
            .await
            .unwrap_err();
        (second, stale, both)
    });
    assert_eq!(second.generation, 5);
    assert_eq!(stale.code(), tonic::Code::Aborted, "{stale:?}");
    assert_eq!(both.code(), tonic::Code::InvalidArgument, "{both:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "refused deltas never reach the callback");
    let (config, generation) = &seen[1];
    assert_eq!(*generation, 5);
    let hosts: Vec<_> = config
        .hosts
        .iter()
        .map(|h| (h.mac, h.fixed_address))
        .collect();
    assert_eq!(
        hosts,
        vec![([2, 0, 0, 0, 0, 2], Some("10.0.0.6".parse().unwrap()))]
    );
    assert_eq!(
        config.subnets[0].boot_rules[0].filename, "ipxe.efi",
        "the rest of the base state is kept"
    );
}

#[test]
fn a_delta_before_any_full_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (_handle, seen) = start(&path);
    let status = block_on(async {
        client(&path)
            .await
            .apply(v1::ApplyRequest {
                generation: 1,
                delta: Some(v1::StateDelta::default()),
                base_generation: 0,
                ..Default::default()
            })
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::Aborted);
    assert!(seen.lock().unwrap().is_empty());
}

fn persisting(
    path: &Path,
    dir: &Path,
    in_force: Option<persist::Applied>,
) -> (ControlHandle, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let apply: ApplyFn = Arc::new(move |config, origin: &Origin| {
        record.lock().unwrap().push((config, origin.generation));
        Ok(())
    });
    let endpoint = Endpoint {
        local: local(),
        apply,
        status: Arc::new(DataplaneStatus::default),
        observe: Observe::default(),
        persist: Some(dir.to_owned()),
        in_force,
    };
    (super::start(path, endpoint).unwrap(), seen)
}

fn full(history: &str, generation: u64, fixed: &str) -> v1::ApplyRequest {
    v1::ApplyRequest {
        generation,
        history: history.into(),
        full: Some(state(fixed)),
        ..Default::default()
    }
}

fn delta(history: &str, base: u64, generation: u64) -> v1::ApplyRequest {
    v1::ApplyRequest {
        generation,
        history: history.into(),
        base_generation: base,
        delta: Some(v1::StateDelta {
            put_hosts: vec![v1::Host {
                mac: "02:00:00:00:00:02".into(),
                fixed_address: "10.0.0.6".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn generations_are_ordered_within_one_history_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (handle, seen) = persisting(&path, dir.path(), None);
    let (other_delta, takeover, status) = block_on(async {
        let mut c = client(&path).await;
        c.apply(full("aaaa", 9, "10.0.0.5")).await.unwrap();
        // A delta of another history whose base number matches is refused:
        // generation 9 of history bbbb is not generation 9 of aaaa.
        let other_delta = c.apply(delta("bbbb", 9, 10)).await.unwrap_err();
        // A full state of another history takes over, even at a lower
        // generation (a wiped agent starts again from 1).
        let takeover = c.apply(full("bbbb", 1, "10.0.0.7")).await.unwrap();
        c.apply(delta("bbbb", 1, 2)).await.unwrap();
        let status = c.status(v1::DataplaneStatusRequest {}).await.unwrap();
        (other_delta, takeover.into_inner(), status.into_inner())
    });
    assert_eq!(other_delta.code(), tonic::Code::Aborted, "{other_delta:?}");
    assert!(
        other_delta.message().contains("history aaaa is in force"),
        "{other_delta:?}"
    );
    assert_eq!(
        (takeover.generation, takeover.history.as_str()),
        (1, "bbbb")
    );
    assert_eq!((status.generation, status.history.as_str()), (2, "bbbb"));
    assert!(status.applied_unix_ms > 0);
    assert_eq!(seen.lock().unwrap().len(), 3, "full, takeover, delta");
    let persisted = persist::load(dir.path()).unwrap().unwrap();
    assert_eq!(persisted.origin, handle.in_force().unwrap());
    assert_eq!(persisted.state.hosts.len(), 2, "the delta was persisted");
}

#[test]
fn a_persisted_state_is_the_base_of_the_next_delta() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let (first, _) = persisting(&path, dir.path(), None);
    block_on(async { client(&path).await.apply(full("aaaa", 4, "10.0.0.5")).await }).unwrap();
    first.stop();
    // A restarted data plane starts from what it persisted: the agent's
    // next delta applies without a full state.
    let in_force = persist::load(dir.path()).unwrap();
    let (second, seen) = persisting(&path, dir.path(), in_force);
    assert_eq!(second.generation(), 4);
    let reply = block_on(async { client(&path).await.apply(delta("aaaa", 4, 5)).await }).unwrap();
    assert_eq!(reply.into_inner().generation, 5);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0.hosts.len(), 2, "base host and the delta's");
}

#[test]
fn a_state_whose_save_failed_is_saved_again_once_the_disk_allows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    // A file stands where the journal directory should be: every save
    // fails until it is gone.
    let journal = dir.path().join("journal");
    std::fs::write(&journal, b"not a directory").unwrap();
    let (_handle, seen) = persisting(&path, &journal, None);
    let (refused, before) = block_on(async {
        let mut c = client(&path).await;
        let refused = c.apply(full("aaaa", 3, "10.0.0.5")).await.unwrap_err();
        let before = c.status(v1::DataplaneStatusRequest {}).await.unwrap();
        (refused, before.into_inner())
    });
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");
    assert!(
        refused.message().contains("applied but not persisted"),
        "{refused:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "the state is in force");
    assert!(before.unsaved && before.generation == 3, "{before:?}");
    std::fs::remove_file(&journal).unwrap();
    let deadline = Instant::now() + SAVE_RETRY * 3;
    let after = loop {
        let status = block_on(async {
            let mut c = client(&path).await;
            c.status(v1::DataplaneStatusRequest {})
                .await
                .unwrap()
                .into_inner()
        });
        if !status.unsaved || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!after.unsaved, "still unsaved after {:?}", SAVE_RETRY * 3);
    let saved = persist::load(&journal).unwrap().unwrap();
    assert_eq!(
        (saved.origin.history.as_str(), saved.origin.generation),
        ("aaaa", 3)
    );
}
