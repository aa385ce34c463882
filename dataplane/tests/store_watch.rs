//! The inotify watcher reloads the store on its own.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootwave_dataplane::store::{FileStore, StoreOptions, WatchOptions};
use bootwave_protocol::tftp::Resolved;

/// Longest wait for the watcher to pick a change up.
const DEADLINE: Duration = Duration::from_secs(5);

/// Polls `lookup(path)` until it serves `expected`; fails loudly at the
/// deadline.
fn wait_for(store: &FileStore, path: &str, expected: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = match store.lookup(path) {
            Resolved::File(data) => Some(data.bytes().to_vec()),
            _ => None,
        };
        if got.as_deref() == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "watcher did not serve {path} = {expected:?} within {DEADLINE:?}; last saw {got:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn open(root: &Path) -> Arc<FileStore> {
    Arc::new(FileStore::open(root, StoreOptions::default()).expect("load"))
}

#[test]
fn new_and_replaced_files_are_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ipxe.efi"), b"v1").expect("write");
    let store = open(dir.path());
    let _watch = store.watch().expect("watch");

    std::fs::write(dir.path().join("refind.pxe"), b"#!ipxe\n").expect("write");
    wait_for(&store, "refind.pxe", b"#!ipxe\n");

    let tmp = dir.path().join(".ipxe.efi.tmp");
    std::fs::write(&tmp, b"v2").expect("write");
    std::fs::rename(&tmp, dir.path().join("ipxe.efi")).expect("rename");
    wait_for(&store, "ipxe.efi", b"v2");
    assert!(matches!(store.lookup(".ipxe.efi.tmp"), Resolved::NotFound));
}

#[test]
fn burst_of_writes_is_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let _watch = store.watch().expect("watch");
    for i in 0..50 {
        std::fs::write(dir.path().join(format!("f{i}")), format!("{i}")).expect("write");
    }
    for i in 0..50 {
        wait_for(&store, &format!("f{i}"), format!("{i}").as_bytes());
    }
}

#[test]
fn files_in_new_subdirectories_are_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let _watch = store.watch().expect("watch");
    std::fs::create_dir_all(dir.path().join("efi/boot")).expect("mkdir");
    std::fs::write(dir.path().join("efi/boot/bootx64.efi"), b"MZ").expect("write");
    wait_for(&store, "efi/boot/bootx64.efi", b"MZ");
    // The new directory is now watched itself.
    std::fs::write(dir.path().join("efi/boot/refind.conf"), b"timeout 1\n").expect("write");
    wait_for(&store, "efi/boot/refind.conf", b"timeout 1\n");
}

#[test]
fn deletion_is_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("old.efi"), b"old").expect("write");
    let store = open(dir.path());
    let _watch = store.watch().expect("watch");
    std::fs::remove_file(dir.path().join("old.efi")).expect("rm");
    let deadline = Instant::now() + DEADLINE;
    while !matches!(store.lookup("old.efi"), Resolved::NotFound) {
        assert!(
            Instant::now() < deadline,
            "deletion not seen within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn changes_made_before_watching_are_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    std::fs::write(dir.path().join("late"), b"late").expect("write");
    let _watch = store.watch().expect("watch");
    wait_for(&store, "late", b"late");
}

#[test]
fn dropping_the_handle_stops_the_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let watch = store
        .watch_with(WatchOptions {
            debounce: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        })
        .expect("watch");
    assert_eq!(
        Arc::weak_count(&store),
        1,
        "the thread holds a weak reference"
    );
    drop(watch);
    assert_eq!(Arc::weak_count(&store), 0, "the thread has ended");
}
